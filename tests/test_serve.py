"""`fmnist serve`: real HTTP on 127.0.0.1 (ephemeral ports) for every status code of the contract."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import uvicorn
from PIL import Image, ImageDraw

from fmnist_tui.core.data import CLASSES
from fmnist_tui.deploy.serve import MAX_BODY, MAX_IMAGES, MAX_REQUEST_PIXELS, bind, create_app
from fmnist_tui.inference.preprocess import preprocess
from fmnist_tui.inference.session import OnnxClassifier
from tests.conftest import ROOT, make_tiny_dataset, synthetic_images
from tests.test_preprocess import png_header_only


# --- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An fmnist ONNX model exported from a tiny run (mlp, 64 synthetic images, one epoch)."""
    from fmnist_tui.core.config import TrainConfig
    from fmnist_tui.core.data import load_dataset
    from fmnist_tui.deploy.export import export_run
    from fmnist_tui.training.trainer import train

    root = tmp_path_factory.mktemp("serve")
    data = make_tiny_dataset(root / "data")
    old = os.environ.get("FMNIST_VERIFY")
    os.environ["FMNIST_VERIFY"] = "0"
    try:
        run = train(
            TrainConfig.create(
                arch="mlp",
                kernel=None,
                epochs=1,
                subset=64,
                batch_size=32,
                threads=1,
                device="cpu",
                out=str(root / "runs"),
                data_dir=str(data),
            )
        ).run
        return Path(export_run(run, root / "export", load_dataset(data)).path)
    finally:
        os.environ.pop("FMNIST_VERIFY") if old is None else os.environ.__setitem__("FMNIST_VERIFY", old)


