"""Where a study's trainings run: the local process pool (default) or a Ray cluster (`--ray ADDRESS`), and
the options that choose it, shared by `fmnist study` and `fmnist experiment`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import cpu_count
from ..core.config import TrainConfig
from ..core.errors import UsageError
from ..study.cluster import LOCAL, RayExecutor
from ..study.plan import STATUSES, status
from ..study.scheduler import Scheduler

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
