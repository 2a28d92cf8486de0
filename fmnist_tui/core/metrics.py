"""Classification metrics from labels and predictions (numpy only)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .data import CLASSES


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, n: int = len(CLASSES)) -> np.ndarray:
    """Counts [n,n]; rows are the true class, columns the predicted class."""
    return np.bincount(labels * n + preds, minlength=n * n).reshape(n, n)


def per_class(cm: np.ndarray) -> list[dict[str, Any]]:
    """Precision, recall (= per-class accuracy), F1 and support for each class."""
    rows = []
    for i, name in enumerate(CLASSES[: len(cm)]):
        tp = int(cm[i, i])
        predicted, actual = int(cm[:, i].sum()), int(cm[i, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"class": name, "precision": precision, "recall": recall, "f1": f1, "support": actual})
    return rows


def most_confused(cm: np.ndarray, k: int = 3) -> list[dict[str, Any]]:
    """The k unordered class pairs with the most mistakes between them (both directions summed)."""
    pairs: list[dict[str, Any]] = []
    for i in range(len(cm)):
        for j in range(i + 1, len(cm)):
            pairs.append(
                {
                    "a": CLASSES[i],
                    "b": CLASSES[j],
                    "a_as_b": int(cm[i, j]),
                    "b_as_a": int(cm[j, i]),
                    "total": int(cm[i, j] + cm[j, i]),
                }
            )
    pairs.sort(key=lambda p: -p["total"])
    return pairs[:k]


def classification_report(labels: np.ndarray, preds: np.ndarray) -> dict[str, Any]:
    """Accuracy (a fraction), per-class metrics and the confusion matrix, JSON-ready."""
    cm = confusion_matrix(labels, preds)
    return {
        "test_accuracy": float((labels == preds).mean()),
        "per_class": per_class(cm),
        "confusion_matrix": cm.tolist(),
        "most_confused": most_confused(cm),
    }
