"""`fmnist report` (every figure and report.md) and `fmnist featuremaps` (one run's conv activations for one image)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..core.errors import UsageError
from .common import DataDirOpt, console, err_console, handle_errors, shown


@handle_errors
def report(
    out: Annotated[Path, typer.Option(help="Folder for the PNGs and report.md.")] = Path("reports"),
    runs: Annotated[Path, typer.Option(help="Folder holding the run folders.")] = Path("checkpoints"),
    run: Annotated[
        list[str] | None,
        typer.Option(
            "--run",
            help="Run(s) for the training curves, confusion "
            "matrix (the first) and feature maps (the first CNN); default: seed 0 of each config.",
        ),
    ] = None,
    figure: Annotated[
        list[str] | None,
        typer.Option(
            "--figure",
            help="Draw only these (repeatable): "
            "distribution, samples, means, kernels, depth, pooling, regularizer, … (the studies, the ladder "
            "among them), claims, per-class, curves, confusion, featuremaps, calibration. Without it, all of them "
            "and report.md.",
        ),
    ] = None,
    test_index: Annotated[int, typer.Option(help="Test image for the feature maps.")] = 0,
    onnx_dir: Annotated[Path, typer.Option(help="Exported models (<run>.onnx) for the latency column.")] = Path(
        "export"
    ),
    shipped: Annotated[
        bool,
        typer.Option("--shipped/--no-shipped", help="Include the lab's shipped runs (results/runs) beside yours."),
    ] = True,
    data_dir: DataDirOpt = None,
) -> None:
    """Draw every figure (PNG) and write report.md: the dataset, every study that has runs (yours and the shipped
    results), the runs."""
    from ..study.report import FIGURES, ReportBuilder

    result = ReportBuilder(out, runs, data_dir, run, test_index, onnx_dir, shipped).build(figure)
    for w in result.warnings:
        err_console.print(f"warning: {w}")
    for name, section in result.sections.items():
        console.print(f"  [green]✓[/] {name:<13} {shown(section.png)}", highlight=False)
    for name, reason in result.absent.items():
        console.print(f"  - {name:<13} not in the report: {shown(reason)}", highlight=False)
    for name, reason in result.skipped.items():
        err_console.print(f"skipped {FIGURES[name]}: {reason}")
    if result.markdown:
        console.print(f"report: {shown(result.markdown)}", highlight=False)
    if result.skipped:
        raise typer.Exit(1)


@handle_errors
def featuremaps(
    run: Annotated[str, typer.Option("--run", help="A CNN run (name in --runs, or folder).")],
    image: Annotated[
        Path | None, typer.Argument(help="An image file (any size; brought to 28×28).", exists=True, dir_okay=False)
    ] = None,
    test_index: Annotated[int | None, typer.Option(help="Use this test-set image instead of IMAGE.")] = None,
    out: Annotated[Path, typer.Option(help="PNG file to write.")] = Path("reports/feature_maps.png"),
    runs: Annotated[Path, typer.Option(help="Folder holding the run folders.")] = Path("checkpoints"),
    data_dir: DataDirOpt = None,
) -> None:
    """Draw every conv1 and conv2 channel's activation of a CNN run for one image."""
    from ..core.data import load_dataset
    from ..core.runs import resolve_run
    from ..study.featuremaps import require_convs
    from ..study.report import draw_feature_maps, pick_test_image

    if (image is None) == (test_index is None):
        raise UsageError("give exactly one of IMAGE or --test-index N")
    found = resolve_run(run, runs)
    require_convs(found)
    if image is not None:
        from ..inference.preprocess import preprocess  # the one preprocessing of predict, the TUI and the server

        pixels, what = preprocess(image), image.name
    elif test_index is not None:
        pixels, label = pick_test_image(load_dataset(data_dir), test_index)
        what = f"test image #{test_index} ({label})"
    section = draw_feature_maps(found, pixels, out, what)
    console.print(section.text, highlight=False)
    console.print(f"wrote {shown(out)}", highlight=False)
