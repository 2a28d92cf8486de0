"""`fmnist study NAME`: run one study (train its plan, reusing and resuming runs, then its analysis); `--list`
names the studies, `--dry-run` shows the plan and its time estimated from this machine's measured speed."""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from ..core.config import PRECISIONS, TrainConfig, default
from ..core.errors import FmnistError, UsageError
from ..core.fsutil import write_text
from ..core.runs import Run
from ..core.text import counted
from ..study.analysis import study_markdown
from ..study.estimate import (
    BUDGET_MINUTES,
    ESTIMATE_ERROR,
    QUICK_BUDGET_MINUTES,
    Estimate,
    Fit,
    estimate,
    fit_epochs,
    minutes,
    plannable,
)
from ..study.plan import DONE, NEW, status
from ..study.results import Group, to_csv, write_results
from ..study.sections import section, section_markdown
from ..study.studies import STUDIES, Preset, StudySpec, get, prepare
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

QUICK_RUNS = "quick"  # --quick's runs go to <runs>/quick: its recipe differs from the default preset's


def _preset(spec: StudySpec, quick: bool, seeds: int | None, epochs: int | None, subset: int | None) -> Preset:
    base = spec.quick if quick else spec.default
    for name, value in (("seeds", seeds), ("epochs", epochs), ("subset", subset)):
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be a positive integer, got {value}")
    return Preset(
        seeds or base.seeds, epochs or base.epochs, subset if subset is not None else base.subset, base.lr, base.labels
    )


def _with_line(markdown: str, line: str) -> str:
    """`markdown` with a paragraph `line` after its first line (the heading); unchanged for an empty line."""
    if not line:
        return markdown
    head, _, rest = markdown.partition("\n")
    return f"{head}\n\n{line}\n{rest}"


def fitted_epochs(root: Path, preset: Preset) -> list[int]:
    """The epochs of the fitted starts in `root` (RUNS/epochsN folders, N below the preset's), most first."""
    found = []
    for folder in root.glob("epochs*") if root.is_dir() else ():
        m = re.fullmatch(r"epochs([1-9][0-9]*)", folder.name)
        if m and folder.is_dir() and int(m.group(1)) < preset.epochs:
            found.append(int(m.group(1)))
    return sorted(found, reverse=True)


def list_studies(runs: Path) -> None:
    """Each study: its question, configs, claims, and how many of its runs exist (default and quick, and the
    fitted starts of either: see --fit)."""
    for spec in STUDIES.values():
        counts = []
        for label, preset, root in (("default", spec.default, runs), ("quick", spec.quick, runs / QUICK_RUNS)):
            configs = spec.plan(preset, root)
            counts.append(f"{label} ({preset.describe()}): {_done(configs)}/{len(configs)} runs done in {root}")
            for e in fitted_epochs(root, preset):
                fitted = replace(preset, epochs=e)
                configs = spec.plan(fitted, fitted_runs(root, e))
                if done := _done(configs):
                    counts.append(
                        f"{label}, fitted ({fitted.describe()}): {done}/{len(configs)} runs done in "
                        f"{fitted_runs(root, e)}"
                    )
        console.print(f"[bold]{spec.name}[/]: {spec.title}. {spec.question}", highlight=False)
        console.print(f"  configs: {', '.join(spec.labels())}", highlight=False)
        for claim in spec.claims:
            console.print(f"  claim: {claim.text}", highlight=False, markup=False)
        for line in counts:
            console.print(f"  {line}", highlight=False)


def _done(configs: list[TrainConfig]) -> int:
    n = 0
    for cfg in configs:
        try:
            n += status(cfg) == DONE
        except FmnistError:  # a run of that name with another recipe is not this study's
            continue
    return n


def _work_images(spec: StudySpec, statuses: dict[str, str]) -> Callable[[TrainConfig, int], int] | None:
    """Images a planned run will evaluate for the study's work on it, given the test set's size (0 where done)."""
    work = spec.work
    if work is None:
        return None
    return lambda c, n_test: work.images(c, n_test) if statuses[c.run_name] != DONE or work.needs(Run(c.run_dir)) else 0


