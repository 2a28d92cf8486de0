"""One prediction record: built from a probability row, written in predict's and serve's documented shapes."""

from __future__ import annotations

import json

import numpy as np

from fmnist_tui.core.data import CLASSES
from fmnist_tui.inference.prediction import SCHEMA_VERSION, Prediction, Ranked, failed_predict_json, predictions
from fmnist_tui.inference.session import Scores


def row(*pairs: tuple[int, float]) -> np.ndarray:
    probs = np.full(10, 0.01, dtype=np.float32)
    for index, p in pairs:
        probs[index] = p
    return probs


def test_best_class_and_top_k_in_order() -> None:
    pred = Prediction.from_row(row((7, 0.6), (5, 0.25)), CLASSES, k=3)
    assert (pred.label, pred.index) == ("Sneaker", 7)
    assert pred.probability == float(np.float32(0.6)) and type(pred.probability) is float
    assert pred.top_k == (
        Ranked("Sneaker", float(np.float32(0.6))),
        Ranked("Sandal", float(np.float32(0.25))),
        Ranked("T-shirt/top", float(np.float32(0.01))),
    )  # ties: the lower index first
    assert len(Prediction.from_row(row(), CLASSES, k=0).top_k) == 1  # at least one class
    assert len(Prediction.from_row(row(), CLASSES, k=10).top_k) == 10


def test_ties_pick_the_lowest_index_like_argmax() -> None:
    pred = Prediction.from_row(row((2, 0.4), (6, 0.4)), CLASSES, k=2)
    assert pred.index == 2 and [t.label for t in pred.top_k] == ["Pullover", "Shirt"]


def test_predict_and_serve_shapes() -> None:
    pred = Prediction.from_row(row((1, 0.91)), CLASSES, k=2)
    top = [
        {"label": "Trouser", "probability": pred.probability},
        {"label": "T-shirt/top", "probability": float(np.float32(0.01))},
    ]
    predicted = pred.predict_json("a.png")
    fields = ["path", "label", "index", "probability", "top_k", "ood_score", "unsure", "error", "schema_version"]
    assert list(predicted) == fields
    assert predicted == {
        "path": "a.png",
        "label": "Trouser",
        "index": 1,
        "probability": pred.probability,
        "top_k": top,
        "ood_score": None,  # a model without an OOD score
        "unsure": None,
        "error": None,
        "schema_version": SCHEMA_VERSION,
    }
    served = pred.serve_json()
    assert list(served) == ["label", "index", "probability", "probabilities", "top_k", "ood_score", "unsure"]
    assert list(served["probabilities"]) == list(CLASSES) and served["probabilities"]["Trouser"] == pred.probability
    assert served["top_k"] == top
    failed = failed_predict_json("b.png", "empty file (0 bytes)")
    assert list(failed) == list(predicted)
    assert failed == {
        "path": "b.png",
        "label": None,
        "index": None,
        "probability": None,
        "top_k": [],
        "ood_score": None,
        "unsure": None,
        "error": "empty file (0 bytes)",
        "schema_version": SCHEMA_VERSION,
    }
    json.dumps([predicted, served, failed])  # plain Python values only


def test_scores_give_each_row_its_ood_score_and_flag() -> None:
    scores = Scores(np.stack([row((1, 0.91)), row((7, 0.5))]), np.array([3.0, 9.0], np.float32), threshold=5.0)
    first, second = predictions(scores, CLASSES, 2)
    assert (first.ood_score, first.unsure, second.ood_score, second.unsure) == (3.0, False, 9.0, True)
    assert type(first.ood_score) is float and type(second.unsure) is bool
    assert second.predict_json("b.png")["unsure"] is True and second.serve_json()["ood_score"] == 9.0
    without = predictions(Scores(np.stack([row((1, 0.91))])), CLASSES, 2)[0]
    assert (without.ood_score, without.unsure) == (None, None)  # no threshold: no flag
