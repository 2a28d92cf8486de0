"""SageMaker's serving contract as an ASGI app (Starlette) run by uvicorn: GET /ping, POST /invocations.

No torch here: images go through the same preprocessing and onnxruntime session as `fmnist predict`.
Bodies are read as a stream and refused (413) as soon as they pass the limit, so a huge upload is
never held in memory; every error is a JSON object, never a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ctypes
import functools
import io
import json
import logging
import math
import signal
import socket
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib import format as npy_format
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import cpu_count
from ..core.errors import FmnistError, ref
from ..inference.prediction import SCHEMA_VERSION
from ..inference.prediction import predictions as records
from ..inference.preprocess import MAX_PIXELS, ImageError, open_header, to_model_input
from ..inference.preprocess import decode as decode_pixels
from ..inference.session import Classifier, ModelError, predict_scores

MAX_BODY = 6 * 1024 * 1024  # SageMaker real-time endpoints accept at most 6 MB per request
#: Images one request may hold (413 above, from the .npy header or the length of "instances")...
MAX_IMAGES = 256
#: ...and pixels its encoded images may declare in all (one image at the per-image cap), so that the work
#: of one request is bounded whatever it holds.
MAX_REQUEST_PIXELS = MAX_PIXELS
IMAGE_TYPES = ("image/png", "image/jpeg")
NPY, JSON_TYPE = "application/x-npy", "application/json"
CONTENT_TYPES = (*IMAGE_TYPES, NPY, JSON_TYPE)
log = logging.getLogger("fmnist.serve")


class ServeError(FmnistError):
    """The server cannot start (port in use, address not available)."""


class BadInput(HTTPException):
    """400: the body could not be decoded or has the wrong shape."""

    def __init__(self, detail: str) -> None:
        super().__init__(400, detail)


@dataclass
class ModelSlot:
    """The model once loaded (None before: /ping answers 503), or why loading failed."""

    model: Classifier | None = None
    error: str | None = None


# --- decoding --------------------------------------------------------------------------------
def check_shape(shape: tuple[int, ...], what: str) -> None:
    """400 unless `shape` is [N,28,28] or [N,1,28,28] with 1 ≤ N; 413 when N is over MAX_IMAGES."""
    if len(shape) not in (3, 4) or tuple(shape[-2:]) != (28, 28) or (len(shape) == 4 and shape[1] != 1):
        raise BadInput(f"{what}: shape {list(shape)} is not [N,28,28] or [N,1,28,28]")
    if shape[0] == 0:
        raise BadInput(f"{what}: no images (N = 0)")
    check_count(shape[0], what)


def check_count(n: int, what: str) -> None:
    """413 when a request holds more than MAX_IMAGES images (checked before any is decoded)."""
    if n > MAX_IMAGES:
        raise HTTPException(413, f"{what}: {n:,} images in one request, over the limit of {MAX_IMAGES}; split it")


def to_batch(array: np.ndarray, what: str) -> np.ndarray:
    """[N,28,28] or [N,1,28,28] → float32 [N,1,28,28] in [0,1] (integers are 0–255 pixels)."""
    check_shape(array.shape, what)
    if array.dtype.kind in "iu":
        if array.min() < 0 or array.max() > 255:
            raise BadInput(f"{what}: integer pixels must lie in 0–255")
        batch = array.astype(np.float32) / 255.0
    elif array.dtype.kind == "f":
        batch = array.astype(np.float32)
        if not np.isfinite(batch).all() or batch.min() < 0 or batch.max() > 1:
            raise BadInput(f"{what}: float pixels must be finite and lie in [0,1] (divide 0–255 values by 255)")
    else:
        raise BadInput(f"{what}: dtype {array.dtype} is not numeric")
    return batch.reshape(-1, 1, 28, 28)


@dataclass
class PixelBudget:
    """The pixels the images of one request may still declare (MAX_REQUEST_PIXELS in all)."""

    left: int = MAX_REQUEST_PIXELS


def decode_image(body: bytes, what: str = "image", budget: PixelBudget | None = None) -> np.ndarray:
    """One PNG/JPEG (any size, either polarity) → [1,1,28,28] via the shared preprocessing.

    The header is read first: its size counts against the request's pixel budget (413 past it)
    before a pixel is decoded."""
    budget = budget or PixelBudget()
    try:
        img = open_header(body)
        pixels = img.size[0] * img.size[1]
        if pixels > budget.left:
            raise HTTPException(
                413,
                f"{what}: its {pixels:,} pixels take the request past {MAX_REQUEST_PIXELS:,} pixels "
                "in all; send fewer or smaller images per request",
            )
        budget.left -= pixels
        return np.asarray(to_model_input(decode_pixels(img)), dtype=np.float32).reshape(1, 1, 28, 28)
    except ImageError as exc:
        raise BadInput(f"{what}: {exc}") from exc


def _npy_header(body: bytes) -> tuple[tuple[int, ...], bool, np.dtype[Any], int]:
    """(shape, fortran order, dtype, data offset) from an .npy header, without reading the data."""
    if body.startswith(b"PK\x03\x04"):
        raise BadInput("application/x-npy: expected one .npy array, not an .npz archive")
    stream = io.BytesIO(body)
    try:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(stream)
        else:
            raise BadInput(f"application/x-npy: .npy format version {version} is not read here (1.0 and 2.0 are)")
    except BadInput:
        raise
    except Exception as exc:  # numpy's header parser lets ValueError, SyntaxError, tokenize's TokenError... out
        raise BadInput(f"application/x-npy: not a readable .npy array ({type(exc).__name__}: {exc})") from exc
    return tuple(shape), fortran, dtype, stream.tell()


def decode_npy(body: bytes) -> np.ndarray:
    """An .npy array, checked from its header (shape, count, dtype, length) before anything is allocated;
    the data is then read in place (never unpickled: object arrays are refused)."""
    what = "application/x-npy"
    shape, fortran, dtype, offset = _npy_header(body)
    check_shape(shape, what)
    if dtype.hasobject or dtype.kind not in "iuf":
        raise BadInput(f"{what}: dtype {dtype} is not numeric (object arrays are never unpickled)")
    count = math.prod(shape)
    if len(body) - offset < count * dtype.itemsize:
        raise BadInput(
            f"{what}: the header declares {list(shape)} {dtype} ({count * dtype.itemsize:,} bytes of data), "
            f"but the body holds {len(body) - offset:,}"
        )
    array = np.frombuffer(body, dtype, count, offset).reshape(shape, order="F" if fortran else "C")
    return to_batch(array, what)


def decode_json(body: bytes) -> np.ndarray:
    """{"instances": [...]}: each a 28×28 (or 1×28×28) list of [0,1] pixels, or {"b64": PNG/JPEG}."""
    try:
        doc = json.loads(body)
    except RecursionError:
        raise BadInput("application/json: nested too deeply (an instance is a 28×28 list of lists)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"application/json: not valid JSON ({exc})") from exc
    instances = doc.get("instances") if isinstance(doc, dict) else None
    if not isinstance(instances, list) or not instances:
        raise BadInput('application/json: expected {"instances": [...]} with at least one instance')
    check_count(len(instances), "application/json")
    budget = PixelBudget()
    return np.concatenate([_decode_instance(inst, i, budget) for i, inst in enumerate(instances)])


def _decode_instance(inst: Any, i: int, budget: PixelBudget) -> np.ndarray:
    what = f"instances[{i}]"
    if isinstance(inst, dict):
        if not isinstance(inst.get("b64"), str):
            raise BadInput(f'{what}: an object instance must be {{"b64": "<base64 PNG or JPEG>"}}')
        try:
            raw = base64.b64decode(inst["b64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadInput(f"{what}: b64 is not valid base64 ({exc})") from exc
        return decode_image(raw, what, budget)
    try:
        array = np.asarray(inst, dtype=np.float64)
    except (ValueError, TypeError, RecursionError) as exc:
        raise BadInput(f"{what}: not a rectangular array of numbers") from exc
    return to_batch(array[None], what)


def decode(kind: str, body: bytes) -> np.ndarray:
    """The body of a request with media type `kind` as a float32 batch [N,1,28,28]."""
    if kind in IMAGE_TYPES:
        return decode_image(body, kind)
    return decode_npy(body) if kind == NPY else decode_json(body)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, streamed; 413 as soon as it passes `limit` (or at once if Content-Length says so)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadInput(f"Content-Length {declared!r} is not a number")
        if int(declared) > limit:
            raise HTTPException(413, f"body of {int(declared):,} bytes exceeds the {limit:,}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body exceeds the {limit:,}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    """The Content-Type without parameters, lower case; 415 unless it is one we read."""
    value = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if value not in CONTENT_TYPES:
        shown = value or "none"
        raise HTTPException(415, f"Content-Type {shown} is not supported; use one of {', '.join(CONTENT_TYPES)}")
    return value


# --- the app ---------------------------------------------------------------------------------
def predictions(model: Classifier, batch: np.ndarray, k: int) -> list[dict[str, Any]]:
    """One JSON object per image: label, index, probability, all probabilities, top-k, OOD score, unsure."""
    return [p.serve_json() for p in records(predict_scores(model, batch), model.classes, k)]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library is another (macOS, musl)."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def release_memory() -> None:
    """Give the heap's free memory back to the OS. glibc's malloc keeps what big decodes freed (in one
    arena per thread), so without this a server would stay at its peak long after a burst."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def default_workers() -> int:
    """Requests decoded and classified at once: one per core, at least 2, at most 4 (each may hold up to
    MAX_DECODE_BYTES while it decodes, so this bounds the server's memory)."""
    return max(2, min(cpu_count(), 4))