class ServerThread:
    """uvicorn serving `app` in a thread on an ephemeral loopback port."""

    def __init__(self, app: Any) -> None:
        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="critical", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        self.sock.close()

    def request(
        self, method: str, path: str, body: bytes | None = None, ctype: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": ctype} if ctype else {})
            resp = conn.getresponse()
            raw = resp.read()
            assert resp.getheader("content-type", "").startswith("application/json"), raw[:200]
            return resp.status, json.loads(raw)
        finally:
            conn.close()


@pytest.fixture(scope="module")
def server(model_path: Path) -> Iterator[ServerThread]:
    clf = OnnxClassifier(model_path)
    with ServerThread(create_app(lambda: clf)) as srv:
        yield srv


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return synthetic_images(np.arange(10), seed=3)


def encode(image: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt)
    return buf.getvalue()


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


# --- 200 -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ping_is_503_until_the_model_is_loaded(model_path: Path) -> None:
    gate = threading.Event()

    def slow_load() -> OnnxClassifier:
        gate.wait(20)
        return OnnxClassifier(model_path)

    with ServerThread(create_app(slow_load)) as srv:
        status, body = srv.request("GET", "/ping")
        assert status == 503 and body["status"] == "loading"
        assert srv.request("POST", "/invocations", npy(np.zeros((1, 28, 28), np.uint8)), "application/x-npy")[0] == 503
        gate.set()
        deadline = time.monotonic() + 20
        while srv.request("GET", "/ping")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.request("GET", "/ping") == (200, {"status": "ok"})


def test_ping_stays_503_when_loading_fails() -> None:
    def broken_load() -> OnnxClassifier:
        raise OSError("disk gone")

    with ServerThread(create_app(broken_load)) as srv:
        deadline = time.monotonic() + 20
        while srv.request("GET", "/ping")[1]["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)
        status, body = srv.request("GET", "/ping")
    assert status == 503 and body["status"] == "failed" and "disk gone" in body["error"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_one_image_matches_predict(server: ServerThread, model_path: Path, images: np.ndarray, fmt: str) -> None:
    body = encode(images[4], fmt)
    status, doc = server.request("POST", "/invocations", body, f"image/{fmt.lower()}")
    assert status == 200 and len(doc["predictions"]) == 1
    pred = doc["predictions"][0]
    expected = OnnxClassifier(model_path).predict_proba(preprocess(body).reshape(1, 1, 28, 28))[0]
    assert pred["index"] == int(expected.argmax()) and pred["probability"] == pytest.approx(float(expected.max()))
    assert sum(pred["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert pred["label"] == pred["top_k"][0]["label"] and len(pred["top_k"]) == 3


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(10, 28, 28), (10, 1, 28, 28)])
def test_npy_batch(server: ServerThread, model_path: Path, images: np.ndarray, shape: tuple[int, ...]) -> None:
    status, doc = server.request("POST", "/invocations", npy(images.reshape(shape)), "application/x-npy")
    assert status == 200 and len(doc["predictions"]) == 10
    expected = OnnxClassifier(model_path).predict_proba(images.reshape(10, 1, 28, 28).astype(np.float32) / 255)
    assert [p["index"] for p in doc["predictions"]] == expected.argmax(1).tolist()


@pytest.mark.slow
def test_json_instances_arrays_and_base64(server: ServerThread, images: np.ndarray) -> None:
    doc = {"instances": [(images[0] / 255).tolist(), {"b64": base64.b64encode(encode(images[1], "PNG")).decode()}]}
    status, out = server.request("POST", "/invocations", json.dumps(doc).encode(), "application/json; charset=utf-8")
    assert status == 200 and len(out["predictions"]) == 2


# --- 4xx, 5xx ---------------------------------------------------------------------------------
def _raw_exchange(port: int, head: bytes, chunks: Iterator[bytes]) -> bytes:
    """Send a request head and body chunks on a raw socket; return what the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head)
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:  # the server may close once it has answered
            pass
        return _read_response(sock)


def _read_response(sock: socket.socket) -> bytes:
    """One whole HTTP response (head and Content-Length body) from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")), 0
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.mark.slow
def test_413_from_content_length_before_the_body_is_sent(server: ServerThread) -> None:
    head = (
        f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n"
    ).encode()
    t0 = time.monotonic()
    answer = _raw_exchange(server.port, head, iter([b"\x89PNG" + b"\0" * 1000]))  # 1 KB of the promised 6 MB
    assert answer.startswith(b"HTTP/1.1 413") and b'"error"' in answer
    assert time.monotonic() - t0 < 10


@pytest.mark.slow
def test_413_for_a_chunked_body_stops_reading_at_the_limit(server: ServerThread) -> None:
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-npy\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = 1 << 16
    n = MAX_BODY // piece + 1  # one chunk past the limit, then stop sending (never the terminating chunk)
    answer = _raw_exchange(server.port, head, (b"%x\r\n" % piece + b"\0" * piece + b"\r\n" for _ in range(n)))
    assert answer.startswith(b"HTTP/1.1 413")


@pytest.mark.slow
@pytest.mark.parametrize("ctype", ["text/plain", "image/gif", None])
def test_415_unsupported_content_type(server: ServerThread, ctype: str | None) -> None:
    status, doc = server.request("POST", "/invocations", b"abc", ctype)
    assert status == 415 and "application/x-npy" in doc["error"]


def _object_npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buf.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "ctype", "words"),
    [
        (b"not a png", "image/png", "image/png"),
        (_object_npy(), "application/x-npy", "npy"),  # pickled: never loaded
        (npy(np.zeros((2, 28, 27), np.uint8)), "application/x-npy", "shape"),
        (npy(np.zeros((0, 28, 28), np.uint8)), "application/x-npy", "no images"),
        (npy(np.full((1, 28, 28), 3.0, np.float32)), "application/x-npy", "[0,1]"),
        (b"\x93NUMPY garbage", "application/x-npy", "npy"),
        (b"{not json", "application/json", "JSON"),
        (b'{"data": []}', "application/json", "instances"),
        (json.dumps({"instances": [[[0.1] * 28] * 27]}).encode(), "application/json", "shape"),
        (json.dumps({"instances": [[1, [2]]]}).encode(), "application/json", "instances[0]"),
        (json.dumps({"instances": [{"b64": "@@@"}]}).encode(), "application/json", "base64"),
    ],
)
def test_400_bad_input_is_a_json_error(server: ServerThread, body: bytes, ctype: str, words: str) -> None:
    status, doc = server.request("POST", "/invocations", body, ctype)
    assert status == 400 and words in doc["error"] and "Traceback" not in doc["error"]


def npy_header(shape: tuple[int, ...], descr: str = "|u1", version: tuple[int, int] = (1, 0)) -> bytes:
    """An .npy header alone: what the array claims to be, without the data."""
    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(buf, header)
    else:
        np.lib.format.write_array_header_2_0(buf, header)
    return buf.getvalue()


def json_instances(instances: list[Any]) -> bytes:
    return json.dumps({"instances": instances}).encode()


@pytest.mark.slow
def test_413_over_the_image_cap_before_decoding(server: ServerThread, images: np.ndarray) -> None:
    many = np.resize(images, (MAX_IMAGES + 1, 28, 28))
    assert server.request("POST", "/invocations", npy(many[:MAX_IMAGES]), "application/x-npy")[0] == 200
    status, doc = server.request("POST", "/invocations", npy(many), "application/x-npy")
    assert status == 413 and f"{MAX_IMAGES + 1} images in one request, over the limit of {MAX_IMAGES}" in doc["error"]
    # 128 bytes that declare a billion images (5.7 TiB as float64): refused from the header
    status, doc = server.request("POST", "/invocations", npy_header((10**9, 28, 28), "<f8"), "application/x-npy")
    assert status == 413 and "1,000,000,000 images" in doc["error"]
    body = json_instances([[[0.0] * 28] * 28] * (MAX_IMAGES + 1))
    status, doc = server.request("POST", "/invocations", body, "application/json")
    assert status == 413 and doc["error"].startswith(f"application/json: {MAX_IMAGES + 1} images")


@pytest.mark.slow
def test_413_when_the_images_of_a_request_declare_too_many_pixels(server: ServerThread) -> None:
    """Each image is under the per-image cap, but together they are over the request's budget: the second
    is refused from its header, before it is decoded."""
    side = 6000
    big = Image.new("L", (side, side), 250)
    ImageDraw.Draw(big).rectangle((2000, 1000, 4000, 5000), fill=40)
    assert 2 * side * side > MAX_REQUEST_PIXELS >= side * side
    first = encode(np.asarray(big), "PNG")
    b64 = [base64.b64encode(data).decode() for data in (first, png_header_only(side, side))]
    status, doc = server.request("POST", "/invocations", json_instances([{"b64": b} for b in b64]), "application/json")
    assert status == 413 and doc["error"].startswith("instances[1]: its 36,000,000 pixels take the request past")
    status, doc = server.request("POST", "/invocations", json_instances([{"b64": b64[0]}]), "application/json")
    assert status == 200 and len(doc["predictions"]) == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "ctype", "words"),
    [
        (b'{"instances": ' + b"[" * 1100 + b"]" * 1100 + b"}", "application/json", "nested too deeply"),
        (b'{"instances": [' + b"[" * 900 + b"0" + b"]" * 900 + b"]}", "application/json", "instances[0]"),
        (npy_header((100, 28, 28)), "application/x-npy", "but the body holds 0"),
        (npy_header((1, 28, 28), "<f8") + b"\0" * 100, "application/x-npy", "6,272 bytes of data"),
        (npy_header((1, 28, 28), "<U10") + b"\0" * 31360, "application/x-npy", "dtype <U10 is not numeric"),
        (npy_header((1, 28, 28, 10**9)), "application/x-npy", "shape [1, 28, 28, 1000000000]"),
        (npy_header((2, 28, 28), version=(2, 0)) + bytes(1568), "application/x-npy", None),  # 2.0 is read: 200
        (b"\x93NUMPY\x03\x00" + b"\0" * 120, "application/x-npy", "version (3, 0)"),
        (
            b"\x93NUMPY\x01\x00\x76\x00{'descr': '|u1', 'fortran_order': False, 'shape': "
            + b"(" * 50
            + b"}".ljust(56)
            + b"\n",
            "application/x-npy",
            "not a readable .npy array",
        ),
        (b"PK\x03\x04" + b"\0" * 100, "application/x-npy", "not an .npz archive"),
    ],
)
def test_hostile_bodies_are_400_not_500(server: ServerThread, body: bytes, ctype: str, words: str | None) -> None:
    status, doc = server.request("POST", "/invocations", body, ctype)
    if words is None:
        assert status == 200 and len(doc["predictions"]) == 2
        return
    assert status == 400 and words in doc["error"], doc