def _do_work(spec: StudySpec, groups: list[Group], data_dir: Path | None, device: str) -> float:
    """The study's work on its finished runs that lack it (`spec.work`: the translation study's shifted
    evaluation), one run after another in this process; its warnings on stderr; the seconds it took."""
    if spec.work is None:
        return 0.0
    t0 = time.perf_counter()
    todo = sum(spec.work.needs(r.run) for g in groups for r in g.records)
    if todo:
        console.print(f"{spec.work.what} of {counted(todo, 'run')}…", highlight=False)
    for w in prepare(spec, groups, data_dir, device, lambda name: console.print(f"  {name}")):
        err_console.print(f"warning: {w}")
    return time.perf_counter() - t0


def print_estimate(est: Estimate, statuses: dict[str, str], dry_run: bool, work: str = "") -> None:
    """The plan's estimated time, and (dry run) each run's and each config's measured speed."""
    if dry_run:
        for name, st in statuses.items():
            left = f", ~{minutes(est.seconds[name])}" if est.seconds.get(name) else ""
            then = f", then {work} ~{minutes(est.after_s[name])}" if est.after_s.get(name) else ""
            console.print(f"  {name}: {st}{left}{then}", highlight=False)
        for label, speed in est.speeds.items():
            console.print(
                f"  measured {label}: {1000 * speed['step_s']:.1f} ms per step of {speed['batch_size']} images, "
                f"{speed['eval_s_per_1000']:.2f} s per 1,000 images evaluated ({'bf16' if speed['bf16'] else 'fp32'}, "
                f"{counted(speed['threads'], 'thread')})",
                highlight=False,
            )
    todo = sum(1 for s in est.seconds.values() if s > 0)
    after = (
        f", then {work} of {counted(len(est.after_s), 'run')} one after another "
        f"(~{minutes(sum(est.after_s.values()))}, at the fp32 speed of one training's threads)"
        if est.after_s
        else ""
    )
    source = f"speeds measured on this machine in {est.measuring_s:.0f} s"
    source = "the speeds measured above" if est.reused else source
    console.print(
        f"estimated time: {minutes(est.wall_s)} wall for {counted(todo, 'training')} "
        f"({est.jobs} at a time; each starts in ~{est.start_s:.1f} s and loads the data in ~{est.load_s:.1f} s)"
        f"{after}, from {source}",
        highlight=False,
    )
    for note in est.notes:
        err_console.print(f"note: {note}")


def fitted_runs(runs: Path, epochs: int) -> Path:
    """Where a study trained at `epochs` other than its preset's keeps its runs: a folder of its own (RUNS/epochsN),
    since a run of another recipe may not share a folder with the preset's."""
    return runs / f"epochs{epochs}"


def fitted_out(out: Path, epochs: int) -> Path:
    """Where a study trained at `epochs` other than its preset's writes its table, figure and section (OUT-epochsN)."""
    return out.with_name(f"{out.name}-epochs{epochs}")


def _again(name: str, given: dict[str, Any], epochs: int, runs: Path, out: Path) -> str:
    """`fmnist study NAME` with the options the user `given` (a flag: True; unset: None or False), at `epochs`,
    with runs and outputs in folders of their own (RUNS/epochsN, OUT-epochsN), since that recipe differs."""
    words = [name]
    for option, value in given.items():
        if value is True:
            words.append(option)
        elif value not in (None, False):
            words += [option, str(value)]
    words += ["--epochs", str(epochs), "--runs", str(fitted_runs(runs, epochs)), "--out", str(fitted_out(out, epochs))]
    return " ".join(shlex.quote(w) for w in ("fmnist", "study", *words))


def time_left(est: Estimate, budget_min: float) -> float:
    """The estimated seconds a plan may take within the budget: the budget less the estimate's measured error
    (`plannable`) and less the seconds the study already spent measuring for `est`."""
    return plannable(budget_min * 60) - est.measuring_s


