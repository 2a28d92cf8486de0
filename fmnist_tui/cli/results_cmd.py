"""`fmnist results`: the study's table over whatever finished runs exist, grouped by config."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..core.data import CLASSES
from ..core.errors import RunError
from ..core.text import counted
from ..study import lab
from ..study.analysis import p_text
from ..study.latency import latencies
from ..study.results import YOURS, Group, format_cells, group_records, to_csv, to_markdown
from ..study.studies import networks
from ..study.verdicts import Study, family_sentence, study_markdown
from .common import console, err_console, handle_errors, print_json


class ResultsFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    csv = "csv"
    json = "json"


def render_study(study: Study, table: bool = True) -> None:
    """The table (unless `table` is off), paired differences, per-class differences and verdicts as rich output."""
    if table:
        rows = Table(title="test accuracy over seeds (mean ± sample std, Student-t 95% CI)", title_justify="left")
        cells = [format_cells(r) for r in study.rows]
        for col in cells[0] if cells else ():
            rows.add_column(col, justify="left" if col == "config" else "right")
        for c in cells:
            rows.add_row(*c.values())
        console.print(rows)
    if study.comparisons:
        diffs = Table(
            "difference",
            "mean (points)",
            "95% CI",
            "p",
            "sd: seeds",
            "sd: test images",
            "seeds",
            title="paired over seeds; the intervals add the test images' sampling variance (a conservative bound)",
            title_justify="left",
        )
        for comp in study.comparisons:
            d = comp.diff
            low, high = d.interval()
            ci = "—" if d.n < 2 else f"[{100 * low:+.2f}, {100 * high:+.2f}]"
            p = "—" if d.n < 2 else p_text(d.p_equal(0.0))
            seed_sd = "—" if d.n < 2 else f"{100 * d.seed_sd:.2f}"
            diffs.add_row(comp.name, f"{100 * d.estimate:+.2f}", ci, p, seed_sd, f"{100 * d.test_sd:.2f}", str(d.n))
        console.print(diffs)
    if study.per_class and study.per_class_pair:
        a, b = study.per_class_pair
        console.print(
            f"per-class accuracy {a} − {b} (points): "
            + ", ".join(
                f"{'[bold]' if CLASSES[i] in study.highlight else ''}{CLASSES[i]} {100 * c.diff.estimate:+.1f}"
                f"{'[/]' if CLASSES[i] in study.highlight else ''}"
                for i, c in enumerate(study.per_class)
            ),
            highlight=False,
        )
    if study.family:
        console.print(family_sentence(study.family), highlight=False, markup=False)
    for v in study.verdicts:
        console.print(f"[bold]{escape(v['claim'])}[/]: {v['verdict']} — {escape(v['detail'])}", highlight=False)


@handle_errors
def results(
    runs: Annotated[Path, typer.Option(help="Folder holding your run folders.")] = Path("checkpoints"),
    shipped: Annotated[
        bool,
        typer.Option("--shipped/--no-shipped", help="Show the lab's shipped runs (results/runs) beside yours."),
    ] = True,
    onnx_dir: Annotated[
        Path, typer.Option(help="Exported models (<run>.onnx) for the latency column; configs without one show '—'.")
    ] = Path("export"),
    fmt: Annotated[ResultsFormat, typer.Option("--format", help="table, markdown, csv or json.")] = ResultsFormat.table,
) -> None:
    """Accuracy mean ± std and 95% CI over seeds for every config of your runs and the shipped ones (marked),
    with the kernel study's paired comparisons and verdicts (corrected over every study's claims)."""
    records, warnings = lab.load(lab.sources(runs, shipped))
    for w in warnings:
        err_console.print(f"warning: {w}")
    if not records:
        where = f"{runs} holds no finished runs" if runs.is_dir() else f"{runs} does not exist"
        raise RunError(f"{where}, and no shipped results were found; train some with `fmnist train` or `fmnist study`")
    groups = group_records(records)
    measured, lat_warnings = latencies(groups, onnx_dir) if onnx_dir.is_dir() else ({}, [])
    for w in lat_warnings:
        err_console.print(f"warning: {w}")
    study = networks(groups, measured)
    rows = [{**g.row(), "latency_ms": measured.get(g.label)} for g in groups]
    if fmt is ResultsFormat.json:
        print_json({**study.to_dict(), "groups": rows, "warnings": warnings})
    elif fmt is ResultsFormat.csv:
        sys.stdout.write(to_csv(rows))
    elif fmt is ResultsFormat.markdown:
        sys.stdout.write(to_markdown(rows) + "\n" + study_markdown(study))
    else:
        console.print(
            f"{counted(len(groups), 'config')} ({_sources(groups)}); the comparisons below are the kernel study's",
            highlight=False,
        )
        console.print(to_markdown(rows), markup=False, highlight=False)
        render_study(study, table=False)


def _sources(groups: list[Group]) -> str:
    yours = sum(g.source == YOURS for g in groups)
    return ", ".join(
        p
        for p in (f"{yours} yours" if yours else "", f"{len(groups) - yours} shipped" if len(groups) - yours else "")
        if p
    )
