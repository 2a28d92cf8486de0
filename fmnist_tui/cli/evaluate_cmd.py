"""`fmnist evaluate RUN`: test accuracy, per-class precision/recall/F1, confusion matrix, worst pairs, calibration
(ECE, NLL, Brier before and after the calibrator the export fits on validation); with `--shift`,
accuracy on the test set shifted by every (dx, dy) up to 4 pixels and the mean drop per shift radius."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Column, Table

from ..core import registry
from ..core.data import CLASSES
from ..core.errors import UsageError
from ..core.runs import Run, resolve_run
from ..core.shifts import EQUIVARIANCE_IMAGES, MAX_SHIFT, SIZES
from .common import DataDirOpt, Device, JsonOpt, console, handle_errors, print_json, progress_bar


def render_report(name: str, report: dict[str, Any]) -> None:
    """Print an evaluation report as rich tables."""
    console.print(
        f"[bold]{name}[/]: test accuracy [bold]{report['test_accuracy']:.2%}[/] "
        f"on {sum(r['support'] for r in report['per_class']):,} images",
        highlight=False,
    )
    per = Table(Column("class", no_wrap=True), title="per class", title_justify="left")
    for col in ("precision", "recall", "F1", "support"):
        per.add_column(col, justify="right")
    for r in report["per_class"]:
        per.add_row(r["class"], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}", str(r["support"]))
    console.print(per)
    console.print(confusion_table(report["confusion_matrix"]))
    console.print(
        "most confused: "
        + "; ".join(
            f"{p['a']} ↔ {p['b']} {p['total']} ({p['a_as_b']} + {p['b_as_a']})" for p in report["most_confused"]
        ),
        highlight=False,
    )
    if report.get("calibration"):
        console.print(calibration_table(report["calibration"]))


def calibration_table(c: dict[str, Any]) -> Table:
    """Accuracy, confidence, ECE, NLL and Brier on the test set: raw, temperature only, calibrated."""
    table = Table(
        "test set",
        *(Column(h, justify="right") for h in ("uncalibrated", f"T = {c['temperature']:.3f}", "calibrated")),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        title_justify="left",
        title=f"calibration (fitted on the validation split; {c['images']:,} test images; ECE over 15 bins)",
    )
    steps = [c["before"], c["temperature_only"], c["after"]]
    for key, label, fmt in (
        ("accuracy", "accuracy", "{:.2%}"),
        ("confidence", "mean confidence", "{:.2%}"),
        ("ece", "ECE", "{:.2%}"),
        ("nll", "NLL (nats)", "{:.4f}"),
        ("brier", "Brier", "{:.4f}"),
    ):
        table.add_row(label, *(fmt.format(s[key]) for s in steps))
    return table


def confusion_table(matrix: list[list[int]]) -> Table:
    """The confusion matrix with numbered predicted-class columns: the rows say which number is which class
    in full, so no name is cut to fit a column ("Ankle b") and the table fits 80 columns."""
    cm = Table(
        Column("true \\ pred", no_wrap=True),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        title_justify="left",
        title="confusion matrix (columns numbered as the rows)",
    )
    for j in range(len(CLASSES)):
        cm.add_column(str(j), justify="right")
    for i, row in enumerate(matrix):
        cm.add_row(
            f"{i} {CLASSES[i]}", *[f"[bold]{v}[/]" if i == j else (str(v) if v else "·") for j, v in enumerate(row)]
        )
    return cm


def render_shifts(name: str, result: dict[str, Any]) -> None:
    """Print a shifted evaluation: accuracy per (dx, dy) as a grid, then the drop per shift radius."""
    console.print(
        f"[bold]{name}[/]: accuracy on {result['images']:,} test images shifted by (dx, dy) pixels, zero fill "
        f"(unshifted {result['unshifted_accuracy']:.2%}{'; from shift.json' if result['cached'] else ''})",
        highlight=False,
    )
    grid = Table(Column("dy \\ dx", justify="right"), box=box.SIMPLE_HEAD, show_edge=False)
    for dx in result["shifts"]:
        grid.add_column(f"{dx:+d}" if dx else "0", justify="right")
    for dy, row in zip(result["shifts"], result["accuracy"], strict=True):
        grid.add_row(f"{dy:+d}" if dy else "0", *(f"{100 * a:.1f}" for a in row))
    console.print(grid)
    for r in result["by_radius"]:
        console.print(
            f"{r['radius']} px ({r['shifts']} shifts): accuracy {r['accuracy']:.2%}, drop {100 * r['drop']:+.2f} "
            f"points, predictions changed {r['changed']:.2%}",
            highlight=False,
        )
    console.print(
        f"mean drop over {_radii(len(result['by_radius'][:MAX_SHIFT]))}: {100 * result['mean_drop']:+.2f} points; "
        f"predictions changed {result['mean_changed']:.2%}",
        highlight=False,
    )


def _radii(n: int) -> str:
    return "1 px" if n == 1 else f"1–{n} px"


@handle_errors
def evaluate(
    run: Annotated[str, typer.Argument(help="Run name (in --runs) or run folder.")],
    runs: Annotated[Path, typer.Option(help="Folder holding the run folders.")] = Path("checkpoints"),
    json_out: JsonOpt = False,
    device: Annotated[Device, typer.Option(help="Where to run the model (auto: CUDA when present).")] = Device("cpu"),
    shift: Annotated[
        bool,
        typer.Option(
            "--shift", help="Evaluate on the test set shifted by every (dx, dy) up to --max-shift pixels (zero fill)."
        ),
    ] = False,
    max_shift: Annotated[
        int | None, typer.Option(help=f"With --shift: the largest shift, pixels each way (default {MAX_SHIFT}).")
    ] = None,
    images: Annotated[
        int | None,
        typer.Option(help="With --shift: evaluate the first N/10 test images of each class (default all 10,000)."),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Evaluate a run's best weights on the 10,000 test images (or, with --shift, on shifted copies of them)."""
    if not shift and (max_shift is not None or images is not None):
        raise UsageError("--max-shift and --images go with --shift")
    found = resolve_run(run, runs)
    cfg = found.config()
    about = {
        "run": found.name,
        "path": str(found.path),
        "arch": cfg.get("arch"),
        "kernel": cfg.get("kernel"),
        "options": registry.resolved_options(str(cfg.get("arch")), cfg),
        "params": cfg.get("params"),
        "macs": cfg.get("macs"),
    }
    if shift:
        shift_at = MAX_SHIFT if max_shift is None else max_shift
        _evaluate_shifts(found, about, json_out, Device(device).value, shift_at, images, data_dir)
        return
    from ..training.calibrated import evaluate_calibration
    from ..training.evaluate import evaluate_run

    report = {**about, **evaluate_run(found, data_dir, Device(device).value)}
    report["calibration"] = evaluate_calibration(found, data_dir, Device(device).value)
    if json_out:
        print_json(report)
    else:
        render_report(found.name, report)