def test_requests_wait_for_a_worker(images: np.ndarray) -> None:
    """However many clients send at once, at most `workers` requests are decoded and classified at a time."""
    lock, running, most = threading.Lock(), [0], [0]

    class Slow:
        classes: ClassVar[list[str]] = list(CLASSES)
        metadata: ClassVar[dict[str, str]] = {}

        def predict_proba(self, batch: np.ndarray) -> np.ndarray:
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.1)
            with lock:
                running[0] -= 1
            return np.full((len(batch), 10), 0.1, np.float32)

    with ServerThread(create_app(lambda: Slow(), workers=2)) as srv:
        deadline = time.monotonic() + 20
        while srv.request("GET", "/ping")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        statuses: list[int] = []
        body = npy(images[:4])
        clients = [
            threading.Thread(
                target=lambda: statuses.append(srv.request("POST", "/invocations", body, "application/x-npy")[0])
            )
            for _ in range(8)
        ]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
    assert statuses == [200] * 8 and most[0] == 2


@pytest.mark.slow
def test_malformed_http_is_uvicorns_plain_text_400(server: ServerThread) -> None:
    """Below the app: uvicorn answers a request it cannot parse itself, in plain text (README, `fmnist serve`)."""
    answer = _raw_exchange(server.port, b"POST /invocations HTTP/1.1\r\nContent-Length: x\r\n\r\n", iter([]))
    assert answer.startswith(b"HTTP/1.1 400") and b"content-type: text/plain" in answer.lower()