class InferenceThreads:
    """Decoding and inference for the requests: at most `workers` at once, on threads of their own; the
    others wait their turn before any of their images is decoded. After a quiet spell of IDLE_S the
    freed heap is handed back to the OS."""

    IDLE_S = 0.5

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.busy = asyncio.Semaphore(workers)
        self.pool: ThreadPoolExecutor | None = None
        self.working = 0
        self.pending: asyncio.TimerHandle | None = None

    async def run(self, task: Callable[[], Any]) -> Any:
        """`task()`'s result, computed on a work thread once one is free."""
        loop = asyncio.get_running_loop()
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="fmnist-work")
        async with self.busy:
            self.working += 1
            try:
                return await loop.run_in_executor(self.pool, task)
            finally:
                self.working -= 1
                if self.working == 0 and self.pending is None:
                    self.pending = loop.call_later(self.IDLE_S, self._release, loop)

    def _release(self, loop: asyncio.AbstractEventLoop) -> None:
        self.pending = None
        if self.working == 0 and self.pool is not None:  # else the request now working reschedules
            loop.run_in_executor(self.pool, release_memory)

    def stop(self) -> None:
        if self.pending is not None:
            self.pending.cancel()
        if self.pool is not None:
            self.pool.shutdown(wait=False)
            self.pool = None


