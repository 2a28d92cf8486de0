"""One image's prediction (label, index, probability, top-k), and the JSON shapes `predict` and `serve` document."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np


class Ranked(NamedTuple):
    """One class of a top-k list."""

    label: str
    probability: float


@dataclass(frozen=True)
class Prediction:
    """The best class of one probability row, the k most probable (best first) and every class's probability."""

    label: str
    index: int
    probability: float
    top_k: tuple[Ranked, ...]
    #: every class's probability, in the model's class order
    probabilities: tuple[float, ...]
    classes: tuple[str, ...]

    @classmethod
    def from_row(cls, probs: np.ndarray, classes: Sequence[str], k: int = 3) -> Prediction:
        """From one row of class probabilities ([10]) and the model's class names; k ≥ 1 classes in top_k."""
        row = np.asarray(probs)
        values = tuple(row.tolist())  # Python floats, exactly the float32 values (what JSON prints)
        best = int(row.argmax())
        # a stable sort, so that among equal probabilities the lower index (argmax's choice) comes first
        order = np.argsort(-row, kind="stable")[: max(1, k)].tolist()
        return cls(
            label=classes[best],
            index=best,
            probability=values[best],
            top_k=tuple(Ranked(classes[i], values[i]) for i in order),
            probabilities=values,
            classes=tuple(classes),
        )

    def top_k_json(self) -> list[dict[str, Any]]:
        """top_k as documented: [{"label", "probability"}, ...], best first."""
        return [{"label": t.label, "probability": t.probability} for t in self.top_k]

    def predict_json(self, path: str) -> dict[str, Any]:
        """`fmnist predict --format json`'s object for an input that was classified."""
        return {
            "path": path,
            "label": self.label,
            "index": self.index,
            "probability": self.probability,
            "top_k": self.top_k_json(),
            "error": None,
        }

    def serve_json(self) -> dict[str, Any]:
        """`POST /invocations`'s object for one image: predict's fields plus every class's probability."""
        return {
            "label": self.label,
            "index": self.index,
            "probability": self.probability,
            "probabilities": dict(zip(self.classes, self.probabilities, strict=False)),
            "top_k": self.top_k_json(),
        }


def failed_predict_json(path: str, reason: str) -> dict[str, Any]:
    """`fmnist predict --format json`'s object for an input that failed: the reason, the other fields empty."""
    return {"path": path, "label": None, "index": None, "probability": None, "top_k": [], "error": reason}
