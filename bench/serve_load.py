"""Load test of `fmnist serve` on loopback: many concurrent PNG clients, batched x-npy throughput, then
a burst of the largest requests and the server's memory.

Starts the real server (`python -m fmnist_tui serve --port 0`) as a subprocess, waits for /ping,
then runs `--clients` threads, each on its own keep-alive connection, posting one PNG per request
for `--duration` seconds; then `--npy-clients` threads posting [N,28,28] uint8 arrays; then the
burst: `--burst-clients` threads at once, each posting every kind of the largest request once
(see BURST_KINDS: 256 base64 PNGs in JSON, 256 float64 images in x-npy, 256 JSON arrays, an
8192×8192 RGBA PNG, and two requests over the image cap). The server's resident memory (Linux
/proc) is read before, at its peak during the burst, and 2 s after it. Finally it stops the
server with SIGTERM and checks that it exits 0. Only 127.0.0.1 traffic; every loop ends at its
deadline. The client runs on the same machine as the server and shares its CPU.

    python bench/serve_load.py --model export/cnn-k3-s0.onnx           # 32 clients × 30 s, the real figure
    python bench/serve_load.py --model export/cnn-k3-s0.onnx --quick   # 3 s per phase, a smoke run
"""

from __future__ import annotations

import argparse
import base64
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
from PIL import Image, ImageDraw

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


def json_bytes(instances: list[object]) -> bytes:
    return json.dumps({"instances": instances}).encode()


