"""`fmnist study NAME`: run one study with its own recipe (train what neither your runs nor the shipped results
hold, resume what was interrupted), then its analysis; `--list` names the studies, `--dry-run` shows the plan."""

from __future__ import annotations

import shlex
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from ..core.config import PRECISIONS, TrainConfig, default, recipe_differences
from ..core.errors import EXIT_INTERRUPTED, FmnistError, RunError, UsageError
from ..core.fsutil import check_writable, write_text
from ..core.runs import Run
from ..core.text import counted
from ..study import lab
from ..study.plan import DONE, NEW, STATUSES, status
from ..study.results import SHIPPED, YOURS, RunRecord, group_records, to_csv, write_results
from ..study.runner import BUSY, FAILED, INTERRUPTED, LOCAL, TRAINED, EpochDone, LocalRunner, Ran, RayRunner, Task
from ..study.runner import default_jobs as runner_jobs
from ..study.studies import STUDIES, Preset, StudySpec, get
from ..study.verdicts import study_markdown
from .common import COMPILE_HELP, Compile, DataDirOpt, Device, console, err_console, handle_errors, shown
from .results_cmd import render_study

#: --quick's runs go to RUNS/quick: its recipe differs from the default preset's, and run names are the same
QUICK_RUNS = "quick"
#: a planned run that only the shipped results hold (finished, this recipe): reused, not trained
SHIPPED_RUN = "shipped"


def split_list(values: list[str] | None, what: str) -> list[str] | None:
    """'mlp,cnn' or repeated options → ['mlp', 'cnn']; None when not given."""
    if values is None:
        return None
    items = [v.strip() for value in values for v in value.split(",") if v.strip()]
    if not items:
        raise UsageError(f"--{what} is empty")
    return items


def _grid(spec: StudySpec, archs: list[str] | None, kernels: list[str] | None) -> StudySpec:
    """The study with its grid narrowed or widened by --archs and --kernels (grid studies only)."""
    if archs is None and kernels is None:
        return spec
    if spec.explicit:
        raise UsageError(f"--archs and --kernels change a grid; the {spec.name} study's configs are fixed")
    grid = dict(spec.grid)
    if kernels is not None:
        try:
            grid["kernel"] = tuple(int(k) for k in kernels)
        except ValueError:
            raise UsageError(f"--kernels takes integers such as 3,5,7; got {','.join(kernels)!r}") from None
    return replace(spec, archs=tuple(archs or spec.archs), grid=grid)


def _preset(spec: StudySpec, quick: bool, seeds: int | None, epochs: int | None, subset: int | None) -> Preset:
    base = spec.quick if quick else spec.default
    for name, value in (("seeds", seeds), ("epochs", epochs), ("subset", subset)):
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be a positive integer, got {value}")
    return replace(
        base,
        seeds=seeds or base.seeds,
        more_seeds=() if seeds else base.more_seeds,
        epochs=epochs or base.epochs,
        subset=subset if subset is not None else base.subset,
    )


def _folder(path: Path, what: str) -> None:
    """A RunError in one line, before any work, where `path` cannot be a folder to write in."""
    try:
        check_writable(path)
    except OSError as exc:
        reason = "is a file" if path.exists() and not path.is_dir() else exc.strerror or str(exc)
        raise RunError(f"{what} {path} cannot be written ({reason}); choose another {what}") from None


# --- the plan against what exists ----------------------------------------------------------------------
def plan_statuses(configs: list[TrainConfig], shipped: dict[str, RunRecord]) -> dict[str, str]:
    """Each planned run's status: DONE, RESUME, RESTART or NEW in the runs folder, or SHIPPED_RUN where only the
    shipped results hold it (finished, with this recipe). A run of another recipe in the folder is refused."""
    found = {}
    for cfg in configs:
        st = status(cfg)
        rec = shipped.get(cfg.run_name)
        if st == NEW and rec is not None and not recipe_differences(rec.run, cfg):
            st = SHIPPED_RUN
        found[cfg.run_name] = st
    return found


def _counts(statuses: dict[str, str]) -> str:
    counts = {s: list(statuses.values()).count(s) for s in (*STATUSES, SHIPPED_RUN)}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n)


