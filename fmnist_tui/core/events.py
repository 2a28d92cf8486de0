"""Plain event objects the trainer emits; the CLI renders them as a progress bar, the TUI as plots."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunStarted:
    """Training (re)starts at `start_epoch` (1-based) of `epochs`."""

    run_dir: Path
    name: str
    config: dict[str, Any]
    params: int
    macs: int
    device: str
    precision: str
    start_epoch: int
    epochs: int
    batches: int
    resumed: bool
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics rows of earlier epochs


@dataclass(frozen=True)
class BatchProgress:
    """Training reached `batch` of the epoch. Sent every few steps (when the trainer reads its running
    sums) and at the epoch's last batch; `loss` is the mean cross-entropy per image since the last one."""

    epoch: int
    epochs: int
    batch: int  # 1-based, within the epoch
    batches: int
    loss: float
    images_per_s: float


@dataclass(frozen=True)
class EpochEnd:
    """An epoch finished; `row` is its metrics.csv row."""

    epoch: int
    epochs: int
    row: dict[str, Any]
    is_best: bool


@dataclass(frozen=True)
class Finished:
    """The run finished; `summary` is what summary.json holds."""

    run_dir: Path
    summary: dict[str, Any]


@dataclass(frozen=True)
class Interrupted:
    """Training stopped on request; the state is saved and `--resume` continues it."""

    run_dir: Path
    epoch: int
    batch: int


Event = RunStarted | BatchProgress | EpochEnd | Finished | Interrupted
Callback = Callable[[Event], None]
