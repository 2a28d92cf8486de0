"""The translation study's analysis (no torch): per run, its accuracy on the test set shifted by every (dx, dy) in
[−m, m]², the drops and changed predictions per shift radius, and the equivariance by stage; per config, the
tables and the figure's data.

Everything here is read from the run folders' caches (`core.shifts`, shift.json), which the shifted evaluation
(`training.shift`, torch) writes, so the analysis and the TUI never import torch and no run is evaluated twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core import registry
from ..core.errors import RunError
from ..core.runs import Run
from ..core.shifts import (
    EQUIVARIANCE_IMAGES,
    MAX_SHIFT,
    SIZES,
    ShiftGrid,
    cached_equivariance,
    cached_grid,
    study_images,
)
from .results import Group


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
