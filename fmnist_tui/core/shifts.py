"""Shifted test sets, their counts and the run folder's cache of them (`shift.json`), without torch.

A run's accuracy on the test set shifted by every (dx, dy) in [−m, m]² is a `ShiftGrid`; the shifted evaluation
(`training.shift`, torch) writes it and the equivariance measure into shift.json, and the translation study's
analysis (`study.translation`) and the TUI read them back without importing torch, so no run is evaluated twice.
The cache holds the SHA-256 of the weights it evaluated: once best.safetensors changes (a run extended with
`--resume --epochs N`), its entries no longer count.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .fsutil import sha256_file, write_json
from .runs import BEST, SHIFTS, Run

#: shifts of up to 4 pixels each way: a 9×9 grid of 81 shifted test sets
MAX_SHIFT = 4
#: the largest shift a command accepts: 12 of the 28 pixels each way still leave a garment's middle in view
SHIFT_LIMIT = 12
#: test images (the first 20 of each class) whose feature maps the equivariance measure shifts, and by how many
#: pixels (`training.equivariance`)
EQUIVARIANCE_IMAGES = 200
SIZES = (1, 2)
#: cache layout; a file of another version is ignored (and rewritten)
VERSION = 1
#: test images of the translation study's shifted evaluation of a run trained on all the training images (the
#: first 100 of each class), and of a run trained on a subset (the quick preset: the first 20 of each class); a
#: study compares runs of one recipe, so every comparison is on the same images
STUDY_IMAGES, QUICK_IMAGES = 1000, 200


def study_images(config: Mapping[str, Any]) -> int:
    """The test images the study evaluates a run on, from its config: fewer for a run trained on a subset."""
    return QUICK_IMAGES if config.get("subset") else STUDY_IMAGES


@dataclass(frozen=True)
class ShiftGrid:
    """Counts over `n` test images for every shift (rows dy = −m..m downwards, columns dx = −m..m rightwards):
    images classified right, and images whose predicted class differs from the unshifted one."""

    max_shift: int
    n: int
    correct: np.ndarray  # [2m+1, 2m+1] int
    changed: np.ndarray  # [2m+1, 2m+1] int

    @property
    def shifts(self) -> list[int]:
        return list(range(-self.max_shift, self.max_shift + 1))

    @property
    def accuracy(self) -> np.ndarray:
        """Accuracy (fraction) per shift."""
        accuracy: np.ndarray = self.correct / max(1, self.n)
        return accuracy

    @property
    def unshifted(self) -> float:
        """Accuracy at (0, 0): the run's accuracy on these images as they are."""
        return float(self.accuracy[self.max_shift, self.max_shift])

    def at(self, dx: int, dy: int) -> float:
        """Accuracy with the images moved dx pixels right and dy down."""
        return float(self.accuracy[dy + self.max_shift, dx + self.max_shift])

    def ring(self, radius: int) -> np.ndarray:
        """Mask of the shifts at Chebyshev distance `radius` (max(|dx|, |dy|) = radius: 8 × radius shifts)."""
        d = np.abs(np.array(self.shifts))
        mask: np.ndarray = np.maximum(d[:, None], d[None, :]) == radius
        return mask

    def by_radius(self) -> list[dict[str, Any]]:
        """Per radius 1..m: its shifts, mean accuracy, drop from the unshifted accuracy and share of changed
        predictions (fractions)."""
        out = []
        for r in range(1, self.max_shift + 1):
            mask = self.ring(r)
            acc = float(self.accuracy[mask].mean())
            out.append(
                {
                    "radius": r,
                    "shifts": int(mask.sum()),
                    "accuracy": acc,
                    "drop": self.unshifted - acc,
                    "changed": float((self.changed[mask] / max(1, self.n)).mean()),
                }
            )
        return out

    def mean_drop(self, up_to: int = MAX_SHIFT) -> float:
        """The accuracy drop averaged over radii 1..up_to (each radius weighs the same)."""
        return float(np.mean([r["drop"] for r in self.by_radius()[:up_to]]))

    def mean_changed(self, up_to: int = MAX_SHIFT) -> float:
        """The share of predictions a shift changes, averaged over radii 1..up_to."""
        return float(np.mean([r["changed"] for r in self.by_radius()[:up_to]]))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`evaluate --shift --json`, shift.json): counts, fractions and the per-radius summary."""
        return {
            "max_shift": self.max_shift,
            "images": self.n,
            "shifts": self.shifts,
            "unshifted_accuracy": self.unshifted,
            "accuracy": np.round(self.accuracy, 6).tolist(),
            "changed": np.round(self.changed / max(1, self.n), 6).tolist(),
            "by_radius": self.by_radius(),
            "mean_drop": self.mean_drop(min(MAX_SHIFT, self.max_shift)),
            "mean_changed": self.mean_changed(min(MAX_SHIFT, self.max_shift)),
        }

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> ShiftGrid:
        """From a cache entry (its counts); ValueError/KeyError/TypeError when it is malformed."""
        m, n = int(entry["max_shift"]), int(entry["n"])
        correct = np.asarray(entry["correct"], dtype=np.int64)
        changed = np.asarray(entry["changed_counts"], dtype=np.int64)
        if correct.shape != (2 * m + 1, 2 * m + 1) or changed.shape != correct.shape or n < 1:
            raise ValueError(f"a {2 * m + 1}×{2 * m + 1} grid over at least one image was expected")
        return cls(m, n, correct, changed)


# --- the run folder's cache ------------------------------------------------------------------------
def read_cache(run: Run) -> dict[str, Any]:
    """shift.json for the run's current best weights, or an empty cache (none yet, another version, damaged, or
    written for other weights than the run has). A run without weights (a shipped one: its small files only)
    keeps the evaluations it was shipped with."""
    empty: dict[str, Any] = {"version": VERSION, "weights": BEST, "weights_sha256": None, "evaluations": []}
    path, weights = run.file(SHIFTS), run.file(BEST)
    digest = sha256_file(weights) if weights.is_file() else None
    if not path.is_file():
        return {**empty, "weights_sha256": digest}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return {**empty, "weights_sha256": digest}
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return {**empty, "weights_sha256": digest}
    if digest is not None and data.get("weights_sha256") != digest:
        return {**empty, "weights_sha256": digest}
    data.setdefault("evaluations", [])
    return data


def cached_grid(run: Run, images: int, max_shift: int, data_sha256: str | None = None) -> ShiftGrid | None:
    """The cached grid of `images` test images (the count asked for) and shifts up to `max_shift`, if the
    current weights were evaluated so (on the same images, when `data_sha256` is given); else None."""
    for entry in read_cache(run)["evaluations"]:
        try:
            if int(entry["images"]) != images or int(entry["max_shift"]) != max_shift:
                continue
            if data_sha256 is not None and entry.get("data_sha256") != data_sha256:
                continue
            return ShiftGrid.from_entry(entry)
        except (KeyError, TypeError, ValueError):
            continue
    return None


def cached_equivariance(run: Run, data_sha256: str | None = None) -> list[dict[str, Any]] | None:
    """The equivariance measure's stages (`training.equivariance.measure`) for the current weights, if cached
    (for the same images, when `data_sha256` is given)."""
    found = read_cache(run).get("equivariance")
    if not isinstance(found, dict) or not isinstance(found.get("stages"), list):
        return None
    if data_sha256 is not None and found.get("data_sha256") != data_sha256:
        return None
    stages: list[dict[str, Any]] = found["stages"]
    return stages


def _cache_for(run: Run, weights_sha256: str) -> dict[str, Any]:
    cache = read_cache(run)
    if cache.get("weights_sha256") != weights_sha256:  # the weights changed since they were read: start over
        cache = {**cache, "weights_sha256": weights_sha256, "evaluations": [], "equivariance": None}
    return cache


def store_equivariance(run: Run, stages: list[dict[str, Any]], data_sha256: str, weights_sha256: str) -> None:
    """Write the equivariance measure into the run's shift.json, atomically."""
    cache = _cache_for(run, weights_sha256)
    entry = {"images": EQUIVARIANCE_IMAGES, "data_sha256": data_sha256, "stages": stages}
    write_json(run.file(SHIFTS), {**cache, "equivariance": entry})


def store_grid(run: Run, grid: ShiftGrid, images: int, data_sha256: str, weights_sha256: str, **about: Any) -> None:
    """Add (or replace) the entry of `images`/`grid.max_shift` in the run's shift.json, atomically."""
    cache = _cache_for(run, weights_sha256)
    kept = [e for e in cache["evaluations"] if not (e.get("images") == images and e.get("max_shift") == grid.max_shift)]
    entry = {
        "images": images,
        "max_shift": grid.max_shift,
        "n": grid.n,
        "data_sha256": data_sha256,
        "correct": grid.correct.tolist(),
        "changed_counts": grid.changed.tolist(),
        **about,
    }
    write_json(run.file(SHIFTS), {**cache, "evaluations": [*kept, entry]})