def over_budget(
    spec: StudySpec,
    preset: Preset,
    est: Estimate,
    budget_min: float,
    plan_for: Callable[[int], list[TrainConfig]],
) -> Fit | None:
    """None where the plan fits the budget with the estimate's measured error to spare (`plannable`); else the
    most epochs at which the study, trained from scratch in a runs folder of its own, does (`time_left`: the
    seconds the estimate took to measure count, 14 s of a quick kernel study's 2.75 minutes)."""
    left = time_left(est, budget_min)
    if est.wall_s <= left:
        return None
    work = spec.work
    after = (lambda c, n: work.images(c, n)) if work else None  # every run of a new folder needs the study's work
    return fit_epochs(plan_for, preset.epochs, est, left, after)


def _over(est: Estimate, epochs: int, budget_min: float) -> str:
    return (
        f"{counted(epochs, 'epoch')} a run: ~{minutes(est.wall_s)} estimated, "
        f"up to ~{minutes(est.wall_s * (1 + ESTIMATE_ERROR))} "
        f"with the estimate's error (+{ESTIMATE_ERROR:.0%}), over the {budget_min:g}-minute budget (--budget) on "
        "this machine"
    )


def print_fit(fit: Fit, preset: Preset, est: Estimate, budget_min: float, command: Callable[[int], str]) -> None:
    """The study trains what it was asked (--epochs given, or --no-fit) though it is over the budget: say so, and
    the most epochs that fit, with `command(epochs)`, the command that trains them."""
    over = f"note: {_over(est, preset.epochs, budget_min)}"
    if fit.epochs == 0:
        console.print(
            f"{over}; even 1 epoch a run would take ~{minutes(fit.wall_s)}: fewer --seeds or a smaller --subset",
            highlight=False,
        )
    else:
        console.print(
            f"{over}; {counted(fit.epochs, 'epoch')} a run fit (~{minutes(fit.wall_s)} from scratch), "
            "a shorter recipe that trains to lower accuracy (README: Studies, Time), in a runs folder of its own: "
            f"{shown(command(fit.epochs))}",
            highlight=False,
        )


def earlier_fit(
    preset: Preset,
    runs: Path,
    left_s: float,
    plan_at: Callable[[int, Path], list[TrainConfig]],
    timed: Callable[[list[TrainConfig], dict[str, str]], Estimate],
) -> tuple[int, Estimate] | None:
    """A fitted start of this study that an earlier call began (RUNS/epochsM with runs of its plan, M below the
    preset's) whose remaining work is estimated within `left_s` (`time_left`): the most epochs of those, with its
    estimate. Resuming it beats starting again at an epoch count that the speed probe's noise moved by one."""
    for e in fitted_epochs(runs, preset):
        configs = plan_at(e, fitted_runs(runs, e))
        try:
            statuses, counts = plan_statuses(configs)
        except FmnistError:  # a run of the same name with another recipe: not this study's start
            continue
        if counts.get(NEW, 0) == len(configs):
            continue
        est = timed(configs, statuses)
        if est.wall_s <= left_s:
            return e, est
    return None


