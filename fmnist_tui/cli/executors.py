"""Where a study's trainings run: the local process pool (default) or a Ray cluster (`--ray ADDRESS`), and
the options that choose it, shared by `fmnist study` and `fmnist experiment`."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from .. import cpu_count
from ..core.config import TrainConfig
from ..core.errors import EXIT_INTERRUPTED, UsageError
from ..study.cluster import LOCAL, RayExecutor
from ..study.plan import STATUSES, collect, status
from ..study.results import Group
from ..study.scheduler import Outcome, Scheduler
from .common import console, err_console

RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="ADDRESS",
        help=f"Train on a Ray cluster: '{LOCAL}' (a Ray instance started for this run), 'auto' (the cluster this "
        "machine joined with `ray start`), or host:port / ray://host:port. --runs must be a folder every node "
        "sees at the same path. Needs the [cluster] extra.",
        show_default=False,
    ),
]
TaskCpusOpt = Annotated[int, typer.Option(help="With --ray: CPUs (torch threads) each training reserves.")]
TaskGpusOpt = Annotated[
    float,
    typer.Option(help="With --ray and --device cuda: the share of a GPU each training reserves (0.25: four per GPU)."),
]


def jobs_and_threads(jobs: int | None, runs: int) -> tuple[int, int]:
    """The local pool's trainings at once (`--jobs`, default 2 or the cores, at most the runs) and the torch
    threads of each (the cores shared among them); a UsageError (exit 2) for fewer than 1."""
    from .experiment_cmd import DEFAULT_JOBS

    jobs = min(DEFAULT_JOBS, cpu_count()) if jobs is None else jobs
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    jobs = min(jobs, runs)
    return jobs, max(1, cpu_count() // jobs)


def plan_statuses(configs: list[TrainConfig]) -> tuple[dict[str, str], dict[str, int]]:
    """Each planned run's status (done, resume, restart, new) and how many of each; refuses a run folder of
    another recipe before any work (RunError)."""
    statuses = {c.run_name: status(c) for c in configs}
    return statuses, {s: list(statuses.values()).count(s) for s in STATUSES}


def train_and_collect(
    command: str,
    runner: Scheduler | RayExecutor,
    configs: list[TrainConfig],
    cost: dict[str, float] | None,
    latency: bool,
    onnx_dir: Path,
    out: Path,
    data_dir: Path | None,
) -> tuple[Outcome, list[Group], dict[str, float | None]]:
    """Train the plan; after Ctrl-C say how to continue (exit 130). Then the finished runs' groups and, with
    `latency`, onnxruntime latency per config; warnings on stderr."""
    outcome = runner.run(configs, cost)
    if outcome.interrupted:
        args = sys.argv[1:]
        tail = args[args.index(command) + 1 :] if command in args else args
        again = " ".join(shlex.quote(a) for a in ("fmnist", command, *tail))
        err_console.print(f"interrupted; every run saved its state. Continue with: {again}")
        raise typer.Exit(EXIT_INTERRUPTED)
    groups, warnings = collect(configs)
    measured: dict[str, float | None] = {}
    if latency and groups:
        from ..study.latency import latencies

        console.print("measuring onnxruntime latency per config…", highlight=False)
        measured, lat_warnings = latencies(groups, onnx_dir, out / "onnx", data_dir)
        warnings += lat_warnings
    for w in warnings:
        err_console.print(f"warning: {w}")
    return outcome, groups, measured


def executor(
    ray: str | None, jobs: int, threads: int, task_cpus: int, task_gpus: float, log_dir: Path
) -> Scheduler | RayExecutor:
    """The local pool of `jobs` trainings × `threads`, or Ray tasks of `task_cpus` CPUs and `task_gpus` GPU."""
    from .experiment_cmd import print_event

    if ray is None:
        return Scheduler(jobs, threads, log_dir, print_event)
    if not ray.strip():
        raise UsageError(f"--ray needs an address: {LOCAL}, auto, or host:port")
    if task_cpus < 1:
        raise UsageError(f"--task-cpus must be at least 1, got {task_cpus}")
    if not 0 < task_gpus <= 1:
        raise UsageError(f"--task-gpus must be more than 0 and at most 1, got {task_gpus:g}")
    return RayExecutor(ray.strip(), task_cpus, log_dir, print_event, task_gpus)
