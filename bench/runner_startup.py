"""What a training costs besides its steps: started as an `fmnist train` process of its own (how studies ran
before the runner), or as a task of the runner's worker processes (study/runner.py), which keep torch and the
dataset loaded from one training to the next.

`python bench/runner_startup.py [--trainings 8] [--jobs 2]` trains the same tiny runs (mlp, 256 images, 1 epoch,
1 thread) both ways on the real dataset, and prints per training the wall time beyond its own training seconds
(summary.json), and the ratio. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fmnist_tui.core import machine  # noqa: E402
from fmnist_tui.core.config import TrainConfig  # noqa: E402
from fmnist_tui.study.runner import LocalRunner, Task  # noqa: E402

RECIPE = {"arch": "mlp", "epochs": 1, "subset": 256, "threads": 1}


def trained_seconds(runs: Path) -> float:
    return sum(json.loads(p.read_text())["train_seconds"] for p in runs.glob("*/summary.json"))


def as_processes(runs: Path, n: int) -> float:
    """N `fmnist train` processes one after another; the wall time."""
    t0 = time.perf_counter()
    for seed in range(n):
        args = ["--arch", "mlp", "--epochs", "1", "--subset", "256", "--threads", "1", "--seed", str(seed)]
        subprocess.run(
            [sys.executable, "-m", "fmnist_tui", "train", *args, "--out", str(runs)],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
    return time.perf_counter() - t0


def as_tasks(runs: Path, n: int, jobs: int) -> float:
    """N tasks of the runner's pool of `jobs` workers; the wall time × jobs (the processes' time, as above)."""
    tasks = [Task(TrainConfig.create(**RECIPE, seed=s, out=str(runs))) for s in range(n)]
    t0 = time.perf_counter()
    outcome = LocalRunner(jobs, 1).run(tasks, runs / "logs")
    assert not outcome.failed, outcome.failed
    return (time.perf_counter() - t0) * jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trainings", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=1, help="the runner's workers (1: the same work as one process)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "processes", Path(tmp) / "tasks"
        before = as_processes(a, args.trainings) - trained_seconds(a)
        after = as_tasks(b, args.trainings, args.jobs) - trained_seconds(b)
    n = args.trainings
    print(f"{machine.cpu()}; {n} trainings of mlp on 256 images, 1 epoch, 1 thread")
    print(f"start-up a training, as an `fmnist train` process: {before / n:.2f} s")
    print(f"start-up a training, as a task of the runner's {args.jobs} worker(s): {after / n:.2f} s")
    print(f"ratio: {before / max(after, 1e-9):.1f}× less a training")


if __name__ == "__main__":
    main()