def big_png(side: int = 8192) -> bytes:
    """An RGBA PNG of side×side (64 Mi pixels, the most one image may declare) that compresses to ~280 KB."""
    img = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    ImageDraw.Draw(img).rectangle((side // 4, side // 5, 3 * side // 4, 4 * side // 5), fill=(60, 60, 80, 255))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def simple_garment(i: int) -> np.ndarray:
    """A flat 28×28 garment (a light bar on black) that compresses to ~100 bytes of PNG."""
    x = np.zeros((28, 28), np.uint8)
    x[4 + i % 4 : 24, 8:20] = 200
    return x


#: The largest requests of each kind (256 images, or one image of 64 Mi pixels), and two over the cap
#: (issue 11: 10,000 base64 PNGs in 1.3 MB of JSON, 4,000 images in a 3 MB x-npy): name → builder
BURST_KINDS = {
    "json-b64-256": lambda im: (
        json_bytes([{"b64": base64.b64encode(png_bytes(x)).decode()} for x in im[:256]]),
        "application/json",
    ),
    "npy-f64-256": lambda im: (npy_bytes(im[:256].astype(np.float64) / 255), "application/x-npy"),
    "json-arrays-256": lambda im: (json_bytes([(x / 255).round(3).tolist() for x in im[:256]]), "application/json"),
    "png-8192": lambda im: (big_png(), "image/png"),
    "json-b64-10000": lambda im: (
        json_bytes([{"b64": base64.b64encode(png_bytes(simple_garment(i))).decode()} for i in range(10_000)]),
        "application/json",
    ),
    "npy-u8-4000": lambda im: (npy_bytes(np.resize(im, (4000, 28, 28))), "application/x-npy"),
}


def memory_mib(pid: int) -> dict[str, float]:
    """The process's resident memory now (VmRSS) and its peak (VmHWM), in MiB; empty off Linux."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    return {key: round(int(fields[name].split()[0]) / 1024, 1) for key, name in (("rss", "VmRSS"), ("peak", "VmHWM"))}


def reset_peak(pid: int) -> bool:
    """Restart the process's peak-RSS count (Linux: 5 → /proc/PID/clear_refs); False where that is not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def burst(port: int, requests: list[tuple[str, bytes, str]], clients: int) -> tuple[dict[str, dict[str, int]], float]:
    """`clients` threads at once, each sending every request once (each starting at a different one):
    status counts per kind, and the wall time until the last answer."""
    counts: dict[str, dict[str, int]] = {name: {} for name, _, _ in requests}
    lock = threading.Lock()

    def one_client(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        for i in range(len(requests)):
            name, body, ctype = requests[(i + offset) % len(requests)]
            try:
                conn.request("POST", "/invocations", body=body, headers={"Content-Type": ctype})
                resp = conn.getresponse()
                resp.read()
                status = str(resp.status)
            except (OSError, http.client.HTTPException):
                status = "no answer"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            with lock:
                counts[name][status] = counts[name].get(status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=one_client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts, time.perf_counter() - t0


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
    parser.add_argument("--burst-clients", type=int, default=32, help="clients of the burst (0: no burst)")
    parser.add_argument(
        "--burst-kinds",
        default=",".join(BURST_KINDS),
        help=f"comma-separated request kinds of the burst (of {', '.join(BURST_KINDS)})",
    )
    parser.add_argument("--skip-load", action="store_true", help="only the burst (no PNG and x-npy phases)")
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

    kinds = [k for k in args.burst_kinds.split(",") if k] if args.burst_clients else []
    unknown = set(kinds) - set(BURST_KINDS)
    if unknown:
        sys.exit(f"unknown burst kinds: {', '.join(sorted(unknown))}")
    burst_requests = [(name, *BURST_KINDS[name](images)) for name in kinds]

    proc, port = start_server(args.model)
    result: dict[str, object] = {"model": str(args.model), "seconds_per_phase": seconds, "cpu_count": os.cpu_count()}
    bad = 0
    try:
        result["memory_mib_at_start"] = memory_mib(proc.pid)
        if not args.skip_load:
            single, wall1 = load_phase(port, pngs, "image/png", args.clients, seconds)
            batched, wall2 = load_phase(port, npys, "application/x-npy", args.npy_clients, seconds)
            result["png"] = {"clients": args.clients, **summary(single, wall1, 1)}
            result["npy"] = {
                "clients": args.npy_clients,
                "batch": args.npy_batch,
                **summary(batched, wall2, args.npy_batch),
            }
            bad += single.server_errors + batched.server_errors + single.failures + batched.failures
        if burst_requests:
            before = memory_mib(proc.pid)
            peak_reset = reset_peak(proc.pid)
            counts, wall = burst(port, burst_requests, args.burst_clients)
            during = memory_mib(proc.pid)
            time.sleep(2.0)
            after = memory_mib(proc.pid)
            result["burst"] = {
                "clients": args.burst_clients,
                "requests": len(burst_requests) * args.burst_clients,
                "seconds": round(wall, 2),
                "status_by_kind": counts,
                "rss_mib_before": before.get("rss"),
                "peak_rss_mib": during.get("peak"),
                "peak_is_the_bursts": peak_reset,
                "rss_mib_2s_after": after.get("rss"),
            }
            bad += sum(n for c in counts.values() for status, n in c.items() if not status.startswith(("2", "4")))
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=600)
    result["server_exit_code_after_sigterm"] = code
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_result(result, seconds)
    sys.exit(1 if bad or code != 0 else 0)


def print_result(result: dict[str, object], seconds: float) -> None:
    p, n, b = result.get("png"), result.get("npy"), result.get("burst")
    if isinstance(p, dict) and isinstance(n, dict):
        print(
            f"PNG, {p['clients']} clients × {seconds:.0f} s: {p['requests_per_s']} req/s · p50 {p['p50_ms']} ms · "
            f"p99 {p['p99_ms']} ms · 5xx {p['5xx']} · 4xx {p['4xx']} · connection errors {p['connection_errors']}"
        )
        print(
            f"x-npy [{n['batch']},28,28], {n['clients']} clients: {n['requests_per_s']} req/s = "
            f"{n['images_per_s']:,} images/s · p50 {n['p50_ms']} ms · p99 {n['p99_ms']} ms · 5xx {n['5xx']}"
        )
    if isinstance(b, dict):
        print(
            f"burst, {b['clients']} clients × {len(b['status_by_kind'])} largest requests: {b['seconds']} s · "
            f"server RSS {b['rss_mib_before']} MiB before, peak {b['peak_rss_mib']} MiB"
            f"{'' if b['peak_is_the_bursts'] else ' (peak since start)'}, {b['rss_mib_2s_after']} MiB 2 s after"
        )
        for name, statuses in b["status_by_kind"].items():
            print(f"  {name}: " + ", ".join(f"{n} × {status}" for status, n in sorted(statuses.items())))
    start = result.get("memory_mib_at_start")
    if isinstance(start, dict):
        print(f"server RSS at start: {start.get('rss')} MiB")
    print(f"server exit code after SIGTERM: {result['server_exit_code_after_sigterm']}")


if __name__ == "__main__":
    main()