def measured_times(records: list[RunRecord]) -> dict[str, str]:
    """Per config with finished runs: the mean training time of a run, and what it ran on."""
    by_label: dict[str, list[RunRecord]] = {}
    for g in group_records(records):
        by_label.setdefault(g.label, []).extend(g.records)
    out = {}
    for label, recs in by_label.items():
        seconds = [float(r.summary.get("train_seconds") or 0) for r in recs]
        kinds = sorted({f"{r.numerics}, {counted(int(r.config.get('threads') or 1), 'thread')}" for r in recs})
        out[label] = f"{_duration(statistics.fmean(seconds))} a run ({counted(len(recs), 'run')}; {'; '.join(kinds)})"
    return out


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def print_plan(spec: StudySpec, configs: list[TrainConfig], statuses: dict[str, str], records: list[RunRecord]) -> None:
    """--dry-run: every planned run's status, and the measured training time of each config that has runs."""
    where = {SHIPPED_RUN: " (the shipped results)", DONE: " (yours)"}
    for cfg in configs:
        st = statuses[cfg.run_name]
        console.print(f"  {cfg.run_name}: {st}{where.get(st, '')}", highlight=False)
    times = measured_times(records)
    for label in spec.labels():
        if label in times:
            console.print(f"  measured {label}: {times[label]}", highlight=False)


