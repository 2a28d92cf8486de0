"""`fmnist predict`'s batch pipeline: rows in input order, failures as rows, batches, --fail-fast; it prints nothing."""

from __future__ import annotations

import threading
from typing import ClassVar

import numpy as np
import pytest

from fmnist_tui.core.data import CLASSES
from fmnist_tui.inference.classify import classify
from fmnist_tui.inference.prediction import Prediction


class FakeClassifier:
    """Class probabilities from the image's mean (each test image has its own); records each batch's size."""

    classes: ClassVar[list[str]] = list(CLASSES)
    metadata: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.threads: set[str] = set()

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(len(batch))
        self.threads.add(threading.current_thread().name)
        best = (batch.reshape(len(batch), -1).mean(axis=1) * 10).astype(int) % 10
        probs = np.full((len(batch), 10), 0.02, dtype=np.float32)
        probs[np.arange(len(batch)), best] = 0.82
        return probs


def image(level: float) -> np.ndarray:
    return np.full((28, 28), level, dtype=np.float32)


def test_rows_in_input_order_with_failures(capfd: pytest.CaptureFixture[str]) -> None:
    items = [
        ("a.png", None),
        ("nothing*.png", "no file matches this pattern"),
        ("b.png", None),
        ("c.png", None),
        ("d.png", None),
    ]
    inputs = {"a.png": image(0.15), "c.png": image(0.55), "d.png": image(0.75)}
    prepared = [
        (2, ("c.png", inputs["c.png"], None)),
        (1, ("b.png", None, "empty file (0 bytes)")),
        (0, ("a.png", inputs["a.png"], None)),
        (3, ("d.png", inputs["d.png"], None)),
    ]  # as helpers deliver
    clf = FakeClassifier()
    rows = classify(items, prepared, clf, top_k=2, batch_size=2, fail_fast=False, keep_input=True)
    assert clf.batches == [2, 1]  # a full batch, then the rest
    assert all(t.startswith("onnxruntime") for t in clf.threads)  # off the decoding thread
    assert [r.path for r in rows] == [p for p, _ in items]
    assert [r.error for r in rows] == [None, "no file matches this pattern", "empty file (0 bytes)", None, None]
    for r in rows:
        if r.path in inputs:
            probs = clf.predict_proba(inputs[r.path][None])[0]
            assert r.prediction == Prediction.from_row(probs, CLASSES, 2) and r.input is inputs[r.path]
    assert rows[0].prediction is not None and rows[0].prediction.label == CLASSES[1]
    assert capfd.readouterr() == ("", "")  # the CLI prints; the pipeline does not


def test_fail_fast_stops_the_rows_at_the_first_failure() -> None:
    items = [("a.png", None), ("b.png", None), ("c.png", None)]
    prepared = iter(
        [(0, ("a.png", image(0.3), None)), (1, ("b.png", None, "not an image")), (2, ("c.png", image(0.4), None))]
    )
    rows = classify(items, prepared, FakeClassifier(), top_k=3, batch_size=256, fail_fast=True, keep_input=False)
    assert [(r.path, r.error) for r in rows] == [("a.png", None), ("b.png", "not an image")]
    assert rows[0].input is None and rows[0].to_json()["error"] is None
    assert rows[1].to_json() == {
        "path": "b.png",
        "label": None,
        "index": None,
        "probability": None,
        "top_k": [],
        "ood_score": None,
        "unsure": None,
        "error": "not an image",
        "schema_version": 2,
    }
