"""What keeping freed memory (fmnist_tui/training/allocator.py) buys a whole training run: `fmnist train` with
glibc's default malloc settings (FMNIST_ALLOCATOR=default) against the project's, interleaved, same seed.

`python bench/allocator_speed.py` trains cnn-k3 for 1 epoch on the first 15,000 images in fp32 with one thread,
3 times each way, and prints per run the wall time, the training seconds the run records (steps and validation),
the system time and the minor page faults of the process, then the ratios of the medians. Options: `--arch`,
`--kernel`, `--epochs`, `--subset` (0: all 50,000), `--threads`, `--precision`, `--repeats`. To approximate a
CPU without AVX-512 on one that has it, run it with `ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
MKL_ENABLE_INSTRUCTIONS=AVX2`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train_once(args: argparse.Namespace, allocator: str, out: Path, name: str) -> dict[str, float]:
    """One `fmnist train` process: its wall time, recorded training seconds, system time and minor page faults."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), FMNIST_ALLOCATOR=allocator)
    cmd = [sys.executable, "-m", "fmnist_tui", "train", "--arch", args.arch, "--epochs", str(args.epochs)]
    cmd += ["--precision", args.precision, "--threads", str(args.threads), "--seed", "0", "--out", str(out)]
    cmd += ["--name", name] + (["--kernel", str(args.kernel)] if args.arch == "cnn" else [])
    cmd += ["--subset", str(args.subset)] if args.subset else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"fmnist train failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    summary = json.loads((out / name / "summary.json").read_text())
    config = json.loads((out / name / "config.json").read_text())
    if config.get("allocator") != ("default" if allocator == "default" else "kept"):
        raise SystemExit(f"the run records allocator {config.get('allocator')!r} under FMNIST_ALLOCATOR={allocator}")
    return {
        "wall_s": wall,
        "train_s": summary["train_seconds"],
        "sys_s": after.ru_stime - before.ru_stime,
        "faults": after.ru_minflt - before.ru_minflt,
        "test_accuracy": summary["test_accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="cnn")
    parser.add_argument("--kernel", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--subset", type=int, default=15000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"default": [], "kept": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for allocator in results:  # interleaved, so that the machine's drift falls on both
                results[allocator].append(train_once(args, allocator, Path(tmp), f"{allocator}-{i}"))
    what = f"{args.arch}{'-k' + str(args.kernel) if args.arch == 'cnn' else ''}, {args.epochs} epoch(s)"
    size = f"{args.subset or 50000:,} images"
    print(f"{what}, {size}, {args.precision}, {args.threads} thread(s), {args.repeats} runs each")
    print(f"{'allocator':<10} {'wall s':>8} {'train s':>8} {'sys s':>7} {'page faults':>12}  test accuracy")
    for allocator, runs in results.items():
        for r in runs:
            print(
                f"{allocator:<10} {r['wall_s']:8.2f} {r['train_s']:8.2f} {r['sys_s']:7.2f} {r['faults']:12,.0f}  "
                f"{r['test_accuracy']:.2%}"
            )
    med = {a: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for a, runs in results.items()}
    print(
        f"medians: wall {med['default']['wall_s']:.2f} → {med['kept']['wall_s']:.2f} s "
        f"({med['default']['wall_s'] / med['kept']['wall_s']:.2f}×), training {med['default']['train_s']:.2f} → "
        f"{med['kept']['train_s']:.2f} s ({med['default']['train_s'] / med['kept']['train_s']:.2f}×), "
        f"page faults {med['default']['faults'] / max(med['kept']['faults'], 1):.1f}× fewer"
    )


if __name__ == "__main__":
    main()