def create_app(
    load: Callable[[], Classifier], k: int = 3, max_body: int = MAX_BODY, workers: int | None = None
) -> Starlette:
    """The ASGI app; `load` runs in a thread at start-up, and /ping answers 503 until it returns.

    Decoding and inference run on `workers` threads of their own (default_workers()); a request that
    finds them all busy waits, holding only its body, so the images in memory are those of at most
    `workers` requests, however many clients send at once."""
    slot = ModelSlot()
    work = InferenceThreads(workers or default_workers())

    def load_into_slot() -> None:
        try:
            slot.model = load()
        except Exception as exc:  # noqa: BLE001 - reported by /ping and the log; the server keeps answering
            slot.error = f"{type(exc).__name__}: {exc}"
            log.error("model failed to load: %s", slot.error)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().run_in_executor(None, load_into_slot)
        try:
            yield
            await task
        finally:
            work.stop()

    async def ping(request: Request) -> Response:
        if slot.model is None:
            return JSONResponse({"status": "loading" if slot.error is None else "failed", "error": slot.error}, 503)
        return JSONResponse({"status": "ok"})

    async def invocations(request: Request) -> Response:
        kind = media_type(request)
        try:
            body = await read_body(request, max_body)
        except ClientDisconnect:  # the client went away mid-body: nobody to answer, one line in the log
            log.warning(
                "%s %s: the client disconnected before sending its whole body", request.method, request.url.path
            )
            return Response(status_code=400)
        model = slot.model
        if model is None:
            raise HTTPException(503, "the model is not loaded yet; retry when GET /ping answers 200")
        # decoding and inference off the event loop (onnxruntime and Pillow release the GIL), at most
        # `workers` requests at once: the others wait here, before any of their images is decoded
        try:
            preds = await work.run(lambda: predictions(model, decode(kind, body), k))
        except ModelError as exc:  # a broken model (NaN outputs): the client is told, the log says it in one line
            log.error("%s", exc)
            raise HTTPException(500, str(exc)) from None
        return JSONResponse({"schema_version": SCHEMA_VERSION, "predictions": preds})

    app = Starlette(
        routes=[Route("/ping", ping, methods=["GET"]), Route("/invocations", invocations, methods=["POST"])],
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        lifespan=lifespan,
    )
    app.state.slot = slot
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("error while answering %s %s", request.method, request.url.path)  # the log, not the client
    return JSONResponse({"error": "internal server error; see the server log"}, 500)


# --- running it ------------------------------------------------------------------------------
def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or one clear ServeError (port in use, unknown address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers, not live servers
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48):  # EADDRINUSE on Linux, macOS
            raise ServeError(
                f"port {port} on {host} is already in use; stop the other server or choose another {ref('port')}"
            ) from exc
        raise ServeError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); check {ref('host')} and {ref('port')}"
        ) from exc
    sock.set_inheritable(True)
    return sock


def run(app: Starlette, sock: socket.socket, access_log: bool = False, grace_s: float = 30.0) -> int:
    """Serve until SIGTERM (exit 0, in-flight requests finished) or Ctrl-C (130)."""
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level="info" if access_log else "warning",
        access_log=access_log,
        timeout_graceful_shutdown=math.ceil(grace_s),
        server_header=False,
    )
    server = uvicorn.Server(config)
    received: list[int] = []
    # uvicorn re-raises the stop signal after its graceful shutdown; these handlers receive it then
    previous = {sig: signal.signal(sig, lambda s, f: received.append(s)) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    return 130 if signal.SIGINT in received else 0
