"""Equivariance, measured on a CNN: shift the input by s pixels and see how far each stage's maps are from its
unshifted maps shifted alike (away from the borders; zero for an exactly equivariant stage), against how far
the pooled maps and the outputs move.

A k×k convolution (padding k//2) followed by ReLU is exactly equivariant: conv(shift(x)) = shift(conv(x))
wherever neither position's receptive field reaches the border. A stage s input pixels apart per map pixel
(its stride: 2 after one 2×2 pool) can only be compared with its own shift when s is a multiple of the
stride; a 1-pixel shift moves a pooled map by half a pixel, which is no shift of it at all, so there only the
change is measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from ..core.errors import UsageError
from ..core.shifts import SIZES
from .geometry import shift_images

#: the shifts of s pixels measured: along both axes and both diagonals (every one a multiple of s)
DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1))


@dataclass(frozen=True)
class Stage:
    """One stage's output for a batch, and where its pixels sit in the input: `stride` input pixels per map pixel,
    `rf` pixels of input each map pixel sees (per side). A vector (the GAP, the logits) has stride 0."""

    name: str
    value: torch.Tensor
    stride: int
    rf: int


def stages(model: nn.Module, x: torch.Tensor) -> list[Stage]:
    """conv1 (after ReLU), pool1, conv2, pool2, … then the head's output (`gap` for a GAP head) and the logits,
    for a model of the cnn family (its `convs`, `downs`, `norm` and `head`)."""
    if not all(hasattr(model, a) for a in ("convs", "downs", "norm", "head")):
        raise UsageError("equivariance is measured on models of the cnn family (conv blocks, then a head)")
    convs = cast("list[nn.Conv2d]", model.convs())  # type: ignore[operator]
    out: list[Stage] = []
    stride, rf = 1, 1
    h = model.norm(x)  # type: ignore[operator]
    for i, (conv, down) in enumerate(zip(convs, cast("nn.ModuleList", model.downs), strict=True), start=1):
        h = torch.relu(conv(h))
        rf += (conv.kernel_size[0] - 1) * stride
        stride *= conv.stride[0]
        out.append(Stage(f"conv{i}", h, stride, rf))
        if not isinstance(down, nn.Identity):
            h = down(h)
            rf += stride
            stride *= 2
            out.append(Stage(f"pool{i}", h, stride, rf))
    head = cast("nn.Sequential", model.head)
    if isinstance(head[0], nn.AdaptiveAvgPool2d):
        out.append(Stage("gap", head[1](head[0](h)), 0, 28))
    out.append(Stage("logits", head(h), 0, 28))
    return out


def _interior(value: torch.Tensor, margin: int) -> torch.Tensor:
    return value[..., margin : value.shape[-2] - margin, margin : value.shape[-1] - margin]


def _norm(x: torch.Tensor) -> float:
    """‖x‖ over the whole batch, squares summed in float64 (a float64 copy of every map took 8 s a run here)."""
    return float(x.float().square().sum(dtype=torch.float64).sqrt())


def _distance(a: torch.Tensor, b: torch.Tensor, ref: float | None = None) -> float:
    """‖a − b‖ / ‖b‖ over the whole batch (‖b‖ given as `ref` when known; 0 when b is all zeros and a equals
    it); exactly 0 when a equals b."""
    ref = _norm(b) if ref is None else ref
    diff = _norm(a - b)
    return diff / ref if ref > 0 else diff


@torch.no_grad()
def measure(model: nn.Module, images: torch.Tensor) -> list[dict[str, Any]]:
    """For uint8 images [N,28,28]: per stage, its shape and stride, and for each shift size s (SIZES, each in the
    8 DIRECTIONS) how far it moves (`change`) and, where s is a multiple of its stride, how far it is from the
    unshifted maps shifted by s/stride (`equivariance_error`), both ‖·‖ relative to the unshifted output."""
    model.eval()
    x = images.unsqueeze(1).float().div(255.0)
    base = stages(model, x)
    rows: list[dict[str, Any]] = [
        {
            "stage": st.name,
            "shape": list(st.value.shape[1:]),
            "stride": st.stride,
            "receptive_field": st.rf,
            "change": {},
            "equivariance_error": {},
        }
        for st in base
    ]
    norms = [_norm(st.value) for st in base]
    for s in SIZES:
        change: list[list[float]] = [[] for _ in base]
        error: list[list[float | None]] = [[] for _ in base]
        for dx, dy in DIRECTIONS:  # one direction at a time: a batch's maps of 8 shifts would take ~300 MB
            moved = stages(model, shift_images(x, dx * s, dy * s))
            for i, (st, m) in enumerate(zip(base, moved, strict=True)):
                change[i].append(_distance(m.value, st.value, norms[i]))
                error[i].append(_equivariance(st, m, dx * s, dy * s))
        for i, row in enumerate(rows):
            row["change"][str(s)] = sum(change[i]) / len(change[i])
            errs = [e for e in error[i] if e is not None]
            row["equivariance_error"][str(s)] = sum(errs) / len(errs) if errs else None
    return rows


def _equivariance(st: Stage, moved: Stage, dx: int, dy: int) -> float | None:
    """Distance of the shifted input's map from the unshifted map shifted by (dx, dy)/stride, inside a margin that
    keeps both positions' receptive fields off the border; None for a vector or a shift that is no whole map
    pixel."""
    if st.stride == 0 or dx % st.stride or dy % st.stride:
        return None
    margin = math.ceil((st.rf / 2 + max(abs(dx), abs(dy))) / st.stride) + 1
    if 2 * margin >= st.value.shape[-1]:
        return None  # no interior left
    expected = shift_images(st.value, dx // st.stride, dy // st.stride)
    return _distance(_interior(moved.value, margin), _interior(expected, margin))