@pytest.mark.slow
def test_404_and_405_are_json(server: ServerThread) -> None:
    assert server.request("GET", "/nowhere")[0] == 404
    assert server.request("GET", "/invocations")[0] == 405


def test_500_is_json_without_a_traceback() -> None:
    class Broken:
        classes: ClassVar[list[str]] = [str(i) for i in range(10)]

        def predict_proba(self, batch: np.ndarray) -> np.ndarray:
            raise RuntimeError("boom in the session")

        def top_k(self, probs_row: np.ndarray, k: int = 3) -> list[dict[str, Any]]:
            return []

    with ServerThread(create_app(lambda: Broken())) as srv:
        status, doc = srv.request("POST", "/invocations", npy(np.zeros((1, 28, 28), np.uint8)), "application/x-npy")
    assert status == 500 and "boom" not in doc["error"] and "Traceback" not in json.dumps(doc)


# --- the command -----------------------------------------------------------------------------
def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "400", "NO_COLOR": "1"}


def _start(model: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fmnist_tui", "serve", "--model", str(model), "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    line = proc.stdout.readline() if proc.stdout else ""
    assert "http://127.0.0.1:" in line, line + (proc.stderr.read() if proc.stderr else "")
    return proc, int(line.split("http://127.0.0.1:")[1].split()[0])


@pytest.mark.slow
def test_sigterm_finishes_the_request_in_flight_and_exits_0(model_path: Path, images: np.ndarray) -> None:
    proc, port = _start(model_path)
    try:
        body = npy(images)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-npy\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body[:100]
            )
            time.sleep(0.3)  # the request is now in flight: head read, body half sent
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            sock.sendall(body[100:])
            answer = _read_response(sock)
        assert answer.startswith(b"HTTP/1.1 200") and b"predictions" in answer
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_port_in_use_is_one_line_and_exit_1(model_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "fmnist_tui", "serve", "--model", str(model_path), "--port", str(port)],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=60,
        )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port}" in lines[0] and "in use" in lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("content", [b"not an onnx file", None])
