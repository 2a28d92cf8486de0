"""The resumable training state: a typed position in the run, and its file train_state.pt.

The file is a `torch.save` of plain containers and tensors (read back with `weights_only=True`, so no
arbitrary unpickling); the dataclasses exist only in memory and are converted at this boundary. A file
of another `STATE_VERSION`, or one whose contents have the wrong shape, is one clear RunError.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core.errors import RunError, ref
from ..core.fsutil import write_bytes
from ..core.runs import RETRAIN, STATE, Run
from .recipe import Segment

#: Version of train_state.pt's layout; bump it when the keys or their meaning change.
STATE_VERSION = 1


@dataclass
class EpochSums:
    """Running sums of the epoch in progress (saved for a mid-epoch resume)."""

    loss_sum: float = 0.0  # plain cross-entropy (no label smoothing), summed over images
    correct: int = 0
    seen: int = 0
    train_seconds: float = 0.0


@dataclass
class TrainState:
    """Where a run stands: epochs and batches done, the schedule, the epoch's sums and the best epoch."""

    segments: list[Segment]
    epoch_done: int = 0
    batch_done: int = 0  # batches done of epoch `epoch_done + 1`
    step: int = 0  # global optimisation steps, the schedule's clock
    partial: EpochSums = field(default_factory=EpochSums)
    best_val_acc: float = -1.0
    best_epoch: int = 0
    train_seconds: float = 0.0  # finished epochs' training time
    rows: list[dict[str, float]] = field(default_factory=list)  # metrics.csv's rows; not in train_state.pt

    def next_epoch(self, epoch: int) -> None:
        """Mark `epoch` done and start the next one's running sums from zero."""
        self.epoch_done, self.batch_done, self.partial = epoch, 0, EpochSums()


@dataclass(frozen=True)
class SavedState:
    """What train_state.pt holds: the position, the optimizer's and the global RNG's states, and the
    model's weights at that position (None in states written before they were: last.safetensors then).

    The weights are in the same file as the position on purpose: one atomic rename commits both, so a
    process killed between two writes can never pair a position with another step's weights."""

    state: TrainState
    optimizer: dict[str, Any]
    torch_rng: torch.Tensor
    model: dict[str, torch.Tensor] | None = None
    ema: dict[str, torch.Tensor] | None = None  # the weight average's state (`--ema`); None without one


def save_state(path: Path, saved: SavedState) -> None:
    """Write the resumable training state atomically (tensors and plain containers only)."""
    buffer = io.BytesIO()
    torch.save(_encode(saved), buffer)
    # written as bytes: a full disk is then an OSError naming ENOSPC, not torch's "unexpected pos"
    write_bytes(path, buffer.getvalue())


def load_state(run: Run) -> SavedState:
    """Read train_state.pt with weights_only=True; a missing, damaged, foreign-version or misshapen
    file is a RunError naming it."""
    path = run.file(STATE)
    if not path.exists():
        raise RunError(f"{path}: no training state to resume from; start the run again without {ref('resume')}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for damaged files
        raise RunError(f"{path}: corrupted training state ({type(exc).__name__}); {RETRAIN}") from exc
    check_version(path, raw)
    try:
        return _decode(raw)
    except _Shape as exc:
        raise wrong_shape(path, str(exc)) from None


def check_version(path: Path, raw: object) -> None:
    """Refuse a state written under another layout version, saying which and what to do."""
    found = raw.get("version") if isinstance(raw, dict) else None
    if not isinstance(found, int) or isinstance(found, bool) or found == STATE_VERSION:
        return  # right version, or no usable version at all: the shape check names that
    if found < STATE_VERSION:
        raise RunError(
            f"{path}: training state version {found} is older than the version {STATE_VERSION} "
            f"this fmnist reads; resume it with the fmnist that wrote it, or retrain it under "
            f"another {ref('name')}"
        )
    raise RunError(
        f"{path}: training state version {found} is newer than the version {STATE_VERSION} "
        "this fmnist reads; upgrade fmnist to resume it"
    )


def wrong_shape(path: Path, problem: str) -> RunError:
    """The error for a state file that loads but does not hold what a resume needs."""
    return RunError(f"{path}: training state has the wrong shape ({problem}); {RETRAIN}")


# --- the boundary: dataclasses ↔ plain containers --------------------------------------------------
class _Shape(ValueError):
    """A field of the loaded state is missing or of the wrong type (the message names it)."""


def _encode(saved: SavedState) -> dict[str, Any]:
    """The on-disk layout (keys as they have been since version 1; `model` and `ema` only where there are some)."""
    s = saved.state
    return {
        "version": STATE_VERSION,
        "epoch_done": s.epoch_done,
        "batch_done": s.batch_done,
        "step": s.step,
        "segments": [{"start": g.start, "end": g.end, "peak": g.peak, "warmup": g.warmup} for g in s.segments],
        "partial": {
            "loss_sum": s.partial.loss_sum,
            "correct": s.partial.correct,
            "seen": s.partial.seen,
            "train_seconds": s.partial.train_seconds,
        },
        "best_val_acc": s.best_val_acc,
        "best_epoch": s.best_epoch,
        "train_seconds": s.train_seconds,
        "optimizer": saved.optimizer,
        "torch_rng": saved.torch_rng,
        **({"model": saved.model} if saved.model is not None else {}),
        **({"ema": saved.ema} if saved.ema is not None else {}),
    }


def _decode(raw: object) -> SavedState:
    """The typed state from the loaded containers; `_Shape` names the first thing that does not fit."""
    top = _mapping(raw, "the file")
    _get(top, "version", int)
    segments = _get(top, "segments", list)
    if not segments:
        raise _Shape("'segments' is empty")
    part = _mapping(_get(top, "partial", dict), "'partial'")
    state = TrainState(
        segments=[_segment(g, i) for i, g in enumerate(segments)],
        epoch_done=_get(top, "epoch_done", int),
        batch_done=_get(top, "batch_done", int),
        step=_get(top, "step", int),
        partial=EpochSums(
            _get(part, "loss_sum", float, "partial."),
            _get(part, "correct", int, "partial."),
            _get(part, "seen", int, "partial."),
            _get(part, "train_seconds", float, "partial."),
        ),
        best_val_acc=_get(top, "best_val_acc", float),
        best_epoch=_get(top, "best_epoch", int),
        train_seconds=_get(top, "train_seconds", float),
    )
    model = _get(top, "model", dict) if "model" in top else None
    ema = _get(top, "ema", dict) if "ema" in top else None
    return SavedState(state, _get(top, "optimizer", dict), _get(top, "torch_rng", torch.Tensor), model, ema)


def _segment(raw: object, i: int) -> Segment:
    where = f"segments[{i}]."
    seg = _mapping(raw, f"'segments[{i}]'")
    return Segment(
        _get(seg, "start", int, where),
        _get(seg, "end", int, where),
        _get(seg, "peak", float, where),
        _get(seg, "warmup", float, where),
    )


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _Shape(f"{what} holds a {type(value).__name__}, not a dict")
    return value


def _get(raw: Mapping[str, Any], key: str, kind: type, where: str = "") -> Any:
    """raw[key] if it is a `kind` (an int where a float is expected is widened; a bool is no number)."""
    if key not in raw:
        raise _Shape(f"'{where}{key}' is missing")
    value = raw[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _Shape(f"'{where}{key}' is a {type(value).__name__}, expected {kind.__name__}")
    return value
