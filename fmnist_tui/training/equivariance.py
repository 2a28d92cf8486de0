"""Equivariance, measured on a network with feature maps (the cnn family, the LCN, the ResNet): shift the input
by s pixels and see how far each stage's maps are from its unshifted maps shifted alike (away from the borders;
zero for an exactly equivariant stage), against how far the pooled maps and the outputs move.

A k×k convolution (padding k//2) followed by ReLU is exactly equivariant: conv(shift(x)) = shift(conv(x))
wherever neither position's receptive field reaches the border. A stage s input pixels apart per map pixel
(its stride: 2 after one 2×2 pool) can only be compared with its own shift when s is a multiple of the
stride; a 1-pixel shift moves a pooled map by half a pixel, which is no shift of it at all, so there only the
change is measured. A locally connected layer (the LCN) has the same windows without the shared weights: the
measure shows what the sharing buys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..core import registry
from ..core.errors import UsageError
from ..core.shifts import SIZES
from .geometry import shift_images
from .models import CNN, BasicBlock, FlipTTA, LocallyConnected2d, ResNet

#: the shifts of s pixels measured: along both axes and both diagonals (every one a multiple of s)
DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1))


@dataclass(frozen=True)
class Stage:
    """One stage's output for a batch, and where its pixels sit in the input: `stride` input pixels per map pixel,
    `rf` pixels of input each map pixel sees (its receptive field's width). A vector (the GAP, the logits) has
    stride 0."""

    name: str
    value: torch.Tensor
    stride: int
    rf: int


def stages(model: nn.Module, x: torch.Tensor) -> list[Stage]:
    """The network's stages for input x [N,1,28,28]: conv1 (after ReLU), pool1, conv2, … for the cnn family and
    the LCN, the stem and each residual stage for the ResNet; then `gap` for a GAP head, and the logits. A `--tta`
    run's network is measured on the images as given (its mirror-image pass left out)."""
    net = model.model if isinstance(model, FlipTTA) else model
    if isinstance(net, CNN):
        maps, h = _cnn_stages(net, x)
    elif isinstance(net, ResNet):
        maps, h = _resnet_stages(net, x)
    else:
        raise UsageError(
            f"equivariance is measured on networks with feature maps (the cnn family, lcn, resnet), not a "
            f"{type(net).__name__}"
        )
    return [*maps, *_head_stages(net.head, h)]


def _grow(layer: nn.Module, stride: int, rf: int) -> tuple[int, int]:
    """(stride, rf) after a conv or locally connected layer that sees maps `stride` input pixels apart."""
    if isinstance(layer, LocallyConnected2d):
        kernel, step = layer.kernel_size, 1  # always stride 1, padding k//2
    elif isinstance(layer, nn.Conv2d):
        kernel, step = layer.kernel_size[0], layer.stride[0]
    else:
        raise UsageError(f"equivariance: no receptive field known for a {type(layer).__name__} layer")
    return stride * step, rf + (kernel - 1) * stride


def _cnn_stages(net: CNN, x: torch.Tensor) -> tuple[list[Stage], torch.Tensor]:
    """Each block's conv (after its batch norm, if any, and ReLU) and downsampling, as the model computes them;
    and the last map, for the head."""
    out: list[Stage] = []
    stride, rf = 1, 1
    h = net.norm(x)
    for i, (conv, bn, down) in enumerate(zip(net.convs(), net.bns, net.downs, strict=True), start=1):
        h = torch.relu(bn(conv(h)))
        stride, rf = _grow(conv, stride, rf)
        out.append(Stage(f"conv{i}", h, stride, rf))
        if not isinstance(down, nn.Identity):
            h = down(h)
            for kernel, step in registry.DOWNSAMPLE_LAYERS[net.pool_kind]:
                rf += (kernel - 1) * stride
                stride *= step
            out.append(Stage(f"pool{i}", h, stride, rf))
    return out, h


def _resnet_stages(net: ResNet, x: torch.Tensor) -> tuple[list[Stage], torch.Tensor]:
    """The stem and each stage's output, with the receptive field of the longest path (two 3×3 convs a block);
    and the last map, for the head."""
    h = net.stem(net.norm(x))
    stride, rf = _grow(net.stem[0], 1, 1)
    out = [Stage("stem", h, stride, rf)]
    for i, stage in enumerate(net.stages, start=1):
        h = stage(h)
        for block in (m for m in stage.modules() if isinstance(m, BasicBlock)):
            stride, rf = _grow(block.conv1, stride, rf)
            stride, rf = _grow(block.conv2, stride, rf)
        out.append(Stage(f"stage{i}", h, stride, rf))
    return out, h


def _head_stages(head: nn.Module, h: torch.Tensor) -> list[Stage]:
    """The GAP's vector (for a head that starts with global average pooling) and the logits."""
    out = []
    if isinstance(head, nn.Sequential) and isinstance(head[0], nn.AdaptiveAvgPool2d):
        out.append(Stage("gap", head[1](head[0](h)), 0, 28))
    return [*out, Stage("logits", head(h), 0, 28)]


def _interior(value: torch.Tensor, margin: int) -> torch.Tensor:
    return value[..., margin : value.shape[-2] - margin, margin : value.shape[-1] - margin]


def _norm(x: torch.Tensor) -> float:
    """‖x‖ over the whole batch, squares summed in float64 (without a float64 copy of the maps, which is slow)."""
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
