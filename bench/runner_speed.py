"""Wall time of the kernel study's grid trained one at a time (`fmnist study kernel --jobs 1`, all cores per
training) vs two at a time (--jobs 2, cores/2 each), and through Ray (`--ray local`: a local Ray instance started
for the run, one CPU per training task): what sets the runner's default --jobs.

Each mode trains the same grid from scratch into its own temporary runs folder (--no-shipped), so none reuses
another's runs. The default grid is the kernel study's (mlp + cnn k3/5/7, 3 seeds, 15 epochs): that takes two
whole studies of time. `--quick` runs a small grid to check the script and see the trend.

    python bench/runner_speed.py --quick
    python bench/runner_speed.py                 # the real figure (serial, then --jobs 2)
    python bench/runner_speed.py --modes 2       # only the parallel run
    python bench/runner_speed.py --quick --modes 1,2,ray   # the local pool and Ray side by side

On a GPU machine, `ray@F` trains through Ray with each task reserving F of the GPU (`--task-gpus F`), so 1/F
trainings share it; the throughput column shows how many fit:

    python bench/runner_speed.py --modes ray@1,ray@0.5,ray@0.25,ray@0.125 --task-cpus 2 \
        --archs cnn --kernels 3 --seeds 8 --epochs 2 --device cuda --no-latency
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--archs", "mlp,cnn", "--kernels", "3", "--seeds", "2", "--epochs", "1", "--subset", "4096"]


def run_mode(mode: str, grid: list[str], work: Path, task_cpus: int) -> dict:
    """Run the study with `--jobs N` (or `--ray local`) into a fresh folder; wall time includes the workers'
    start-up (and Ray's)."""
    runs, out = work / f"runs-{mode.replace('@', '-')}", work / f"out-{mode.replace('@', '-')}"
    if mode.startswith("ray"):
        share = mode.partition("@")[2]
        how = ["--ray", "local", "--task-cpus", str(task_cpus), *(["--task-gpus", share] if share else [])]
    else:
        how = ["--jobs", mode]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [
        sys.executable,
        "-m",
        "fmnist_tui",
        "study",
        "kernel",
        "--no-shipped",
        *grid,
        *how,
        "--runs",
        str(runs),
        "--out",
        str(out),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(how)} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    doc = json.loads((out / "results.json").read_text())
    runs_done = [json.loads(p.read_text()) for p in runs.glob("*/summary.json")]
    configs = [json.loads(p.read_text()) for p in runs.glob("*/config.json")]
    return {
        "mode": " ".join(how),
        "threads_per_training": sorted({c.get("threads") for c in configs}),
        "wall_seconds": round(wall, 1),
        "trainings": len(runs_done),
        "trainings_per_minute": round(60 * len(runs_done) / wall, 2),
        "mean_run_seconds": round(sum(r["train_seconds"] for r in runs_done) / max(1, len(runs_done)), 1),
        "accuracy": {r["config"]: round(r["test_acc_mean"], 4) for r in doc["table"]},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small grid: mlp + cnn-k3, 2 seeds, 1 epoch, 4,096 images")
    ap.add_argument(
        "--modes",
        default="1,2",
        help="--jobs values, 'ray', or 'ray@F' (Ray tasks of F GPU each) to time, comma-separated (default 1,2)",
    )
    ap.add_argument("--task-cpus", type=int, default=1, help="CPUs each Ray task reserves (default 1)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ap.add_argument("--keep", type=Path, help="keep the runs in this folder instead of a temporary one")
    args, extra = ap.parse_known_args()
    grid = QUICK if args.quick else extra  # anything else is passed on to `fmnist study kernel`
    work = args.keep or Path(tempfile.mkdtemp(prefix="fmnist-bench-"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"grid: {' '.join(grid) or '(the kernel study grid)'} · {cores} cores", flush=True)
    results = []
    try:
        for mode in args.modes.split(","):
            res = run_mode(mode.strip(), grid, work, args.task_cpus)
            results.append(res)
            print(
                f"{res['mode']} × {res['threads_per_training']} threads: {res['wall_seconds']:8.1f} s wall for "
                f"{res['trainings']} trainings (mean {res['mean_run_seconds']:.1f} s each; "
                f"{res['trainings_per_minute']:.1f} trainings/min)",
                flush=True,
            )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if len(results) > 1:
        for r in results[1:]:
            rate = r["trainings_per_minute"] / max(1e-9, results[0]["trainings_per_minute"])
            print(f"{r['mode']} vs {results[0]['mode']}: {rate:.2f}× the trainings per minute")
    if args.json:
        args.json.write_text(json.dumps({"grid": grid, "cores": cores, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
