"""`fmnist predict PATH...`: classify image files with an ONNX model (onnxruntime, numpy, Pillow; no torch)."""

from __future__ import annotations

import csv
import glob
import io
import sys
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer

from ..errors import FmnistError, UsageError
from .common import Format, console, err_console, handle_errors, print_json

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".mpo"}
CSV_COLUMNS = ("path", "label", "index", "probability", "top_k", "error")
RAMP = " .:-=+*#%@"  # --show-input: darkest to lightest


def expand_inputs(args: list[str]) -> Iterator[tuple[str, str | None]]:
    """(path, None) for each image file the arguments name, or (argument, reason) when one names nothing.

    Files are taken as given; folders are searched recursively for image suffixes; globs are expanded."""
    seen: set[str] = set()

    def emit(path: str) -> Iterator[tuple[str, str | None]]:
        if path not in seen:
            seen.add(path)
            yield path, None

    for arg in args:
        path = Path(arg)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not files:
                yield arg, f"folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})"
            for f in files:
                yield from emit(str(f))
        elif path.exists() or not any(c in arg for c in "*?["):
            yield from emit(arg)  # a missing file is reported by the reader, with the reason
        else:
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                yield arg, "no file matches this pattern"
            for m in matches:
                yield from (expand_inputs([m]) if Path(m).is_dir() else emit(m))


def _failure(path: str, reason: str) -> dict[str, Any]:
    err_console.print(f"{path}: {reason}", markup=False, highlight=False)
    return {"path": path, "label": None, "index": None, "probability": None, "top_k": [], "error": reason}


def classify(args: list[str], clf: Any, top_k: int, batch_size: int, fail_fast: bool,
             keep_input: bool) -> list[dict[str, Any]]:
    """Preprocess and classify every input in batches; failures become rows with `error` (and a stderr line)."""
    import numpy as np

    from ..preprocess import ImageError, preprocess

    results: list[dict[str, Any]] = []
    pending: list[tuple[str, Any]] = []

    def flush() -> None:
        if not pending:
            return
        probs = clf.predict_proba(np.stack([x for _, x in pending]))
        for (path, x), row in zip(pending, probs):
            best = int(row.argmax())
            item = {"path": path, "label": clf.classes[best], "index": best, "probability": float(row[best]),
                    "top_k": clf.top_k(row, top_k), "error": None}
            if keep_input:
                item["input"] = x
            results.append(item)
        pending.clear()

    for path, problem in expand_inputs(args):
        try:
            if problem:
                raise ImageError(problem)
            pending.append((path, preprocess(path)))
        except ImageError as exc:
            flush()  # keep the output in input order
            results.append(_failure(path, str(exc)))
            if fail_fast:
                break
            continue
        if len(pending) >= batch_size:
            flush()
    flush()
    return results


def render_input(x: Any) -> str:
    """The 28×28 model input as text, two characters per pixel (light = garment)."""
    idx = (x * (len(RAMP) - 1) + 0.5).astype(int).clip(0, len(RAMP) - 1)
    return "\n".join("".join(RAMP[v] * 2 for v in row) for row in idx)


def _print_table(results: list[dict[str, Any]], show_input: bool) -> None:
    from rich.table import Table

    ok = [r for r in results if r["error"] is None]
    if not ok:
        return
    table = Table("path", "label", "probability", "top-k", title_justify="left")
    for r in ok:
        table.add_row(r["path"], r["label"], f"{r['probability']:.1%}",
                      ", ".join(f"{t['label']} {t['probability']:.1%}" for t in r["top_k"]))
    console.print(table)
    if show_input:
        for r in ok:
            console.print(f"{r['path']} → {r['label']} (the 28×28 input the model saw):", highlight=False, markup=False)
            console.print(render_input(r["input"]), highlight=False, markup=False)


def _print_csv(results: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        row = {k: r[k] for k in CSV_COLUMNS}
        row["probability"] = "" if r["probability"] is None else f"{r['probability']:.6f}"
        row["top_k"] = ";".join(f"{t['label']}:{t['probability']:.6f}" for t in r["top_k"])
        row["error"] = r["error"] or ""
        writer.writerow(row)
    sys.stdout.write(buf.getvalue())


def _json_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        row = dict(r)
        if "input" in row:
            row["input"] = [[round(float(v), 4) for v in line] for line in row["input"]]
        rows.append(row)
    return rows


@handle_errors
def predict(
    paths: Annotated[list[str], typer.Argument(help="Image files, folders (searched recursively) or globs.",
                                               show_default=False)],
    model: Annotated[Optional[Path], typer.Option(help="ONNX model file (default: $FMNIST_MODEL, else the shipped "
                                                       "export/cnn-k3-s0.onnx).", dir_okay=False)] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="How many classes to list per image.", min=1, max=10)] = 3,
    fmt: Annotated[Format, typer.Option("--format", help="table, or json / csv for scripts.")] = Format.table,
    show_input: Annotated[bool, typer.Option("--show-input", help="Also print the 28×28 input the model saw "
                                                                  "(table: as text art; json: an `input` field).")] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first input that fails.")] = False,
    batch_size: Annotated[int, typer.Option(help="Images per onnxruntime call.", min=1)] = 256,
    threads: Annotated[Optional[int], typer.Option(help="onnxruntime intra-op threads (default: all cores).",
                                                   min=1)] = None,
) -> None:
    """Classify image files (photos welcome: any size, background, format) with an exported model."""
    from ..inference import OnnxClassifier, default_model_path

    if show_input and fmt is Format.csv:
        raise UsageError("--show-input works with --format table or json, not csv")
    clf = OnnxClassifier(model or default_model_path(), threads=threads)
    results = classify(paths, clf, top_k, batch_size, fail_fast, keep_input=show_input)
    if fmt is Format.json:
        print_json(_json_rows(results))
    elif fmt is Format.csv:
        _print_csv(results)
    else:
        _print_table(results, show_input)
    failed = sum(r["error"] is not None for r in results)
    if failed:
        done = len(results) - failed
        message = (f"stopped at the first failure (--fail-fast) after {done} classified" if fail_fast
                   else f"{failed} of {len(results)} inputs failed (named above); {done} classified")
        raise FmnistError(message)