@handle_errors
def study(
    name: Annotated[str | None, typer.Argument(help=f"The study: {', '.join(STUDIES)}.", show_default=False)] = None,
    list_: Annotated[bool, typer.Option("--list", help="Name each study, its claims and how many runs exist.")] = False,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="Classroom preset: fewer seeds and epochs on a subset, a few minutes (runs in RUNS/quick)."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan and its time estimated from measured speed; train nothing.")
    ] = False,
    seeds: Annotated[int | None, typer.Option(help="Seeds per config (default: the preset's).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs of every training (default: the preset's).")] = None,
    subset: Annotated[int | None, typer.Option(help="Train on the first N images (default: the preset's).")] = None,
    jobs: Annotated[
        int | None,
        typer.Option(help="Trainings run at once, each with cores/jobs threads (default 2, or 1 on a 1-core machine)."),
    ] = None,
    runs: Annotated[
        Path | None,
        typer.Option(help="Folder of the run folders (default checkpoints; checkpoints/quick with --quick)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for the table, figure and report section (default reports/studies/NAME)."),
    ] = None,
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
    budget: Annotated[
        float | None,
        typer.Option(
            metavar="MINUTES",
            help=f"The time the study should take (default {BUDGET_MINUTES:g}, {QUICK_BUDGET_MINUTES:g} with "
            "--quick): over it, with the estimate's error to spare, the study trains the most epochs that fit "
            "(see --fit).",
            show_default=False,
        ),
    ] = None,
    fit_budget: Annotated[
        bool,
        typer.Option(
            "--fit/--no-fit",
            help="Where the preset's recipe is estimated over the budget and --epochs is not given, train the most "
            "epochs that fit, in RUNS/epochsN and OUT-epochsN (--no-fit: the preset's recipe, whatever it takes).",
        ),
    ] = True,
    ray: RayOpt = None,
    task_cpus: TaskCpusOpt = 1,
    task_gpus: TaskGpusOpt = 1.0,
    data_dir: DataDirOpt = None,
) -> None:
    """Run one study: train its configs × seeds with one recipe (reusing finished runs, resuming interrupted ones),
    then give each of its claims a verdict from paired statistics; write its table, figure and report section."""
    if list_:
        list_studies(runs or Path("checkpoints"))
        return
    if name is None:
        raise UsageError(f"give a study NAME or --list; studies: {', '.join(STUDIES)}")
    spec = get(name)
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r} is not valid; valid: {', '.join(PRECISIONS)}")
    preset = _preset(spec, quick, seeds, epochs, subset)
    budget = budget if budget is not None else QUICK_BUDGET_MINUTES if quick else BUDGET_MINUTES
    if not budget > 0:
        raise UsageError(f"--budget must be a positive number of minutes, got {budget:g}")
    runs = runs or (Path("checkpoints") / QUICK_RUNS if quick else Path("checkpoints"))
    out = out or Path("reports/studies") / (f"{spec.name}-quick" if quick else spec.name)

    def plan_at(e: int, root: Path) -> list[TrainConfig]:  # the preset's plan at `e` epochs, its runs in `root`
        return spec.plan(
            replace(preset, epochs=e), root, data_dir, Device(device).value, precision, Compile(compile).value
        )

    given_runs: Path = runs

    def plan_for(e: int) -> list[TrainConfig]:  # ... in the runs folder given (the preset's own: `preset.epochs`)
        return plan_at(e, given_runs)

    configs = plan_for(preset.epochs)
    given: dict[str, Any] = {
        "--quick": quick,
        "--seeds": seeds,
        "--subset": subset,
        "--jobs": jobs,
        "--data-dir": data_dir,
        "--precision": precision != "auto" and precision,
        "--device": Device(device).value != "auto" and Device(device).value,
    }
    jobs, threads = jobs_and_threads(jobs, len(configs))
    statuses, counts = plan_statuses(configs)

    def header() -> None:
        console.print(
            f"study {spec.name} ({spec.title}, {preset.describe()}): {len(configs)} runs in {shown(runs)} "
            f"({', '.join(f'{v} {k}' for k, v in counts.items() if v)}); {jobs} at a time × "
            f"{counted(threads, 'thread')}",
            highlight=False,
        )

    def timed(planned: list[TrainConfig], st: dict[str, str], reuse: Estimate | None = None) -> Estimate:
        return estimate(planned, st, jobs, threads, data_dir, _work_images(spec, st), reuse)

    header()
    work_what = spec.work.what if spec.work else ""
    est = timed(configs, statuses)
    fit = over_budget(spec, preset, est, budget, plan_for)
    preset_epochs, preset_wall_s, fitted = preset.epochs, est.wall_s, False
    if fit is not None and fit.epochs > 0 and fit_budget and epochs is None:
        # the preset's recipe does not fit this machine's budget: train the most epochs that do, in folders of
        # their own, rather than a study nobody waits for (--no-fit, or --epochs, trains what was asked)
        print_estimate(est, statuses, False, work_what)
        before = earlier_fit(preset, runs, time_left(est, budget), plan_at, lambda c, st: timed(c, st, est))
        e = before[0] if before else fit.epochs
        where = shown(fitted_runs(runs, e)) + (" (started before: its runs are reused)" if before else "")
        console.print(
            f"fit: {_over(est, preset.epochs, budget)}; training {counted(e, 'epoch')} a run instead, "
            f"a shorter recipe that trains to lower accuracy (README: Studies, Time), in {where} and "
            f"{shown(fitted_out(out, e))}; "
            f"--no-fit trains the preset's {counted(preset.epochs, 'epoch')} whatever they take",
            highlight=False,
        )
        preset, runs, out, fitted = replace(preset, epochs=e), fitted_runs(runs, e), fitted_out(out, e), True
        configs = plan_at(e, runs)
        statuses, counts = plan_statuses(configs)
        header()
        est = before[1] if before else timed(configs, statuses, est)
        print_estimate(est, statuses, dry_run, work_what)
    else:
        print_estimate(est, statuses, dry_run, work_what)
        if fit is not None:
            print_fit(fit, preset, est, budget, lambda e: _again(spec.name, given, e, runs, out))
    if dry_run:
        return
    runner = executor(ray, jobs, threads, task_cpus, task_gpus, out / "logs")
    outcome, groups, measured = train_and_collect(
        "study", runner, configs, est.seconds, latency, onnx_dir, out, data_dir
    )
    work_s = _do_work(spec, groups, data_dir, Device(device).value)
    result = spec.run(groups, measured)
    doc: dict[str, Any] = {
        **result.to_dict(),
        "claims": [{"claim": c.text, "source": c.source, "metric": c.metric, "margin": c.margin} for c in spec.claims],
        "preset": {
            "seeds": preset.seeds,
            "epochs": preset.epochs,
            "subset": preset.subset,
            "lr": preset.lr,
            "quick": quick,
        },
        "experiment": {
            "executor": f"ray {ray}" if ray else "local",
            "jobs": None if ray else jobs,  # under Ray, the cluster's free CPUs decide how many run at once
            "threads": task_cpus if ray else threads,
            "wall_seconds": round(outcome.wall_seconds + work_s, 2),
            "after_seconds": round(work_s, 2),
            "estimated_wall_seconds": round(est.wall_s, 1),
            "budget_seconds": round(budget * 60, 1),
            "estimate_error": ESTIMATE_ERROR,
            "fit": None
            if fit is None
            else {
                "epochs": fit.epochs,
                "estimated_wall_seconds": round(fit.wall_s, 1),
                "applied": fitted,  # trained at `preset.epochs` (the fit or an earlier start's), not the preset's
                "preset_epochs": preset_epochs,
            },
            "trained": outcome.trained,
            "reused": outcome.reused,
            "run_seconds": {k: round(v, 2) for k, v in outcome.seconds.items()},
            "estimate": est.to_dict(),
        },
    }
    said = (
        f"*Trained at {counted(preset.epochs, 'epoch')} a run, not the preset's {preset_epochs}: "
        f"the preset's recipe was estimated at ~{minutes(preset_wall_s)} on this machine, "
        f"over the {budget:g}-minute budget with the "
        "estimate's error to spare (`--fit`). A shorter recipe trains to lower accuracy (README: Studies, Time); "
        "`--no-fit` trains the preset's.*"
        if fitted
        else ""
    )
    paths = write_results(doc, _with_line(study_markdown(result), said), to_csv(result.rows), out)
    if result.rows:
        drawn = section(spec, result, out / f"{spec.name}_study.png")
        write_text(out / "section.md", _with_line(section_markdown(drawn), said))
        paths += [drawn.png, out / "section.md"]
    render_study(result)
    console.print(
        f"wall time {outcome.wall_seconds + work_s:.1f}s (estimated {est.wall_s:.0f}s; {len(outcome.trained)} trained, "
        f"{len(outcome.reused)} reused) → {', '.join(shown(p) for p in paths)}",
        highlight=False,
    )
    if outcome.failed:
        raise typer.Exit(1)
