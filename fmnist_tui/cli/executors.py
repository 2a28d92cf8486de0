"""Where a study's trainings run: the local process pool (default) or a Ray cluster (`--ray ADDRESS`), and
the options that choose it, shared by `fmnist study` and `fmnist experiment`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..core.errors import UsageError
from ..study.cluster import LOCAL, RayExecutor
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
