"""`fmnist evaluate RUN`: test accuracy, per-class precision/recall/F1, confusion matrix, worst pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Column, Table

from ..core import registry
from ..core.data import CLASSES
from ..core.runs import resolve_run
from .common import DataDirOpt, Device, JsonOpt, console, handle_errors, print_json


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


@handle_errors
def evaluate(
    run: Annotated[str, typer.Argument(help="Run name (in --runs) or run folder.")],
    runs: Annotated[Path, typer.Option(help="Folder holding the run folders.")] = Path("checkpoints"),
    json_out: JsonOpt = False,
    device: Annotated[Device, typer.Option(help="Where to run the model (auto: CUDA when present).")] = Device("cpu"),
    data_dir: DataDirOpt = None,
) -> None:
    """Evaluate a run's best weights on the 10,000 test images."""
    from ..training.evaluate import evaluate_run

    found = resolve_run(run, runs)
    report = evaluate_run(found, data_dir, Device(device).value)
    cfg = found.config()
    report = {
        "run": found.name,
        "path": str(found.path),
        "arch": cfg.get("arch"),
        "kernel": cfg.get("kernel"),
        "options": registry.resolved_options(str(cfg.get("arch")), cfg),
        "params": cfg.get("params"),
        "macs": cfg.get("macs"),
        **report,
    }
    if json_out:
        print_json(report)
    else:
        render_report(found.name, report)