# --- running it ---------------------------------------------------------------------------------------
class Printer:
    """One line per finished training and, in a terminal, a bar over the plan's epochs."""

    def __init__(self, total: int, epochs: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.total, self.done = total, 0
        out = console.get()
        self.progress = Progress(
            TextColumn("[bold]plan"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("epochs"),
            TimeElapsedColumn(),
            console=out,
            transient=True,
            disable=not out.is_terminal,
        )
        self.bar = self.progress.add_task("plan", total=max(1, epochs))

    def __call__(self, event: Ran | EpochDone) -> None:
        if isinstance(event, EpochDone):
            self.progress.advance(self.bar)
            return
        self.done += 1
        head = f"[{self.done}/{self.total}] {event.name}"
        if event.result == FAILED:
            err_console.print(f"{head}: training failed: {event.detail}")
        elif event.result == BUSY:
            err_console.print(f"{head}: skipped: {event.detail}")
        elif event.result != INTERRUPTED:
            acc = f", test accuracy {event.test_accuracy:.2%}" if event.test_accuracy is not None else ""
            verb = f"trained in {_duration(event.seconds)}" if event.result == TRAINED else "already trained"
            console.print(f"{head}: {verb}{acc}", highlight=False)
        for w in event.warnings:
            err_console.print(f"warning: {w}")

    def __enter__(self) -> Printer:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _tasks(
    spec: StudySpec, configs: list[TrainConfig], statuses: dict[str, str], times: dict[str, float]
) -> list[Task]:
    """A task per planned run to train, or of yours that lacks the study's work; the longest first (by the
    measured time of its config, where one is known), so no long run starts last alone."""
    work = spec.work
    tasks = []
    for cfg in configs:
        st = statuses[cfg.run_name]
        needs = bool(work and st == DONE and work.needs(Run(cfg.run_dir)))
        if st not in (DONE, SHIPPED_RUN) or needs:
            tasks.append(Task(cfg, work.function if work else "", needs))
    return sorted(tasks, key=lambda t: -times.get(t.cfg.label, 0.0))


def _again() -> str:
    args = sys.argv[1:]
    tail = args[args.index("study") + 1 :] if "study" in args else args
    return " ".join(shlex.quote(a) for a in ("fmnist", "study", *tail))


# --- the command ---------------------------------------------------------------------------------------
def list_studies(runs: Path, shipped: bool) -> None:
    """Each study: its question, configs, claims, and how many of its runs exist (yours and the shipped ones)."""
    for spec in STUDIES.values():
        console.print(f"[bold]{spec.name}[/]: {spec.title}. {spec.question}", highlight=False)
        console.print(f"  configs: {', '.join(spec.labels())}", highlight=False)
        for claim in spec.claims:
            console.print(f"  claim: {claim.text}", highlight=False, markup=False)
        for label, preset, root in (("default", spec.default, runs), ("quick", spec.quick, runs / QUICK_RUNS)):
            configs = spec.plan(preset, root)
            shipped_recs = _shipped(root, shipped and label == "default", {c.run_name for c in configs})[0]
            try:
                statuses = plan_statuses(configs, shipped_recs)
            except FmnistError as exc:
                console.print(f"  {label}: {exc}", highlight=False)
                continue
            done = sum(s == DONE for s in statuses.values())
            line = f"  {label} ({preset.describe(spec.labels())}): {done}/{len(configs)} runs yours in {shown(root)}"
            if label == "default" and shipped:
                line += f", {sum(s == SHIPPED_RUN for s in statuses.values())} shipped"
            console.print(line, highlight=False)
        _shipped_line(spec.name)


def _shipped_line(name: str) -> None:
    try:
        record = lab.read_provenance(lab.results_root() / name)
    except RunError as exc:
        err_console.print(f"warning: {exc}")
        return
    if record:
        where = shown(lab.results_root() / name)
        console.print(f"  shipped analysis: {lab.describe(record)} ({where})", highlight=False)


def _shipped(runs: Path, shipped: bool, names: set[str]) -> tuple[dict[str, RunRecord], list[str]]:
    """The shipped results' finished runs among `names` (none where `runs` is the shipped folder itself)."""
    folders = [(f, s) for f, s in lab.sources(runs, shipped) if s == SHIPPED and not lab.same_folder(f, runs)]
    records, warnings = lab.load(folders, names)
    return {r.run.name: r for r in records}, warnings


@handle_errors
def study(
    name: Annotated[str | None, typer.Argument(help=f"The study: {', '.join(STUDIES)}.", show_default=False)] = None,
    list_: Annotated[bool, typer.Option("--list", help="Name each study, its claims and how many runs exist.")] = False,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="Classroom preset: fewer epochs on a subset, a few minutes (its runs in RUNS/quick)."
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show the plan, what exists of it, and measured training times; train nothing."),
    ] = False,
    seeds: Annotated[
        int | None, typer.Option(help="Seeds for every config (default: the preset's, 15 for the MLPs).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs of every training (default: the preset's).")] = None,
    subset: Annotated[int | None, typer.Option(help="Train on the first N images (default: the preset's).")] = None,
    archs: Annotated[
        list[str] | None,
        typer.Option("--archs", help="A grid study's architectures, comma-separated (default: the study's)."),
    ] = None,
    kernels: Annotated[
        list[str] | None,
        typer.Option("--kernels", help="A grid study's kernel sizes, comma-separated (default: the study's)."),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(help="Trainings at once on this machine, each with cores/jobs threads (default 2, or 1 core)."),
    ] = None,
    runs: Annotated[Path, typer.Option(help="Folder of your run folders (--quick: RUNS/quick).")] = Path("checkpoints"),
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the table, figure, report section and provenance (default reports/studies/NAME)."
        ),
    ] = None,
    shipped: Annotated[
        bool,
        typer.Option(
            "--shipped/--no-shipped",
            help="Reuse the lab's shipped runs (results/runs) where you have none of your own (--no-shipped: train "
            "them in --runs).",
        ),
    ] = True,
    device: Annotated[Device, typer.Option(help="Where every training runs (auto: CUDA when present).")] = Device(
        "auto"
    ),
    precision: Annotated[str, typer.Option(help=f"Every training's precision: {', '.join(PRECISIONS)}.")] = "auto",
    compile: Annotated[Compile, typer.Option(help=COMPILE_HELP)] = default("compile"),
    latency: Annotated[
        bool,
        typer.Option(
            "--latency/--no-latency", help="Measure onnxruntime latency per config (exports a run per config)."
        ),
    ] = False,
    onnx_dir: Annotated[Path, typer.Option(help="Where `fmnist export` put <run>.onnx, for --latency.")] = Path(
        "export"
    ),
    export: Annotated[
        Path | None,
        typer.Option(help="Also export every planned run of yours to DIR/<run>.onnx (verified, with manifest.json)."),
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help=f"Train on a Ray cluster: '{LOCAL}' (a Ray instance started for this study), 'auto' (the cluster "
            "this machine joined with `ray start`), or host:port / ray://host:port. --runs must be a folder every "
            "node sees at the same path. Needs the \\[cluster] extra.",
            show_default=False,
        ),
    ] = None,
    task_cpus: Annotated[int, typer.Option(help="With --ray: CPUs (torch threads) each training reserves.")] = 1,
    task_gpus: Annotated[
        float,
        typer.Option(help="With --ray on a cluster with GPUs: the share of a GPU each training reserves (0.25: four)."),
    ] = 1.0,
    data_dir: DataDirOpt = None,
) -> None:
    """Run one study: train its configs × seeds with its own recipe on any machine (reusing your finished runs and
    the shipped results, resuming interrupted ones), then give each claim a verdict from paired statistics; write
    its table, figure, report section and provenance."""
    if list_:
        list_studies(runs, shipped)
        return
    if quick:
        runs = runs / QUICK_RUNS
    if name is None:
        raise UsageError(f"give a study NAME or --list; studies: {', '.join(STUDIES)}")
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r} is not valid; valid: {', '.join(PRECISIONS)}")
    spec = _grid(get(name), split_list(archs, "archs"), split_list(kernels, "kernels"))
    preset = _preset(spec, quick, seeds, epochs, subset)
    out = out or Path("reports/studies") / (f"{spec.name}-quick" if quick else spec.name)
    configs = spec.plan(preset, runs, data_dir, Device(device).value, precision, Compile(compile).value)
    jobs = runner_jobs(len(configs)) if jobs is None else jobs
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if ray is not None and not ray.strip():
        raise UsageError(f"--ray needs an address: {LOCAL}, auto, or host:port")
    if task_cpus < 1:
        raise UsageError(f"--task-cpus must be at least 1, got {task_cpus}")
    if not 0 < task_gpus <= 1:
        raise UsageError(f"--task-gpus must be more than 0 and at most 1, got {task_gpus:g}")
    names = {c.run_name for c in configs}
    shipped_recs, warnings = _shipped(runs, shipped and not quick, names)
    statuses = plan_statuses(configs, shipped_recs)
    threads = max(1, _cores() // jobs)
    where = (
        f"{task_cpus} CPUs a training on Ray ({ray.strip()})"
        if ray
        else f"{jobs} at a time × {counted(threads, 'thread')}"
    )
    console.print(
        f"study {spec.name} ({spec.title}, {preset.describe(spec.labels())}): {len(configs)} runs in {shown(runs)} "
        f"({_counts(statuses)}); {where}",
        highlight=False,
    )
    existing = lab.load(lab.sources(runs, shipped and not quick), names)[0]
    if dry_run:
        print_plan(spec, configs, statuses, existing)
        return
    tasks = _tasks(spec, configs, statuses, _seconds_by_label(existing))
    for folder, what in ((out, "--out"), *([(runs, "--runs")] if tasks else [])):
        _folder(folder, what)
    epochs_left = sum(t.cfg.epochs for t in tasks if statuses[t.cfg.run_name] != DONE)
    with Printer(len(tasks), epochs_left) as printer:
        runner = RayRunner(ray.strip(), task_cpus, task_gpus, printer) if ray else LocalRunner(jobs, threads, printer)
        outcome = runner.run(tasks, out / "logs")
    if outcome.interrupted:
        err_console.print(f"interrupted; every started run saved its state. Continue with: {_again()}")
        raise typer.Exit(EXIT_INTERRUPTED)
    records, load_warnings = lab.load(lab.sources(runs, shipped and not quick), names)
    for w in [*warnings, *load_warnings]:
        err_console.print(f"warning: {w}")
    everything = lab.load(lab.sources(runs, shipped and not quick))[0]  # the family of claims spans every study
    result = _analyse(spec, records, everything, latency, onnx_dir, out, data_dir)
    if export is not None:
        export_planned(configs, export, data_dir)
    analysed = [r for g in result.groups.values() for r in g.records]
    paths = _write(spec, preset, quick, result, analysed, out, outcome)
    render_study(result)
    console.print(f"analysed {_analysed(analysed, runs)} → {', '.join(shown(p) for p in paths)}", highlight=False)
    if outcome.failed or outcome.named(BUSY):
        raise typer.Exit(1)


def _cores() -> int:
    from .. import cpu_count

    return cpu_count()


def _seconds_by_label(records: list[RunRecord]) -> dict[str, float]:
    by: dict[str, list[float]] = {}
    for g in group_records(records):
        by.setdefault(g.label, []).extend(float(r.summary.get("train_seconds") or 0) for r in g.records)
    return {label: statistics.fmean(v) for label, v in by.items()}


def _analyse(
    spec: StudySpec,
    records: list[RunRecord],
    everything: list[RunRecord],
    latency: bool,
    onnx_dir: Path,
    out: Path,
    data_dir: Path | None,
) -> Any:
    """The study over its planned runs (`records`), its verdicts corrected over every study's claims on all the
    runs there are (`everything`)."""
    groups = group_records(records)
    measured: dict[str, float | None] = {}
    if latency and groups:
        from ..study.latency import latencies

        console.print("measuring onnxruntime latency per config…", highlight=False)
        measured, lat_warnings = latencies(groups, onnx_dir, out / "onnx", data_dir)
        for w in lat_warnings:
            err_console.print(f"warning: {w}")
    return spec.run(group_records(everything), measured, {r.run.name for r in records})


def _analysed(records: list[RunRecord], runs: Path) -> str:
    """'12 runs: 11 shipped (results/runs), 1 yours (checkpoints)'."""
    yours = sum(r.source == YOURS for r in records)
    parts = [f"{yours} yours ({shown(runs)})"] if yours else []
    if len(records) - yours:
        parts.append(f"{len(records) - yours} shipped ({shown(lab.shipped_runs())})")
    return f"{counted(len(records), 'run')}: {', '.join(parts) or 'none'}"


def _write(
    spec: StudySpec, preset: Preset, quick: bool, result: Any, analysed: list[RunRecord], out: Path, outcome: Any
) -> list[Path]:
    """The study's table (md, csv, json), figure, report section and provenance in `out`."""
    preset_doc = {
        "seeds": preset.seeds,
        **({"more_seeds": dict(preset.more_seeds)} if preset.more_seeds else {}),
        "epochs": preset.epochs,
        "subset": preset.subset,
        "lr": preset.lr,
        "quick": quick,
    }
    doc: dict[str, Any] = {
        "schema": lab.SCHEMA,
        **result.to_dict(),
        "claims": [
            {"claim": c.text, "source": c.source, "metric": c.metric, "kind": c.kind, "margin": c.margin}
            for c in spec.claims
        ],
        "preset": preset_doc,
    }
    paths = write_results(doc, study_markdown(result), to_csv(result.rows), out)
    if result.rows:
        from ..study.sections import section, section_markdown  # matplotlib: the [train] extra's

        drawn = section(spec, result, out / f"{spec.name}_study.png")
        write_text(out / "section.md", section_markdown(drawn))
        paths += [drawn.png, out / "section.md"]
    paths.append(lab.write_provenance(out, spec.name, preset_doc, analysed))
    return paths


def export_planned(configs: list[TrainConfig], out: Path, data_dir: Path | None) -> None:
    """Export every finished planned run of yours (the shipped models: `make models`)."""
    from ..core.data import load_dataset
    from ..deploy.export import export_run
    from .export_cmd import print_report

    dataset = load_dataset(data_dir)
    for cfg in configs:
        run = Run(cfg.run_dir)
        if run.finished and (run.path / "best.safetensors").exists():
            print_report(export_run(run, out, dataset))


def experiment(ctx: typer.Context) -> None:
    """Now `fmnist study kernel`, with the same grid options (--archs, --kernels, --seeds, --epochs)."""
    again = " ".join(shlex.quote(a) for a in ("fmnist", "study", "kernel", *ctx.args))
    err_console.print(f"error: `fmnist experiment` is now `fmnist study kernel`, with the same options; run: {again}")
    raise typer.Exit(2)


#: the pointer takes whatever it is given, to print it back as `fmnist study kernel …`
experiment.context_settings = {"allow_extra_args": True, "ignore_unknown_options": True}  # type: ignore[attr-defined]
