"""Shifted evaluation: a run's best weights on the test set moved by every (dx, dy) in [−m, m]² pixels with zero
fill (the black background), without retraining; the counts are cached in the run folder (`shift.json`)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core import registry
from ..core.data import CLASSES, Dataset, load_dataset
from ..core.errors import ConfigError, FmnistError, UsageError
from ..core.runs import Run
from ..core.shifts import (
    EQUIVARIANCE_IMAGES,
    MAX_SHIFT,
    SHIFT_LIMIT,
    ShiftGrid,
    cached_equivariance,
    cached_grid,
    read_cache,
    store_equivariance,
    store_grid,
    study_images,
)
from .checkpoints import model_from_run
from .device import resolve_device
from .equivariance import measure
from .evaluate import predict_logits, strict_fp32
from .geometry import shift_images

#: (shifts done, shifts in all), after each shifted test set
Progress = Callable[[int, int], None]


def pick_images(labels: np.ndarray, count: int) -> np.ndarray:
    """Indices of the first count/10 test images of each class, in test-set order (every image when `count`
    covers the set): a class-balanced set that is the same for every run."""
    if count >= len(labels):
        return np.arange(len(labels))
    per = max(1, count // len(CLASSES))
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:per] for c in range(len(CLASSES))]))


def fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of the evaluated images and labels: a cache entry counts only for the same images."""
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


@torch.no_grad()
def shift_grid(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, max_shift: int, progress: Progress | None = None
) -> ShiftGrid:
    """Count right and changed predictions for every shift of uint8 images [N,28,28] (fp32, on their device)."""
    size = 2 * max_shift + 1
    correct = np.zeros((size, size), dtype=np.int64)
    changed = np.zeros((size, size), dtype=np.int64)
    with strict_fp32():
        base = predict_logits(model, images).argmax(1)
        for i, dy in enumerate(range(-max_shift, max_shift + 1)):
            for j, dx in enumerate(range(-max_shift, max_shift + 1)):
                pred = base if dx == dy == 0 else predict_logits(model, shift_images(images, dx, dy)).argmax(1)
                correct[i, j] = int((pred == labels).sum())
                changed[i, j] = int((pred != base).sum())
                if progress:
                    progress(i * size + j + 1, size * size)
    return ShiftGrid(max_shift, len(labels), correct, changed)


@dataclass(frozen=True)
class ShiftResult:
    """A run's shifted evaluation, and whether it came from the cache."""

    grid: ShiftGrid
    cached: bool
    seconds: float


def evaluate_shifts(
    run: Run,
    images: int = 10_000,
    max_shift: int = 4,
    data_dir: Path | None = None,
    device: str = "cpu",
    progress: Progress | None = None,
    dataset: Dataset | None = None,
) -> ShiftResult:
    """The run's best weights on `images` test images (the first images/10 of each class) shifted by every
    (dx, dy) up to `max_shift` pixels; read from shift.json when these weights were evaluated so before."""
    if not 1 <= max_shift <= SHIFT_LIMIT:
        raise ConfigError("max_shift", f"{max_shift} is out of range", f"give 1–{SHIFT_LIMIT} pixels")
    if images < len(CLASSES):
        raise ConfigError("images", f"{images} is too few", f"give at least {len(CLASSES)} (one per class)")
    where = resolve_device(device)
    ds = dataset or load_dataset(data_dir)
    idx = pick_images(ds.test_labels, images)
    x, y = ds.test_images[idx], ds.test_labels[idx]
    data_sha = fingerprint(x, y)
    found = cached_grid(run, images, max_shift, data_sha)
    if found is not None:
        return ShiftResult(found, True, 0.0)
    weights_sha = read_cache(run)["weights_sha256"]
    model = model_from_run(run, "best").to(where)
    if registry.has_convs(str(run.config().get("arch"))):
        model.to(memory_format=torch.channels_last)  # twice as fast on the CPU here
    t0 = time.perf_counter()
    grid = shift_grid(model, torch.from_numpy(x).to(where), torch.from_numpy(y).to(where), max_shift, progress)
    seconds = time.perf_counter() - t0
    store_grid(run, grid, images, data_sha, str(weights_sha), seconds=round(seconds, 2), device=where.type)
    return ShiftResult(grid, False, seconds)


def evaluate_equivariance(
    run: Run, data_dir: Path | None = None, device: str = "cpu", dataset: Dataset | None = None
) -> list[dict[str, Any]]:
    """The equivariance measure (`equivariance.measure`) of the best weights of a run with feature maps (cnn, lcn,
    resnet) on the first 20 test images of each class; read from shift.json when these weights were measured so
    before."""
    arch = str(run.config().get("arch"))
    if not registry.has_convs(arch):
        raise UsageError(f"run {run.name!r} is an {arch}: it has no conv layers, so no feature maps to shift")
    where = resolve_device(device)
    ds = dataset or load_dataset(data_dir)
    idx = pick_images(ds.test_labels, EQUIVARIANCE_IMAGES)
    x, y = ds.test_images[idx], ds.test_labels[idx]
    data_sha = fingerprint(x, y)
    found = cached_equivariance(run, data_sha)
    if found is not None:
        return found
    weights_sha = read_cache(run)["weights_sha256"]
    model = model_from_run(run, "best").to(where)
    with strict_fp32():
        stages = measure(model, torch.from_numpy(x).to(where))
    store_equivariance(run, stages, data_sha, str(weights_sha))
    return stages


def study_work(
    runs: list[Run], data_dir: Path | None = None, device: str = "cpu", on_run: Callable[[str], None] | None = None
) -> list[str]:
    """The translation study's `studies.PerRunEvaluation`: each run's shifted evaluation, and for a CNN its
    equivariance measure, both cached in shift.json; the dataset is loaded once. A warning per run it failed on."""
    ds = load_dataset(data_dir)
    warnings = []
    for run in runs:
        if on_run:
            on_run(run.name)
        try:
            evaluate_shifts(run, study_images(run.config()), MAX_SHIFT, data_dir, device, dataset=ds)
            if registry.has_convs(str(run.config().get("arch"))):
                evaluate_equivariance(run, data_dir, device, dataset=ds)
        except FmnistError as exc:
            warnings.append(f"shifted evaluation of {run.name} failed: {exc}")
    return warnings
