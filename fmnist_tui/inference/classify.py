"""`fmnist predict`'s batch pipeline: decoded images gathered into batches, onnxruntime overlapping the decoding."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .files import Prepared
from .prediction import Prediction, failed_predict_json, predictions
from .session import Classifier, Scores, predict_scores


@dataclass
class Row:
    """One input's outcome: its prediction, or the reason it failed (and, if kept, the model input)."""

    path: str
    prediction: Prediction | None = None
    error: str | None = None
    input: np.ndarray | None = None

    def to_json(self) -> dict[str, Any]:
        """`fmnist predict --format json`'s object for this input."""
        if self.prediction is None:
            return failed_predict_json(self.path, self.error or "")
        return self.prediction.predict_json(self.path)


class _Batches:
    """Inputs gathered into batches; each full batch starts at once on the runner (onnxruntime's thread)."""

    def __init__(self, runner: Executor, score: Callable[[np.ndarray], Scores], size: int) -> None:
        self.runner, self.score, self.size = runner, score, size
        self.sent: list[tuple[list[int], list[np.ndarray], Future[Scores]]] = []
        self.slots: list[int] = []
        self.inputs: list[np.ndarray] = []

    def add(self, slot: int, x: np.ndarray) -> None:
        self.slots.append(slot)
        self.inputs.append(x)
        if len(self.slots) >= self.size:
            self.submit()

    def submit(self) -> None:
        """Send what is gathered (a last, partial batch too)."""
        if self.slots:
            future = self.runner.submit(self.score, np.stack(self.inputs))
            self.sent.append((self.slots, self.inputs, future))
            self.slots, self.inputs = [], []

    def results(self, classes: list[str], k: int) -> Iterator[tuple[int, np.ndarray, Prediction]]:
        """(slot, input, prediction) for every input sent, waiting for each batch in turn."""
        for slots, inputs, future in self.sent:
            yield from zip(slots, inputs, predictions(future.result(), classes, k), strict=False)


def classify(
    items: list[tuple[str, str | None]],
    prepared: Iterable[tuple[int, Prepared]],
    clf: Classifier,
    top_k: int,
    batch_size: int,
    fail_fast: bool,
    keep_input: bool,
) -> list[Row]:
    """Classify every input; rows come back in input order, a failure as a row with its `error`.

    `items` are expand_inputs' (path, problem) pairs; `prepared` yields (n, (path, input, reason))
    for the n-th item without a problem, in any order (in order when `fail_fast`, which stops the
    rows at the first failure). Each full batch goes to onnxruntime on a second thread (it releases
    the GIL) while this one takes in the next inputs, so the two overlap."""
    files = [i for i, (_, problem) in enumerate(items) if problem is None]  # n-th file → its slot in items
    rows: list[Row | None] = [None if problem is None else Row(path, error=problem) for path, problem in items]
    stop = len(items)  # --fail-fast: the slot of the first failure
    if fail_fast:
        stop = next((i for i, (_, problem) in enumerate(items) if problem is not None), stop)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxruntime") as runner:
        batches = _Batches(runner, lambda batch: predict_scores(clf, batch), batch_size)
        for n, (path, x, reason) in prepared:
            slot = files[n]
            if fail_fast and slot > stop:
                break
            if x is None:  # the file failed, and `reason` says why
                rows[slot] = Row(path, error=reason)
                if fail_fast:
                    stop = min(stop, slot)
                continue
            batches.add(slot, x)
        batches.submit()
        for slot, x, prediction in batches.results(clf.classes, top_k):
            rows[slot] = Row(items[slot][0], prediction, input=x if keep_input else None)
    return [row for row in rows[: stop + 1] if row is not None]
