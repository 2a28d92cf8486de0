"""`fmnist predict PATH...`: classify image files with an ONNX model (onnxruntime, numpy, Pillow; no torch)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..core.errors import EXIT_INTERRUPTED, FmnistError, UsageError
from ..core.text import printable
from .common import Format, console, err_console, fail, handle_errors, print_json, write_exact

if TYPE_CHECKING:
    from ..inference.classify import Row

CSV_COLUMNS = ("path", "label", "index", "probability", "top_k", "ood_score", "unsure", "error")
RAMP = " .:-=+*#%@"  # --show-input: darkest to lightest


def render_input(x: Any) -> str:
    """The 28×28 model input as text, two characters per pixel (light = garment)."""
    idx = (x * (len(RAMP) - 1) + 0.5).astype(int).clip(0, len(RAMP) - 1)
    return "\n".join("".join(RAMP[v] * 2 for v in row) for row in idx)


def _print_failures(results: list[Row]) -> None:
    """One `path: reason` line on stderr per input that failed, in input order (control characters spelled out)."""
    for row in results:
        if row.error is not None:
            err_console.print(printable(f"{row.path}: {row.error}"), markup=False, highlight=False)


def _print_table(results: list[Row], show_input: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    ok = [(r, r.prediction) for r in results if r.prediction is not None]
    if not ok:
        return
    flags = any(p.unsure is not None for _, p in ok)  # a model without an OOD threshold: no column (a note said so)
    table = Table("path", "label", "probability", "top-k", *(["unsure"] if flags else []), title_justify="left")
    for r, p in ok:
        # Text, not str: a cell is never read as markup (a file may be named `[bold]x.png`); names and
        # labels (from the model file) with control characters spelled out
        top = ", ".join(f"{t.label} {t.probability:.1%}" for t in p.top_k)
        cells: list[Text | str] = [Text(printable(r.path)), Text(printable(p.label)), f"{p.probability:.1%}"]
        cells.append(Text(printable(top)))
        if flags:
            cells.append(Text("UNSURE", style="bold yellow") if p.unsure else Text(""))
        table.add_row(*cells)
    if any(p.unsure for _, p in ok):
        table.caption = "UNSURE: unlike Fashion-MNIST (OOD score above the model's threshold); its label is a guess"
        table.caption_justify = "left"
    console.print(table)
    if show_input:
        for r, p in ok:
            console.print(
                printable(f"{r.path} → {p.label} (the 28×28 input the model saw):"), highlight=False, markup=False
            )
            console.print(render_input(r.input), highlight=False, markup=False)


def _print_csv(results: list[Row]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        row = r.to_json()
        row["probability"] = "" if row["probability"] is None else f"{row['probability']:.6f}"
        row["top_k"] = ";".join(f"{t['label']}:{t['probability']:.6f}" for t in row["top_k"])
        row["ood_score"] = "" if row["ood_score"] is None else f"{row['ood_score']:.6g}"
        row["unsure"] = "" if row["unsure"] is None else str(row["unsure"]).lower()
        row["error"] = row["error"] or ""
        writer.writerow({k: row[k] for k in CSV_COLUMNS})
    write_exact(buf.getvalue())


def _json_rows(results: list[Row]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        row = r.to_json()
        if r.input is not None:  # --show-input: the 28×28 input, rounded (it is for reading, not for reuse)
            row["input"] = [[round(float(v), 4) for v in line] for line in r.input]
        rows.append(row)
    return rows


@handle_errors
def predict(
    paths: Annotated[
        list[str], typer.Argument(help="Image files, folders (searched recursively) or globs.", show_default=False)
    ],
    model: Annotated[
        Path | None,
        typer.Option(
            help="ONNX model file (default: $FMNIST_MODEL, else the shipped export/resnet-shift2-s0.onnx).",
            dir_okay=False,
        ),
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="How many classes to list per image.", min=1, max=10)] = 3,
    fmt: Annotated[Format, typer.Option("--format", help="table, or json / csv for scripts.")] = Format.table,
    show_input: Annotated[
        bool,
        typer.Option(
            "--show-input",
            help="Also print the 28×28 input the model saw (table: as text art; json: an `input` field).",
        ),
    ] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first input that fails.")] = False,
    batch_size: Annotated[int, typer.Option(help="Images per onnxruntime call.", min=1)] = 256,
    threads: Annotated[
        int | None, typer.Option(help="onnxruntime intra-op threads (default: all cores).", min=1)
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Processes that decode the images of a large batch of files "
            "(default: one per core, at most 8; 1: none).",
            min=1,
        ),
    ] = None,
) -> None:
    """Classify image files (photos welcome: any size, background, format) with an exported model."""
    from ..inference.classify import classify
    from ..inference.files import FilePreprocessor, expand_inputs
    from ..inference.session import OnnxClassifier, default_model_path

    if show_input and fmt is Format.csv:
        raise UsageError("--show-input works with --format table or json, not csv")
    items = list(expand_inputs(paths))
    try:
        # the worker processes are forked before the onnxruntime session starts its threads
        # in order under --fail-fast (it stops at the first failure), else split over processes
        with FilePreprocessor([p for p, problem in items if problem is None], 1 if fail_fast else workers) as prepared:
            clf = OnnxClassifier(model or default_model_path(), threads=threads, spin=False)
            if clf.notice:
                err_console.print(printable(f"note: {clf.notice}"), markup=False, highlight=False)
            results = classify(items, prepared, clf, top_k, batch_size, fail_fast, keep_input=show_input)
    except KeyboardInterrupt:
        raise fail("interrupted; nothing was printed", EXIT_INTERRUPTED) from None
    _print_failures(results)
    if fmt is Format.json:
        print_json(_json_rows(results))
    elif fmt is Format.csv:
        _print_csv(results)
    else:
        _print_table(results, show_input)
    failed = sum(r.error is not None for r in results)
    if failed:
        done = len(results) - failed
        message = (
            f"stopped at the first failure (--fail-fast) after {done} classified"
            if fail_fast
            else f"{failed} of {len(results)} inputs failed (named above); {done} classified"
        )
        raise FmnistError(message)
