"""`fmnist predict PATH...`: classify image files with an ONNX model (onnxruntime, numpy, Pillow; no torch)."""

from __future__ import annotations

import csv
import glob
import io
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Iterable, Iterator, Optional

import typer

from ..core.errors import EXIT_INTERRUPTED, FmnistError, UsageError
from .common import Format, console, err_console, fail, handle_errors, print_json

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".mpo"}
CSV_COLUMNS = ("path", "label", "index", "probability", "top_k", "error")
RAMP = " .:-=+*#%@"  # --show-input: darkest to lightest


def _image_files(folder: Path) -> list[str]:
    """The image files under `folder` (recursively, not into linked folders), sorted as paths."""
    found = []
    for root, _, names in os.walk(folder):
        found.extend(os.path.join(root, n) for n in names if os.path.splitext(n)[1].lower() in IMAGE_SUFFIXES)
    return sorted((f for f in found if os.path.isfile(f)), key=lambda f: f.split(os.sep))


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
            files = _image_files(path)
            if not files:
                yield arg, f"folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})"
            for f in files:
                yield from emit(f)
        elif path.exists() or not any(c in arg for c in "*?["):
            yield from emit(arg)  # a missing file is reported by the reader, with the reason
        else:
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                yield arg, "no file matches this pattern"
            for m in matches:
                yield from (expand_inputs([m]) if Path(m).is_dir() else emit(m))


def _failure(path: str, reason: str) -> dict[str, Any]:
    return {"path": path, "label": None, "index": None, "probability": None, "top_k": [], "error": reason}


def classify(items: list[tuple[str, str | None]], prepared: Iterable[tuple[int, Any]], clf: Any, top_k: int,
             batch_size: int, fail_fast: bool, keep_input: bool) -> list[dict[str, Any]]:
    """Classify every input; rows come back in input order, failures as rows with `error`, each also
    printed as one `path: reason` line on stderr (in input order).

    `items` are expand_inputs' (path, problem) pairs; `prepared` yields (n, (path, input, reason))
    for the n-th item without a problem, in any order (in order when `fail_fast`). Inputs are
    gathered into batches of `batch_size`; each full batch goes to onnxruntime on a second thread
    (it releases the GIL) while this one takes in the next, so the two overlap."""
    from concurrent.futures import Future, ThreadPoolExecutor

    import numpy as np

    files = [i for i, (_, problem) in enumerate(items) if problem is None]  # n-th file → its slot in items
    rows: list[dict[str, Any] | None] = [None if problem is None else _failure(path, problem)
                                         for path, problem in items]
    batches: list[tuple[list[int], list[np.ndarray], Future]] = []
    slots: list[int] = []
    inputs: list[np.ndarray] = []
    stop = len(items)  # --fail-fast: the slot of the first failure

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxruntime") as runner:
        def submit() -> None:
            if slots:
                batches.append((slots[:], inputs[:], runner.submit(clf.predict_proba, np.stack(inputs))))
                slots.clear()
                inputs.clear()

        if fail_fast:
            stop = next((i for i, (_, problem) in enumerate(items) if problem is not None), stop)
        for n, (path, x, reason) in prepared:
            slot = files[n]
            if fail_fast and slot > stop:
                break
            if reason is not None:
                rows[slot] = _failure(path, reason)
                if fail_fast:
                    stop = min(stop, slot)
                continue
            slots.append(slot)
            inputs.append(x)
            if len(slots) >= batch_size:
                submit()
        submit()
        for batch_slots, batch_inputs, future in batches:
            for slot, x, probs in zip(batch_slots, batch_inputs, future.result()):
                best = int(probs.argmax())
                rows[slot] = {"path": items[slot][0], "label": clf.classes[best], "index": best,
                              "probability": float(probs[best]), "top_k": clf.top_k(probs, top_k), "error": None}
                if keep_input:
                    rows[slot]["input"] = x

    results = [row for row in rows[:stop + 1] if row is not None]
    for row in results:
        if row["error"] is not None:
            err_console.print(f"{row['path']}: {row['error']}", markup=False, highlight=False)
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
    workers: Annotated[Optional[int], typer.Option(help="Processes that decode the images of a large batch of files "
                                                        "(default: one per core, at most 8; 1: none).",
                                                   min=1)] = None,
) -> None:
    """Classify image files (photos welcome: any size, background, format) with an exported model."""
    from ..inference.session import OnnxClassifier, default_model_path
    from ..inference.preprocess import FilePreprocessor

    if show_input and fmt is Format.csv:
        raise UsageError("--show-input works with --format table or json, not csv")
    items = list(expand_inputs(paths))
    try:
        # the worker processes are forked before the onnxruntime session starts its threads
        # in order under --fail-fast (it stops at the first failure), else split over processes
        with FilePreprocessor([p for p, problem in items if problem is None], 1 if fail_fast else workers) as prepared:
            clf = OnnxClassifier(model or default_model_path(), threads=threads, spin=False)
            results = classify(items, prepared, clf, top_k, batch_size, fail_fast, keep_input=show_input)
    except KeyboardInterrupt:
        raise fail("interrupted; nothing was printed", EXIT_INTERRUPTED) from None
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
