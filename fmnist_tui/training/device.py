"""Where a model runs: the device a `--device` setting names, and whether bf16 autocast pays off there."""

from __future__ import annotations

import torch

from ..core.errors import RunError, ref


def resolve_device(name: str) -> torch.device:
    """'auto' → CUDA when present, else CPU; 'cuda' without a GPU is a RunError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError(f"{ref('device')} cuda: no CUDA device is available here; use cpu or auto")
    return torch.device(name)


def resolve_bf16(device: torch.device, precision: str) -> bool:
    """Whether to train under bf16 autocast: forced by 'bf16', chosen by 'auto' where it is fast."""
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
