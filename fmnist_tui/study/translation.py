"""Translation, measured (no torch): a run's accuracy on the test set shifted by every (dx, dy) in [−m, m]²,
the drops and changed predictions per shift radius, and the run folder's cache of them (`shift.json`).

The shifted evaluation itself runs in `training.shift` (torch); this module reads what it wrote, so the
translation study's analysis and the TUI never import torch, and no run is evaluated twice.
The cache holds the SHA-256 of the weights it evaluated: once best.safetensors changes (a run extended with
`--resume --epochs N`), its entries no longer count.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core import registry
from ..core.config import TrainConfig
from ..core.errors import RunError
from ..core.fsutil import sha256_file, write_json
from ..core.runs import BEST, SHIFTS, Run
from .results import Group

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
        return self.correct / max(1, self.n)

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
        return np.maximum(d[:, None], d[None, :]) == radius

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
    written for weights the run no longer has)."""
    empty: dict[str, Any] = {"version": VERSION, "weights": BEST, "weights_sha256": None, "evaluations": []}
    path, weights = run.file(SHIFTS), run.file(BEST)
    if not path.is_file() or not weights.is_file():
        return {**empty, "weights_sha256": sha256_file(weights) if weights.is_file() else None}
    digest = sha256_file(weights)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return {**empty, "weights_sha256": digest}
    if not isinstance(data, dict) or data.get("version") != VERSION or data.get("weights_sha256") != digest:
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
    return found["stages"]


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


# --- the translation study: its per-run metrics, its work on each run, its tables and figure data ----------
#: test images of the study's shifted evaluation of a run trained on all the training images: the first 100 of
#: each class (81 shifted copies: 81,000 forward passes, ~30 s for a CNN on two cores), and of a run trained on
#: a subset (the quick preset): the first 20 of each class, so the quick preset's 12 CNN runs take ~1.5 minutes
#: beside their training. A study compares runs of one recipe, so every comparison is on the same images.
STUDY_IMAGES, QUICK_IMAGES = 1000, 200


def study_images(config: Mapping[str, Any]) -> int:
    """The test images the study evaluates a run on, from its config: fewer for a run trained on a subset."""
    return QUICK_IMAGES if config.get("subset") else STUDY_IMAGES


def study_grid(run: Run) -> ShiftGrid:
    """The run's shifted evaluation as the study makes it; a RunError naming the command when it has none."""
    images = study_images(run.config())
    grid = cached_grid(run, images, MAX_SHIFT)
    if grid is None:
        raise RunError(
            f"run {run.name!r} has no shifted evaluation of its current weights; `fmnist study translation` or "
            f"`fmnist evaluate {run.name} --shift --images {images}` makes one"
        )
    return grid


def needs_work(run: Run) -> bool:
    """Whether the run still lacks the study's shifted evaluation (or, for a CNN, its equivariance measure)."""
    config = run.config()
    if cached_grid(run, study_images(config), MAX_SHIFT) is None:
        return True
    return registry.has_convs(str(config.get("arch"))) and cached_equivariance(run) is None


def work_images(cfg: TrainConfig, test_images: int) -> int:
    """Images a planned run's model evaluates for the study, on a test set of `test_images`: 81 shifted copies of
    the first `study_images` / 10 of each class, and for a CNN the equivariance measure's (1 + 16 shifts) × 200."""
    grid = (2 * MAX_SHIFT + 1) ** 2 * min(study_images(cfg.to_dict()), test_images)
    return grid + ((1 + 8 * len(SIZES)) * min(EQUIVARIANCE_IMAGES, test_images) if cfg.spec.has_convs else 0)


def radius_accuracy(grids: list[ShiftGrid]) -> np.ndarray:
    """[runs, MAX_SHIFT + 1]: each run's accuracy at radius 0 (unshifted), 1, …, MAX_SHIFT."""
    return np.array([[g.unshifted, *(r["accuracy"] for r in g.by_radius())] for g in grids])


