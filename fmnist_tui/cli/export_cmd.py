"""`fmnist export RUN... | --all`: write export/<run>.onnx (calibrated) after the checker and the parity checks pass;
`fmnist export --calibrate FILE.onnx`: calibrate an exported or foreign ONNX file in place."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..core.errors import EXIT_INTERRUPTED, FmnistError, Interrupted, UsageError
from ..core.runs import Run, list_runs, resolve_run
from .common import DataDirOpt, JsonOpt, StopFlag, console, err_console, fail, handle_errors, print_json, shown


def _runs_to_export(names: list[str], all_runs: bool, root: Path) -> list[Run]:
    if all_runs and names:
        raise UsageError("give run names or --all, not both")
    if not all_runs and not names:
        raise UsageError("name the run(s) to export, or pass --all for every finished run")
    if not all_runs:
        return [resolve_run(name, root) for name in names]
    runs = list_runs(root)
    for run in runs:
        if not run.finished:
            err_console.print(f"skipping {shown(run.name)}: not finished")
    finished = [r for r in runs if r.finished]
    if not finished:
        raise FmnistError(f"{root} holds no finished runs; train one with `fmnist train`")
    return finished


def print_report(r: Any) -> None:
    console.print(
        f"[bold green]exported[/] {shown(r.run)} → {shown(r.path)} ({r.bytes / 1e6:.2f} MB, opset {r.opset}, "
        f"dynamic batch, sha256 {r.sha256[:12]}…) in {r.seconds:.1f}s",
        highlight=False,
    )
    console.print("  onnx.checker (full check): passed", highlight=False)
    console.print(
        f"  onnxruntime vs PyTorch on {r.parity_images:,} images: max |Δlogit| {r.max_abs_diff:.2e} "
        f"(limit 1e-04), top-1 agreement {r.top1_agreement:.2%}",
        highlight=False,
    )
    same = round(r.onnx_accuracy * r.test_images) == round(r.summary_accuracy * r.test_images)
    summary = (
        f"= run summary {r.summary_accuracy:.2%}"
        if same
        else f"on this CPU (the run summary's {r.summary_accuracy:.2%} was measured on {r.summary_device}, "
        "whose kernels round differently)"
    )
    console.print(
        f"  test accuracy on {r.test_images:,} images: ONNX {r.onnx_accuracy:.2%} = PyTorch "
        f"{r.torch_accuracy:.2%} {summary}",
        highlight=False,
    )


def _export_all(
    selected: list[Run], out: Path, threads: int | None, json_out: bool, data_dir: Path | None, stop: StopFlag
) -> tuple[list[Any], int]:
    """Export each run; a failure of one of several is named and counted, the others go on."""
    import torch  # torch loads here, not at CLI start-up

    from ..core.data import load_dataset
    from ..deploy.export import export_run

    if threads:
        torch.set_num_threads(threads)
    dataset = load_dataset(data_dir)
    reports, failed = [], 0
    for run in selected:
        try:
            report = export_run(run, out, dataset, on_step=None if json_out else _step, should_stop=stop)
        except FmnistError as exc:
            if stop():  # a second Ctrl-C inside torch's exporter comes back as its own error
                raise Interrupted(f"interrupted while exporting {run.name}; no file was left for it") from exc
            if len(selected) == 1:
                raise
            failed += 1
            err_console.print(f"[bold red]error:[/] {shown(f'{run.name}: {exc}')}", markup=True, highlight=False)
            continue
        reports.append(report)
        if not json_out:
            print_report(report)
            if report.calibration:
                print_calibration(report.calibration)
    return reports, failed


def print_calibration(figures: dict[str, Any]) -> None:
    """The calibration and OOD figures of one model, two lines."""
    c, o = figures["calibration"], figures["ood"]
    console.print(
        f"  calibration ({c['method']}, T = {c['temperature']:.3f}, fitted on the validation split): "
        f"test ECE {c['test_ece_before']:.2%} → {c['test_ece_after']:.2%}",
        highlight=False,
    )
    console.print(
        f"  unsure: {o['method']} score above {o['threshold']:.4g} ({o['val_pass']:.0%} of validation images pass; "
        f"{o['test_flagged']:.2%} of test images flagged)",
        highlight=False,
    )


def _calibrate(file: Path, json_out: bool, data_dir: Path | None) -> None:
    """`--calibrate FILE`: calibrate one ONNX file in place and say what it measured."""
    from ..core.data import load_dataset
    from ..deploy.export import calibrate_file

    figures = calibrate_file(file, load_dataset(data_dir), on_step=None if json_out else _step)
    if json_out:
        print_json(figures)
        return
    console.print(f"[bold green]calibrated[/] {shown(file)} (sha256 {figures['sha256'][:12]}…)", highlight=False)
    print_calibration(figures)


def _step(message: str) -> None:
    console.print(message, style="dim", highlight=False)


@handle_errors
def export(
    runs: Annotated[
        list[str] | None, typer.Argument(help="Run names (in --runs) or run folders.", show_default=False)
    ] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Export every finished run in --runs.")] = False,
    runs_dir: Annotated[Path, typer.Option("--runs", help="Folder holding the run folders.")] = Path("checkpoints"),
    out: Annotated[Path, typer.Option(help="Folder for the .onnx files and manifest.json.")] = Path("export"),
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch.", min=1)] = None,
    calibrate: Annotated[
        Path | None,
        typer.Option(
            "--calibrate",
            help="Calibrate this exported (or foreign) ONNX file in place instead: fit on the validation split, "
            "add the OOD score and threshold, keep its other metadata.",
            dir_okay=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Export runs to ONNX (dynamic batch, class names and calibration in the metadata), verified against PyTorch."""
    if calibrate is not None:
        if runs or all_runs:
            raise UsageError("--calibrate FILE takes no run names and no --all")
        _calibrate(calibrate, json_out, data_dir)
        return
    selected = _runs_to_export(list(runs or []), all_runs, runs_dir)
    # one Ctrl-C, whenever it comes, stops at the next step (a few seconds at most) with nothing published for
    # the model in hand, and says so in one line; a second one aborts at once
    with StopFlag("", quiet=True) as stop:
        try:
            reports, failed = _export_all(selected, out, threads, json_out, data_dir, stop)
        except KeyboardInterrupt:  # the second Ctrl-C: at once (temporary files are removed on the way out)
            raise fail("aborted; no file was left for the model in hand", EXIT_INTERRUPTED) from None
    if json_out:
        print_json([r.to_dict() for r in reports])
    elif reports:
        console.print(
            f"manifest: {shown(Path(out) / 'manifest.json')} · "
            f"next: fmnist predict IMAGE --model {shown(reports[0].path)}",
            highlight=False,
        )
    if failed:
        raise fail(f"{failed} of {len(selected)} exports failed (named above); no file was written for them")
