"""SageMaker's serving contract as an ASGI app (Starlette) run by uvicorn: GET /ping, POST /invocations.

No torch here: images go through the same preprocessing and onnxruntime session as `fmnist predict`.
Bodies are read as a stream and refused (413) as soon as they pass the limit, so a huge upload is
never held in memory; every error is a JSON object, never a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import logging
import math
import signal
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..core.errors import FmnistError, ref
from ..inference.prediction import Prediction
from ..inference.preprocess import ImageError, preprocess
from ..inference.session import Classifier

MAX_BODY = 6 * 1024 * 1024  # SageMaker real-time endpoints accept at most 6 MB per request
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
def to_batch(array: np.ndarray, what: str) -> np.ndarray:
    """[N,28,28] or [N,1,28,28] → float32 [N,1,28,28] in [0,1] (integers are 0–255 pixels)."""
    if array.ndim not in (3, 4) or array.shape[-2:] != (28, 28) or (array.ndim == 4 and array.shape[1] != 1):
        raise BadInput(f"{what}: shape {list(array.shape)} is not [N,28,28] or [N,1,28,28]")
    if array.shape[0] == 0:
        raise BadInput(f"{what}: no images (N = 0)")
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


def decode_image(body: bytes, what: str = "image") -> np.ndarray:
    """One PNG/JPEG (any size, either polarity) → [1,1,28,28] via the shared preprocessing."""
    try:
        return np.asarray(preprocess(body), dtype=np.float32).reshape(1, 1, 28, 28)
    except ImageError as exc:
        raise BadInput(f"{what}: {exc}") from exc


def decode_npy(body: bytes) -> np.ndarray:
    """An .npy array, read without unpickling (object arrays are refused)."""
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BadInput(f"application/x-npy: not a readable .npy array ({exc})") from exc
    if not isinstance(array, np.ndarray):
        raise BadInput("application/x-npy: expected one .npy array, not an .npz archive")
    return to_batch(array, "application/x-npy")


def decode_json(body: bytes) -> np.ndarray:
    """{"instances": [...]}: each a 28×28 (or 1×28×28) list of [0,1] pixels, or {"b64": PNG/JPEG}."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"application/json: not valid JSON ({exc})") from exc
    instances = doc.get("instances") if isinstance(doc, dict) else None
    if not isinstance(instances, list) or not instances:
        raise BadInput('application/json: expected {"instances": [...]} with at least one instance')
    return np.concatenate([_decode_instance(inst, i) for i, inst in enumerate(instances)])


def _decode_instance(inst: Any, i: int) -> np.ndarray:
    what = f"instances[{i}]"
    if isinstance(inst, dict):
        if not isinstance(inst.get("b64"), str):
            raise BadInput(f'{what}: an object instance must be {{"b64": "<base64 PNG or JPEG>"}}')
        try:
            raw = base64.b64decode(inst["b64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadInput(f"{what}: b64 is not valid base64 ({exc})") from exc
        return decode_image(raw, what)
    try:
        array = np.asarray(inst, dtype=np.float64)
    except (ValueError, TypeError) as exc:
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
    """One JSON object per image: label, index, probability, all probabilities, top-k."""
    return [Prediction.from_row(row, model.classes, k).serve_json() for row in model.predict_proba(batch)]


def create_app(load: Callable[[], Classifier], k: int = 3, max_body: int = MAX_BODY) -> Starlette:
    """The ASGI app; `load` runs in a thread at start-up, and /ping answers 503 until it returns."""
    slot = ModelSlot()

    def load_into_slot() -> None:
        try:
            slot.model = load()
        except Exception as exc:  # noqa: BLE001 - reported by /ping and the log; the server keeps answering
            slot.error = f"{type(exc).__name__}: {exc}"
            log.error("model failed to load: %s", slot.error)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().run_in_executor(None, load_into_slot)
        yield
        await task

    async def ping(request: Request) -> Response:
        if slot.model is None:
            return JSONResponse({"status": "loading" if slot.error is None else "failed", "error": slot.error}, 503)
        return JSONResponse({"status": "ok"})

    async def invocations(request: Request) -> Response:
        kind = media_type(request)
        body = await read_body(request, max_body)
        model = slot.model
        if model is None:
            raise HTTPException(503, "the model is not loaded yet; retry when GET /ping answers 200")
        # decoding and inference off the event loop: onnxruntime and Pillow release the GIL
        preds = await run_in_threadpool(lambda: predictions(model, decode(kind, body), k))
        return JSONResponse({"predictions": preds})

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