def shift_table(groups: list[Group]) -> str:
    """Markdown: per config, mean over seeds of the unshifted accuracy and the drop at each radius."""
    head = " | ".join(f"drop {r} px" for r in range(1, MAX_SHIFT + 1))
    per_class = {study_images(r.config) // 10 for g in groups for r in g.records}
    lines = [
        f"## Accuracy on shifted test images by config (first {', '.join(map(str, sorted(per_class)))} test "
        "images of each class, mean over seeds)\n",
        f"| config | unshifted % | {head} | mean drop | predictions changed % | seeds |",
        "|---|" + "---:|" * (MAX_SHIFT + 4),
    ]
    for g in groups:
        grids = [grid for r in g.records if (grid := cached_grid(r.run, study_images(r.config), MAX_SHIFT))]
        if not grids:
            lines.append(f"| {g.label} | — |" + " — |" * (MAX_SHIFT + 2) + " 0 |")
            continue
        drops = np.mean([[r["drop"] for r in gr.by_radius()] for gr in grids], axis=0)
        lines.append(
            f"| {g.label} | {100 * np.mean([gr.unshifted for gr in grids]):.2f} | "
            + " | ".join(f"{100 * d:+.2f}" for d in drops)
            + f" | {100 * np.mean([gr.mean_drop() for gr in grids]):+.2f} | "
            f"{100 * np.mean([gr.mean_changed() for gr in grids]):.2f} | {len(grids)} |"
        )
    return "\n".join(lines) + "\n"


def first_run(g: Group) -> Run:
    """The group's lowest-seed run (the one whose maps the equivariance table and figure show)."""
    return min(g.records, key=lambda r: int(r.config.get("seed", 0))).run


def equivariance_of(groups: list[Group]) -> dict[str, list[dict[str, Any]]]:
    """The equivariance measure of each CNN config's lowest-seed run, where it was made."""
    found = {}
    for g in groups:
        if registry.has_convs(g.arch) and (stages := cached_equivariance(first_run(g))):
            found[g.label] = stages
    return found


def equivariance_table(measured: dict[str, list[dict[str, Any]]]) -> str:
    """Markdown: per CNN config and stage, how far it moves and how far it is from its own shifted output."""
    lines = [
        f"## Equivariance by stage (the lowest seed's run, first {EQUIVARIANCE_IMAGES // 10} test images of each "
        "class)\n",
        "How far each stage's output moves when the input is shifted by 1 or 2 px (8 directions), and how far "
        "it is from its unshifted output shifted alike, away from the borders (0 for an exactly equivariant "
        "stage; '—' where the shift is no whole pixel of that map), as ‖difference‖ / ‖unshifted output‖.\n",
        "| config | stage | shape | moves 1 px | moves 2 px | off its shift, 1 px | off its shift, 2 px |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for label, stages in measured.items():
        for st in stages:
            errors = ["—" if (e := st["equivariance_error"][str(s)]) is None else f"{e:.1e}" for s in SIZES]
            lines.append(
                f"| {label} | {st['stage']} | {'×'.join(map(str, st['shape']))} | "
                + " | ".join(f"{st['change'][str(s)]:.3f}" for s in SIZES)
                + f" | {' | '.join(errors)} |"
            )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Curves:
    """What the study's figure draws per config: each seed's accuracy at radius 0..MAX_SHIFT, the mean accuracy
    grid over seeds, and (CNN configs) the lowest seed's equivariance measure."""

    radius: dict[str, np.ndarray]  # label → [seeds, MAX_SHIFT + 1]
    heatmap: dict[str, np.ndarray]  # label → [2m+1, 2m+1] mean accuracy
    equivariance: dict[str, list[dict[str, Any]]]


def figure_data(groups: list[Group]) -> Curves:
    """The figure's data from the runs' caches (configs without a shifted evaluation are left out)."""
    radius, heatmap = {}, {}
    for g in groups:
        grids = [grid for r in g.records if (grid := cached_grid(r.run, study_images(r.config), MAX_SHIFT))]
        if grids:
            radius[g.label] = radius_accuracy(grids)
            heatmap[g.label] = np.mean([gr.accuracy for gr in grids], axis=0)
    return Curves(radius, heatmap, equivariance_of(groups))
