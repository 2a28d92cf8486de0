"""Weights of run folders (safetensors, never pickle), and a run's model rebuilt from its folder alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from ..core import registry
from ..core.errors import RunError
from ..core.fsutil import write_bytes
from ..core.registry import PERMUTE_SEED
from ..core.runs import BEST, LAST, RETRAIN, Run
from .models import FlipTTA, create_model


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write the model's parameters and persistent buffers as safetensors, atomically."""
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    # serialised in memory, then written as bytes: a full disk is then an OSError naming ENOSPC
    write_bytes(path, save(tensors, metadata=metadata or {}))


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    """Load safetensors weights into `model`; a damaged or mismatched file is a RunError."""
    if not path.exists():
        raise RunError(f"{path}: weights file missing; the run did not finish an epoch (resume it, or {RETRAIN})")
    try:
        state = load_file(str(path))
        model.load_state_dict(state)
    except (SafetensorError, RuntimeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(f"{path}: corrupted or incompatible checkpoint ({first}); {RETRAIN}") from exc
    return model


def permute_seed(cfg: dict[str, Any]) -> int | None:
    """The seed of the pixel permutation a run's config.json records (`--permute`), None without one."""
    if not cfg.get("permute"):
        return None
    return int(cfg.get("permute_seed") or PERMUTE_SEED)


def model_from_run(run: Run, which: str = "best") -> nn.Module:
    """Rebuild a run's model from its config.json alone and load its best (or last) weights; for a run trained
    with `--tta`, wrapped in its flip test-time augmentation, as it was validated and tested (and is exported)."""
    cfg = run.config()
    try:
        arch = str(cfg["arch"])
        model = create_model(arch, registry.options_from(arch, cfg), permute_seed=permute_seed(cfg))
    except Exception as exc:  # a hand-edited config can break in many ways
        raise RunError(f"{run.file('config.json')}: cannot rebuild the model ({exc}); {RETRAIN}") from exc
    load_weights(model, run.file(BEST if which == "best" else LAST))
    return (FlipTTA(model) if cfg.get("tta") else model).eval()
