"""One image's prediction (label, index, probability, top-k, OOD score, unsure), and the JSON shapes `predict` and
`serve` document (SCHEMA_VERSION 2: `ood_score` and `unsure` joined the records; README, "JSON")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from .session import Scores

#: the version of predict's and serve's JSON records: 2 added `ood_score` and `unsure` (null for a model without
#: an OOD threshold) and `schema_version` itself
SCHEMA_VERSION = 2


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
    #: higher = less like Fashion-MNIST; None where the model has no OOD score
    ood_score: float | None = None
    #: the score is above the model's threshold; None where the model has none
    unsure: bool | None = None

    @classmethod
    def from_row(
        cls,
        probs: np.ndarray,
        classes: Sequence[str],
        k: int = 3,
        ood_score: float | None = None,
        unsure: bool | None = None,
    ) -> Prediction:
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
            ood_score=None if ood_score is None else float(ood_score),
            unsure=unsure,
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
            "ood_score": self.ood_score,
            "unsure": self.unsure,
            "error": None,
            "schema_version": SCHEMA_VERSION,
        }

    def serve_json(self) -> dict[str, Any]:
        """`POST /invocations`'s object for one image: predict's fields plus every class's probability."""
        return {
            "label": self.label,
            "index": self.index,
            "probability": self.probability,
            "probabilities": dict(zip(self.classes, self.probabilities, strict=False)),
            "top_k": self.top_k_json(),
            "ood_score": self.ood_score,
            "unsure": self.unsure,
        }


def failed_predict_json(path: str, reason: str) -> dict[str, Any]:
    """`fmnist predict --format json`'s object for an input that failed: the reason, the other fields empty."""
    return {
        "path": path,
        "label": None,
        "index": None,
        "probability": None,
        "top_k": [],
        "ood_score": None,
        "unsure": None,
        "error": reason,
        "schema_version": SCHEMA_VERSION,
    }


def predictions(scores: Scores, classes: Sequence[str], k: int) -> list[Prediction]:
    """One Prediction per row of a batch's Scores."""
    ood = [None] * len(scores.probs) if scores.ood is None else [float(v) for v in scores.ood.tolist()]
    return [
        Prediction.from_row(row, classes, k, score, unsure)
        for row, score, unsure in zip(scores.probs, ood, scores.unsure(), strict=True)
    ]
