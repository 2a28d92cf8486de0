"""A run's per-image test predictions, `predictions.json` in its folder (no torch): the class it predicted for each
of the test images and their true classes, one digit per image, so that a paired difference can take its
test-set term from the images themselves (`analysis.bounded_sd`) instead of bounding it from the aggregates.

About 20 kB a run. The file names the weights it was made from: a run whose best weights changed since (extended
with `--resume --epochs N`) no longer counts it; a run without weights (the shipped record) takes it as it is.
Written by `write` from the trainer's (or an evaluation's) predictions; read by `correct`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .fsutil import sha256_file, write_json
from .runs import BEST, Run

FILE = "predictions.json"
VERSION = 1


def write(folder: Path, predicted: np.ndarray, labels: np.ndarray) -> Path:
    """`folder`/predictions.json for these predicted and true classes (0–9, in test-set order), naming the
    folder's best weights (atomic write)."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    if predicted.shape != labels.shape or predicted.ndim != 1:
        raise ValueError(f"predictions {predicted.shape} and labels {labels.shape} must be one vector each, alike")
    if predicted.size and (min(predicted.min(), labels.min()) < 0 or max(predicted.max(), labels.max()) > 9):
        raise ValueError("classes must be 0–9 (one digit each)")
    weights = folder / BEST
    doc = {
        "version": VERSION,
        "images": int(labels.size),
        "weights_sha256": sha256_file(weights) if weights.is_file() else None,
        "labels": "".join(map(str, labels.tolist())),
        "predicted": "".join(map(str, predicted.tolist())),
    }
    path = folder / FILE
    write_json(path, doc)
    return path


def read(run: Run) -> tuple[np.ndarray, np.ndarray] | None:
    """(labels, predicted) of the run's predictions.json, or None: no file, a damaged one, another version, or one
    made from weights the run no longer has."""
    path, weights = run.path / FILE, run.file(BEST)
    try:
        stamp = path.stat()
        held = weights.stat() if weights.is_file() else None
    except OSError:
        return None
    weights_key = None if held is None else (str(weights), held.st_mtime_ns, held.st_size)
    return _read(str(path), stamp.st_mtime_ns, stamp.st_size, weights_key)


@lru_cache(maxsize=1024)
def _read(
    path: str, mtime_ns: int, size: int, weights: tuple[str, int, int] | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """`read` of one version of the file (and of the weights beside it): each analysis reads a run's file once."""
    try:
        doc: Any = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        return None
    labels, predicted = doc.get("labels"), doc.get("predicted")
    if not isinstance(labels, str) or not isinstance(predicted, str) or len(labels) != len(predicted) or not labels:
        return None
    if not (labels.isdigit() and predicted.isdigit()):
        return None
    if weights is not None and doc.get("weights_sha256") != sha256_file(Path(weights[0])):
        return None
    return _digits(labels), _digits(predicted)


def _digits(text: str) -> np.ndarray:
    return (np.frombuffer(text.encode(), dtype=np.uint8) - ord("0")).astype(np.int64)
