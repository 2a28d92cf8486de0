"""A study plan's time, estimated from this machine's measured speed: a few timed training steps and forward
passes per config (`training.speed`, which imports torch on use), the time a training process takes to
start, and the dataset's load, then the runs packed onto the parallel jobs as the scheduler packs them."""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.config import TrainConfig
from ..core.errors import DataError
from ..core.runs import Run
from .plan import DONE, RESUME

#: Fashion-MNIST's split sizes (train / validation / test), when the dataset itself cannot be read
SIZES = (50_000, 10_000, 10_000)
#: the time a study's preset should take (minutes): the issues' budget for the default preset and for `--quick`
BUDGET_MINUTES = 60.0
QUICK_BUDGET_MINUTES = 5.0
#: how far a study's wall time has run over its estimate, at most, measured from scratch under the AVX2
#: approximation (README: Studies, Time): the pooling study, whose 18 short runs spend the most in what the
#: estimate leaves out and whose two trainings at once share the memory bandwidth, by 19% at 15 epochs and by 31% at
#: 8 (1,802 s of trainings where 1,372 were estimated). A plan fits its budget when it fits with this much to spare.
ESTIMATE_ERROR = 0.35


def plannable(budget_s: float) -> float:
    """The estimated seconds a plan may take to fit `budget_s`: the budget less the estimate's measured error."""
    return budget_s / (1 + ESTIMATE_ERROR)


@dataclass
class Estimate:
    """Estimated seconds per planned run (0 for a finished one), the measured speeds behind them, and the
    wall time of the whole plan with `jobs` trainings at once."""

    seconds: dict[str, float]
    speeds: dict[str, dict[str, Any]]  # config label → training.speed.Speed.to_dict()
    start_s: float
    load_s: float
    jobs: int
    threads: int
    wall_s: float = 0.0
    measuring_s: float = 0.0
    sizes: tuple[int, int, int] = SIZES
    notes: list[str] = field(default_factory=list)
    after_s: dict[str, float] = field(default_factory=dict)  # per run: the study's work on it once trained
    measured: dict[str, Any] = field(default_factory=dict)  # speed key → training.speed.Speed, for `fit_epochs`
    reused: bool = False  # made from another estimate's measured speeds (`estimate(reuse=...)`)

    def to_dict(self) -> dict[str, Any]:
        return {
            "wall_seconds": round(self.wall_s, 1),
            "run_seconds": {k: round(v, 1) for k, v in self.seconds.items()},
            "after_seconds": {k: round(v, 1) for k, v in self.after_s.items()},
            "speeds": self.speeds,
            "start_seconds": round(self.start_s, 2),
            "load_seconds": round(self.load_s, 2),
            "jobs": self.jobs,
            "threads": self.threads,
            "measuring_seconds": round(self.measuring_s, 1),
        }


def makespan(seconds: list[float], jobs: int) -> float:
    """Wall time of runs started longest first, each on the first free of `jobs` slots (the scheduler's order)."""
    slots = [0.0] * max(1, jobs)
    for s in sorted(seconds, reverse=True):
        heapq.heapreplace(slots, slots[0] + s)  # the least loaded slot takes the next longest run
    return max(slots)


def epochs_done(cfg: TrainConfig, st: str) -> int:
    """Epochs an interrupted run already has (its metrics.csv rows); 0 for a new or restarted one."""
    if st != RESUME:
        return 0
    try:
        return len(Run(cfg.run_dir).metrics())
    except Exception:  # noqa: BLE001 - a damaged metrics.csv: count the run as starting over
        return 0


