"""What per-batch host syncs cost: epoch time of the loop that read loss and accuracy every batch vs this one.

The old loop (two `.item()` per batch, plus a progress event per batch) is taken from a git commit
that still has it, exported into a temporary folder; both versions run the real `fmnist train` as a
subprocess, one epoch on the full 50,000-image training split, on the CPU with a fixed thread count.
The figure is metrics.csv's `seconds` (training plus validation, no start-up). Runs alternate
before/after, in counterbalanced pairs (AB BA AB …) so that drift in the machine's load hits both
alike; the report gives medians and their ratio.

    python bench/sync_cost.py                      # mlp and cnn-k3, 3 pairs each, 2 threads
    python bench/sync_cost.py --pairs 5 --models mlp
    python bench/sync_cost.py --before /path/to/old/checkout   # a folder holding fmnist_tui/
    python bench/sync_cost.py --subset 2000 --pairs 1          # a smoke run (numbers not meaningful)
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The last commit on main with the per-batch `.item()` loop (the base of the branch that removed it).
OLD_LOOP = "c37361d"
MODELS = {"mlp": ["--arch", "mlp"], "cnn-k3": ["--arch", "cnn", "--kernel", "3"]}


def cpu_kind() -> str:
    """Model name and the vector extensions that decide torch's CPU kernels (Linux /proc/cpuinfo)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
        platform.machine(),
    )
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    has = [
        label
        for flag, label in (
            ("avx2", "AVX2"),
            ("avx512f", "AVX-512"),
            ("avx512_bf16", "AVX-512 BF16"),
            ("amx_bf16", "AMX BF16"),
        )
        if flag in flags
    ]
    return f"{name} ({', '.join(has) or 'no AVX2'}; {os.cpu_count()} logical CPUs)"


def export_code(ref: str, into: Path) -> Path:
    """`fmnist_tui/` as of git `ref`, or an existing folder holding it; returns the folder for PYTHONPATH."""
    if Path(ref).is_dir():
        if not (Path(ref) / "fmnist_tui").is_dir():
            sys.exit(f"--before {ref}: no fmnist_tui/ package in that folder")
        return Path(ref)
    proc = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "fmnist_tui"], capture_output=True, check=False
    )
    if proc.returncode != 0:
        sys.exit(f"--before {ref}: not a folder, and git cannot export it ({proc.stderr.decode().strip()})")
    with tarfile.open(fileobj=BytesIO(proc.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def epoch_seconds(code: Path, model: str, out: Path, name: str, threads: int, subset: int | None) -> float:
    """One `fmnist train` epoch with the package in `code`; its metrics.csv `seconds`."""
    cmd = [
        sys.executable,
        "-m",
        "fmnist_tui",
        "train",
        *MODELS[model],
        "--epochs",
        "1",
        "--threads",
        str(threads),
        "--device",
        "cpu",
        "--out",
        str(out),
        "--name",
        name,
    ]
    if subset:
        cmd += ["--subset", str(subset)]
    env = {**os.environ, "PYTHONPATH": str(code)}
    proc = subprocess.run(cmd, env=env, cwd=out, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr.strip()}")
    with open(out / name / "metrics.csv", newline="") as fh:
        return float(next(csv.DictReader(fh))["seconds"])


def measure(
    model: str, codes: dict[str, Path], out: Path, pairs: int, threads: int, subset: int | None
) -> dict[str, list[float]]:
    """Seconds per epoch of each version, pairs run in alternating order (before-after, after-before, …)."""
    times: dict[str, list[float]] = {label: [] for label in codes}
    for i in range(pairs):
        order = list(codes) if i % 2 == 0 else list(codes)[::-1]
        for label in order:
            sec = epoch_seconds(codes[label], model, out, f"{model}-{label}-{i}", threads, subset)
            times[label].append(sec)
            print(f"  {model:<7} pair {i + 1}/{pairs} {label:<6} {sec:7.2f} s", flush=True)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default=OLD_LOOP, help=f"git ref or folder of the old loop (default {OLD_LOOP})")
    ap.add_argument("--pairs", type=int, default=3, help="before/after pairs per model (default 3)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--subset", type=int, default=None, help="train on N images only (smoke runs)")
    args = ap.parse_args()
    import torch  # only for its version in the header; the runs are subprocesses

    with tempfile.TemporaryDirectory(prefix="fmnist-sync-") as tmp:
        codes = {"before": export_code(args.before, Path(tmp) / "before"), "after": ROOT}
        out = Path(tmp) / "runs"
        out.mkdir()
        print(f"CPU: {cpu_kind()}")
        print(
            f"torch {torch.__version__}, {args.threads} threads, device cpu; before = {args.before}, "
            f"after = {ROOT}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
        )
        print(f"one epoch of {args.subset or 50_000:,} training images + validation, seconds from metrics.csv")
        results = {m: measure(m, codes, out, args.pairs, args.threads, args.subset) for m in args.models}
    print(
        f"load average now {' '.join(f'{x:.1f}' for x in os.getloadavg())} (a shared machine: compare the "
        "medians, and the minima as the least disturbed runs)"
    )
    print(
        f"\n{'model':<8} {'before s/epoch':>14} {'after s/epoch':>13} {'before/after':>12}   (medians of "
        f"{args.pairs}; min before / after)"
    )
    for model, times in results.items():
        b, a = statistics.median(times["before"]), statistics.median(times["after"])
        print(
            f"{model:<8} {b:14.2f} {a:13.2f} {b / a:11.3f}×   ({min(times['before']):.2f} / {min(times['after']):.2f})"
        )


if __name__ == "__main__":
    main()
