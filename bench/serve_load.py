"""Load test of `fmnist serve` on loopback: many concurrent PNG clients, then batched x-npy throughput.

Starts the real server (`python -m fmnist_tui serve --port 0`) as a subprocess, waits for /ping,
then runs `--clients` threads, each on its own keep-alive connection, posting one PNG per request
for `--duration` seconds; then `--npy-clients` threads posting [N,28,28] uint8 arrays. Finally it
stops the server with SIGTERM and checks that it exits 0. Only 127.0.0.1 traffic; every loop ends
at its deadline. The client runs on the same machine as the server and shares its CPU.

    python bench/serve_load.py --model export/cnn-k3-s0.onnx           # 32 clients × 30 s, the real figure
    python bench/serve_load.py --model export/cnn-k3-s0.onnx --quick   # 3 s per phase, a smoke run
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@dataclass
class Tally:
    """Latencies (s) of successful requests, and counts by status class."""

    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    client_errors: int = 0
    server_errors: int = 0
    failures: int = 0  # connection errors: no status at all
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int | None, seconds: float) -> None:
        with self.lock:
            if status is None:
                self.failures += 1
            elif status >= 500:
                self.server_errors += 1
            elif status >= 400:
                self.client_errors += 1
            else:
                self.ok += 1
                self.latencies.append(seconds)


def test_images(n: int) -> np.ndarray:
    """Real test images when the dataset is found, else a fixed random set (numbers are then still valid)."""
    try:
        from fmnist_tui.core.data import load_dataset

        return load_dataset().test_images[:n]
    except Exception:  # noqa: BLE001 - any reason the dataset is missing: synthetic pixels exercise the same code
        return np.random.default_rng(0).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def start_server(model: Path, timeout: float = 60.0) -> tuple[subprocess.Popen[str], int]:
    """The server subprocess and the port it picked (read from its start-up line)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "400"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fmnist_tui", "serve", "--model", str(model), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if "http://127.0.0.1:" not in line:
        proc.kill()
        sys.exit(f"server did not start: {line.strip()} {proc.stderr.read().strip() if proc.stderr else ''}")
    port = int(line.split("http://127.0.0.1:")[1].split()[0])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/ping")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    proc.kill()
    sys.exit("server never answered /ping with 200")


def client(port: int, bodies: list[bytes], ctype: str, deadline: float, tally: Tally) -> None:
    """One client: its own keep-alive connection, requests back to back until the deadline."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    i = 0
    while time.monotonic() < deadline:
        body = bodies[i % len(bodies)]
        i += 1
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/invocations", body=body, headers={"Content-Type": ctype})
            resp = conn.getresponse()
            resp.read()
            tally.add(resp.status, time.perf_counter() - t0)
        except (OSError, http.client.HTTPException):
            tally.add(None, time.perf_counter() - t0)
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.close()


def load_phase(port: int, bodies: list[bytes], ctype: str, clients: int, seconds: float) -> tuple[Tally, float]:
    tally = Tally()
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=client, args=(port, bodies, ctype, deadline, tally)) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tally, time.perf_counter() - t0


def summary(tally: Tally, wall: float, images_per_request: int) -> dict[str, float | int]:
    lat = np.array(tally.latencies) * 1000
    return {
        "requests": tally.ok,
        "requests_per_s": round(tally.ok / wall, 1),
        "images_per_s": round(tally.ok * images_per_request / wall, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
        "4xx": tally.client_errors,
        "5xx": tally.server_errors,
        "connection_errors": tally.failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="ONNX model (default: predict's default model)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per phase")
    parser.add_argument("--npy-clients", type=int, default=4)
    parser.add_argument("--npy-batch", type=int, default=256, help="images per x-npy request")
    parser.add_argument("--quick", action="store_true", help="3 s per phase: a smoke run")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    seconds = 3.0 if args.quick else args.duration
    if args.model is None:
        from fmnist_tui.inference.session import default_model_path

        args.model = default_model_path()
    images = test_images(max(64, args.npy_batch))
    pngs = [png_bytes(img) for img in images[:64]]
    npys = [npy_bytes(np.roll(images, s, axis=0)[: args.npy_batch]) for s in range(4)]

    proc, port = start_server(args.model)
    try:
        single, wall1 = load_phase(port, pngs, "image/png", args.clients, seconds)
        batched, wall2 = load_phase(port, npys, "application/x-npy", args.npy_clients, seconds)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    result = {
        "model": str(args.model),
        "seconds_per_phase": seconds,
        "cpu_count": os.cpu_count(),
        "png": {"clients": args.clients, **summary(single, wall1, 1)},
        "npy": {"clients": args.npy_clients, "batch": args.npy_batch, **summary(batched, wall2, args.npy_batch)},
        "server_exit_code_after_sigterm": code,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        p, n = result["png"], result["npy"]
        print(
            f"PNG, {p['clients']} clients × {seconds:.0f} s: {p['requests_per_s']} req/s · p50 {p['p50_ms']} ms · "
            f"p99 {p['p99_ms']} ms · 5xx {p['5xx']} · 4xx {p['4xx']} · connection errors {p['connection_errors']}"
        )
        print(
            f"x-npy [{n['batch']},28,28], {n['clients']} clients: {n['requests_per_s']} req/s = "
            f"{n['images_per_s']:,} images/s · p50 {n['p50_ms']} ms · p99 {n['p99_ms']} ms · 5xx {n['5xx']}"
        )
        print(f"server exit code after SIGTERM: {code}")
    bad = single.server_errors + batched.server_errors + single.failures + batched.failures
    sys.exit(1 if bad or code != 0 else 0)


if __name__ == "__main__":
    main()