def estimate(
    configs: list[TrainConfig],
    statuses: dict[str, str],
    jobs: int,
    threads: int,
    data_dir: Path | None = None,
    after: Callable[[TrainConfig, int], int] | None = None,
    reuse: Estimate | None = None,
) -> Estimate:
    """Measure each config that still has training to do (one per label: seeds train alike) with `threads`
    torch threads, and estimate every run and the plan's wall time. `after(cfg, test images)`: images a run's
    model still evaluates once it is trained (a study's work on its runs, done one run after another after the
    trainings), timed at the measured fp32 speed. `reuse`: an estimate made moments ago on this machine, whose
    measured speeds, start and load times are taken instead of measured again (same jobs and threads)."""
    from ..training.speed import measure, start_seconds

    t0 = time.perf_counter()
    todo = [c for c in configs if statuses.get(c.run_name) != DONE]
    sizes, load_s, notes = SIZES, 0.0, []
    if reuse is not None:
        sizes, load_s = reuse.sizes, reuse.load_s  # (its notes were shown with it)
    elif todo or after:
        try:
            from ..core.data import load_dataset

            t_load = time.perf_counter()
            ds = load_dataset(data_dir)
            load_s = time.perf_counter() - t_load
            sizes = (len(ds.train_labels), len(ds.val_labels), len(ds.test_labels))
        except DataError as exc:
            notes.append(f"dataset not loaded ({exc}); its load time is left out")
    work = {c.run_name: n for c in configs if after and (n := after(c, sizes[2])) > 0}
    measured = [c for c in configs if c in todo or c.run_name in work]
    import torch

    if any(c.device == "cuda" for c in measured) and not torch.cuda.is_available():
        # the trainings run elsewhere (a Ray cluster's GPU nodes): this machine can only time them on its CPU
        notes.append("no GPU here: the cuda runs are timed on this machine's CPU")
        measured = [c.with_changes(device="cpu") if c.device == "cuda" else c for c in measured]
    known = reuse.measured if reuse is not None else {}
    speeds = {
        key: known[key] if key in known else measure(c, threads)
        for key, c in {_speed_key(c): c for c in measured}.items()
    }
    start_s = (reuse.start_s if reuse is not None and reuse.start_s else start_seconds()) if todo else 0.0
    seconds = {c.run_name: 0.0 for c in configs}
    for cfg in todo:
        left = max(0, cfg.epochs - epochs_done(cfg, statuses.get(cfg.run_name, "")))
        seconds[cfg.run_name] = _run_seconds(cfg, speeds[_speed_key(cfg)], left, start_s + load_s, sizes)
    est = Estimate(
        seconds, {label: s.to_dict() for label, s in speeds.items()}, start_s, load_s, jobs, threads, sizes=sizes
    )
    est.measured, est.reused = speeds, reuse is not None
    est.after_s = {
        c.run_name: work[c.run_name] / 1000 * speeds[_speed_key(c)].test_s for c in measured if c.run_name in work
    }
    est.wall_s = makespan([s for s in seconds.values() if s > 0], jobs) + sum(est.after_s.values())
    est.measuring_s, est.notes = time.perf_counter() - t0, notes
    return est


def _run_seconds(cfg: TrainConfig, speed: Any, epochs: int, overhead_s: float, sizes: tuple[int, int, int]) -> float:
    """A run's seconds for `epochs` epochs at `speed` (training.speed.Speed): steps and validation each epoch,
    the test evaluation at the end, and `overhead_s` (the process's start, the dataset's load)."""
    n_train = min(cfg.subset or sizes[0], sizes[0])
    n_val = min(cfg.subset or sizes[1], sizes[1])
    epoch = math.ceil(n_train / cfg.batch_size) * speed.step_s + n_val / 1000 * speed.eval_s
    return overhead_s + epochs * epoch + sizes[2] / 1000 * speed.test_s


@dataclass(frozen=True)
class Fit:
    """The most epochs a run whose plan trained from scratch fits the budget (0: not even one), and that plan's
    estimated wall time."""

    epochs: int
    wall_s: float


def fit_epochs(
    plan_for: Callable[[int], list[TrainConfig]],
    epochs: int,
    est: Estimate,
    budget_s: float,
    after: Callable[[TrainConfig, int], int] | None = None,
) -> Fit:
    """The most epochs, below `epochs`, at which the plan `plan_for(epochs)` trained from scratch (every run new,
    as in a runs folder of its own: its recipe differs) takes at most `budget_s` at `est`'s measured speeds.
    Configs `est` did not time (their runs were done) are timed now with its threads. `after(cfg, test
    images)`: the study's work on each run once trained, as in `estimate`."""

    def wall(configs: list[TrainConfig]) -> float:
        for cfg in configs:
            if _speed_key(cfg) not in est.measured:
                from ..training.speed import measure

                est.measured[_speed_key(cfg)] = measure(cfg, est.threads)
        runs = [
            _run_seconds(c, est.measured[_speed_key(c)], c.epochs, est.start_s + est.load_s, est.sizes) for c in configs
        ]
        work = sum(after(c, est.sizes[2]) / 1000 * est.measured[_speed_key(c)].test_s for c in configs) if after else 0
        return makespan(runs, est.jobs) + work

    for e in range(epochs - 1, 0, -1):
        w = wall(plan_for(e))
        if w <= budget_s:
            return Fit(e, w)
    return Fit(0, wall(plan_for(1)))


def _speed_key(cfg: TrainConfig) -> str:
    """What a step's time depends on: the network (`cnn-k3`), not the data settings (a training-set size, the
    pixel permutation, random shifts), so the data study's 18 configs are measured as 3."""
    return cfg.spec.label(cfg.options)


def minutes(seconds: float) -> str:
    """'47 min', '3.2 min', '40 s'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 600 else f"{seconds / 60:.0f} min"
