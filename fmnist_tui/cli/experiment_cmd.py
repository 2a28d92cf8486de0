"""`fmnist experiment`: the kernel study with its grid as options: train the arch × kernel × seed grid (reusing and
resuming runs), then the study's table (`fmnist study` runs every study, this one included)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..core.config import TrainConfig, default
from ..core.errors import EXIT_INTERRUPTED, ConfigError, UsageError
from ..core.text import counted
from ..study.analysis import study_markdown
from ..study.cluster import Finished
from ..study.estimate import estimate
from ..study.kernel import ARCHS, KERNELS, analyse
from ..study.plan import plan
from ..study.results import to_csv, write_results
from ..study.scheduler import Ended, ExperimentEvent, Launched, Output
from .common import COMPILE_HELP, Compile, DataDirOpt, Device, console, err_console, handle_errors, shown
from .executors import (
    RayOpt,
    TaskCpusOpt,
    TaskGpusOpt,
    executor,
    jobs_and_threads,
    plan_statuses,
    train_and_collect,
)
from .results_cmd import render_study

#: measured on the 2-core machine (bench/experiment_speed.py, README "Kernel-size study"): two trainings with
#: one thread each beat one at a time with two threads, so by default two run at once where there are 2+ cores
DEFAULT_JOBS = 2


def split_list(values: list[str], what: str) -> list[str]:
    """'mlp,cnn' or repeated options → ['mlp', 'cnn']."""
    items = [v.strip() for value in values for v in value.split(",") if v.strip()]
    if not items:
        raise ConfigError(what, "is empty")
    return items


def parse_kernels(values: list[str]) -> list[int]:
    try:
        return [int(v) for v in split_list(values, "kernels")]
    except ValueError:
        raise ConfigError(
            "kernels", f"takes integers such as {','.join(map(str, KERNELS))}; got {','.join(values)!r}"
        ) from None


def print_event(event: ExperimentEvent | Finished) -> None:
    """One console line per launch, forwarded epoch line and end of a training (under Ray: per submitted
    task, then per finished training with its node and a bar over the grid)."""
    if isinstance(event, Finished):
        bar = "█" * round(20 * event.done / event.total)
        line = f"[{bar:░<20}] {event.done}/{event.total} {event.name}: ended on {event.node}"
        console.print(line, highlight=False, markup=False)
    elif isinstance(event, Launched):
        verb = {"resume": "resuming", "restart": "restarting (nothing to resume)", "submitted": "submitted to Ray"}.get(
            event.status, "training"
        )
        console.print(
            f"[bold]\\[{event.index}/{event.total}] {event.name}[/]: {verb} ({counted(event.threads, 'thread')})",
            highlight=False,
        )
    elif isinstance(event, Output):
        console.print(f"  {event.name}: {event.line}", highlight=False, markup=False, soft_wrap=True)
    elif isinstance(event, Ended):
        if event.returncode == 0:
            console.print(f"  {event.name}: finished in {event.seconds:.1f}s", highlight=False)
        elif event.returncode != EXIT_INTERRUPTED:
            err_console.print(f"{event.name}: training failed (exit {event.returncode}); see {shown(event.log)}")


@handle_errors
def experiment(
    archs: Annotated[
        list[str] | None,
        typer.Option(
            "--archs", help=f"Architectures, comma-separated (any of the registry's). [default: {','.join(ARCHS)}]"
        ),
    ] = None,
    kernels: Annotated[
        list[str] | None,
        typer.Option("--kernels", help=f"Kernel sizes, comma-separated. [default: {','.join(map(str, KERNELS))}]"),
    ] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per config (0..N-1).")] = 3,
    epochs: Annotated[int, typer.Option(help="Epochs of every training (one recipe for all).")] = 15,
    subset: Annotated[int | None, typer.Option(help="Train on the first N images, for smoke runs.")] = None,
    jobs: Annotated[
        int | None,
        typer.Option(help="Trainings run at once, each with cores/jobs threads (default 2, or 1 on a 1-core machine)."),
    ] = None,
    runs: Annotated[Path, typer.Option(help="Folder of the run folders (reused and resumed).")] = Path("checkpoints"),
    out: Annotated[Path, typer.Option(help="Folder for results.md/.csv/.json and the training logs.")] = Path(
        "reports/experiment"
    ),
    onnx_dir: Annotated[
        Path, typer.Option(help="Where `fmnist export` put <run>.onnx, for the latency column.")
    ] = Path("export"),
    device: Annotated[Device, typer.Option(help="Where every training runs (auto: CUDA when present).")] = Device(
        "auto"
    ),
    compile: Annotated[Compile, typer.Option(help=COMPILE_HELP)] = default("compile"),
    latency: Annotated[
        bool,
        typer.Option(
            "--latency/--no-latency",
            help="Measure onnxruntime latency per config, exporting a run into <out>/onnx/ when --onnx-dir has none.",
        ),
    ] = True,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan and each run's status; train nothing.")
    ] = False,
    export: Annotated[
        Path | None,
        typer.Option(
            help="Also export every planned run to DIR/<run>.onnx (verified, "
            "with manifest.json), as `fmnist export` does."
        ),
    ] = None,
    ray: RayOpt = None,
    task_cpus: TaskCpusOpt = 1,
    task_gpus: TaskGpusOpt = 1.0,
    data_dir: DataDirOpt = None,
) -> None:
    """The kernel study (`fmnist study kernel` with a grid of your choice): train mlp and cnn k=3/5/7 over seeds
    with one recipe, then compare them with paired statistics."""
    if epochs < 1 or (subset is not None and subset < 1):
        raise UsageError("--epochs and --subset must be positive integers")
    configs = plan(
        split_list(archs or [",".join(ARCHS)], "archs"),
        {"kernel": parse_kernels(kernels or [",".join(map(str, KERNELS))])},
        seeds,
        epochs,
        runs,
        subset,
        data_dir,
        Device(device).value,
    )
    configs = [c.with_changes(compile=Compile(compile).value) for c in configs]
    jobs, threads = jobs_and_threads(jobs, len(configs))
    statuses, counts = plan_statuses(configs)
    console.print(
        f"experiment: {len(configs)} runs in {runs} ({', '.join(f'{v} {k}' for k, v in counts.items() if v)})"
        f"; {jobs} at a time × {counted(threads, 'thread')}",
        highlight=False,
    )
    if dry_run:
        from .study_cmd import print_estimate  # the kernel study's plan, timed as `fmnist study kernel` times it

        print_estimate(estimate(configs, statuses, jobs, threads, data_dir), statuses, dry_run=True)
        return
    runner = executor(ray, jobs, threads, task_cpus, task_gpus, out / "logs")
    outcome, groups, measured = train_and_collect("experiment", runner, configs, None, latency, onnx_dir, out, data_dir)
    if export is not None:
        export_planned(configs, export, data_dir)
    study = analyse(groups, measured)
    doc = {
        **study.to_dict(),
        "experiment": {
            "executor": f"ray {ray}" if ray else "local",
            "jobs": None if ray else jobs,  # under Ray, the cluster's free CPUs decide how many run at once
            "threads": task_cpus if ray else threads,
            "wall_seconds": round(outcome.wall_seconds, 2),
            "trained": outcome.trained,
            "reused": outcome.reused,
            "run_seconds": {k: round(v, 2) for k, v in outcome.seconds.items()},
        },
    }
    paths = write_results(doc, study_markdown(study), to_csv(study.rows), out)
    render_study(study)
    console.print(
        f"wall time {outcome.wall_seconds:.1f}s ({len(outcome.trained)} trained, {len(outcome.reused)} "
        f"reused) → {', '.join(map(str, paths))}",
        highlight=False,
    )
    if outcome.failed:
        raise typer.Exit(1)


def export_planned(configs: list[TrainConfig], out: Path, data_dir: Path | None) -> None:
    """Export every finished planned run (the shipped models: `make models`)."""
    from ..core.data import load_dataset
    from ..core.runs import Run
    from ..deploy.export import export_run
    from .export_cmd import print_report

    dataset = load_dataset(data_dir)
    for cfg in configs:
        run = Run(cfg.run_dir)
        if run.finished:
            print_report(export_run(run, out, dataset))