def _evaluate_shifts(
    found: Run,
    about: dict[str, Any],
    json_out: bool,
    device: str,
    max_shift: int,
    images: int | None,
    data_dir: Path | None,
) -> None:
    from ..training.shift import evaluate_equivariance, evaluate_shifts

    size = (2 * max_shift + 1) ** 2
    with progress_bar(f"{size} shifted test sets", size, quiet=json_out) as advance:
        result = evaluate_shifts(found, 10_000 if images is None else images, max_shift, data_dir, device, advance)
    shown = {**result.grid.to_dict(), "cached": result.cached, "seconds": round(result.seconds, 2)}
    stages = evaluate_equivariance(found, data_dir, device) if registry.has_convs(str(about["arch"])) else None
    if json_out:
        print_json({**about, "shift": shown, "equivariance": stages})
        return
    render_shifts(found.name, shown)
    if stages:
        console.print(equivariance_table(stages))


def equivariance_table(stages: list[dict[str, Any]]) -> Table:
    """Per stage: how far its output moves when the input shifts by 1 and 2 px, and how far it is from its own
    unshifted output shifted alike (away from the borders), relative to the unshifted output."""
    table = Table(
        "stage",
        "shape",
        *(Column(f"{what} {s} px", justify="right") for what in ("moves", "off its shift") for s in SIZES),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        title_justify="left",
        title=f"equivariance on the first {EQUIVARIANCE_IMAGES // len(CLASSES)} test images of each class (‖·‖ "
        "relative to the unshifted output; '—': the shift is no whole pixel of that map)",
    )
    for st in stages:
        cells = [f"{st['change'][str(s)]:.3f}" for s in SIZES]
        cells += ["—" if (e := st["equivariance_error"][str(s)]) is None else f"{e:.1e}" for s in SIZES]
        table.add_row(st["stage"], "×".join(map(str, st["shape"])), *cells)
    return table