def test_invalid_model_refuses_to_start(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "bad.onnx"
    if content is not None:
        path.write_bytes(content)
    proc = subprocess.run(
        [sys.executable, "-m", "fmnist_tui", "serve", "--model", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert proc.returncode == 1 and "bad.onnx" in proc.stderr and "Traceback" not in proc.stderr
    assert "serving" not in proc.stdout


@pytest.mark.slow
def test_a_model_without_fmnist_metadata_is_served_with_fashion_mnist_names(
    tmp_path: Path, model_path: Path, images: np.ndarray
) -> None:
    """The same rule as predict (one place: OnnxClassifier): the server says which names it uses."""
    import onnx

    model = onnx.load(model_path)
    del model.metadata_props[:]
    onnx.save(model, tmp_path / "foreign.onnx")
    proc, port = _start(tmp_path / "foreign.onnx")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the model loads in a thread once the server is up
            conn.request("GET", "/ping")
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                break
            time.sleep(0.05)
        conn.request("POST", "/invocations", body=npy(images[:3]), headers={"Content-Type": "application/x-npy"})
        doc = json.loads(conn.getresponse().read())
        conn.close()
        assert {p["label"] for p in doc["predictions"]} <= set(CLASSES)
        assert set(doc["predictions"][0]["probabilities"]) == set(CLASSES)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    note = proc.stderr.read() if proc.stderr else ""
    assert f"note: {tmp_path / 'foreign.onnx'} has no fmnist metadata" in note and ", ".join(CLASSES) in note


@pytest.mark.slow
def test_serving_path_does_not_import_torch() -> None:
    code = (
        "import sys, fmnist_tui.deploy.serve, fmnist_tui.cli.serve_cmd, fmnist_tui.inference.session; "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], env=_env(), timeout=60).returncode == 0


# --- calibration and "unsure" ----------------------------------------------------------------
@pytest.mark.slow
def test_records_carry_the_ood_score_and_the_unsure_flag(server: ServerThread, images: np.ndarray) -> None:
    """The exported model is calibrated: every record has a number and a flag; a blank image is unsure."""
    batch = np.concatenate([images[:3], np.zeros((1, 28, 28), np.uint8)])
    status, doc = server.request("POST", "/invocations", npy(batch), "application/x-npy")
    assert status == 200 and doc["schema_version"] == 2
    for pred in doc["predictions"]:
        assert isinstance(pred["ood_score"], float) and isinstance(pred["unsure"], bool)
    assert doc["predictions"][-1]["unsure"] is True


@pytest.mark.slow
def test_a_client_that_disconnects_mid_body_costs_one_log_line_at_most(model_path: Path) -> None:
    proc, port = _start(model_path)
    try:
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
                sock.sendall(
                    b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-npy\r\n"
                    b"Content-Length: 5000\r\n\r\n" + b"\x93NUMPY" + b"\0" * 100
                )
                time.sleep(0.2)
            time.sleep(0.3)
        status = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        status.request("GET", "/ping")
        assert status.getresponse().status == 200  # still serving
        status.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    err = proc.stderr.read() if proc.stderr else ""
    assert "Traceback" not in err, err
    assert len([line for line in err.splitlines() if line.strip()]) <= 2, err  # one line per client at most


def test_a_broken_model_is_a_json_500_naming_it() -> None:
    from fmnist_tui.inference.session import ModelError

    class NaNModel:
        classes: ClassVar[list[str]] = list(CLASSES)

        def predict_proba(self, batch: np.ndarray) -> np.ndarray:
            raise ModelError("model.onnx: the model's outputs are not finite numbers (NaN or infinity)")

    with ServerThread(create_app(lambda: NaNModel())) as srv:
        status, doc = srv.request("POST", "/invocations", npy(np.zeros((1, 28, 28), np.uint8)), "application/x-npy")
    assert status == 500 and "not finite" in doc["error"]
