"""Geometry of image batches on their device: whole-pixel shifts with zero fill (`shift_images`: the shifted
evaluation and the equivariance measure), and the recipe's geometric augmentation (`--affine S`): each garment
re-drawn wider or narrower, tilted and smaller, then re-framed as `preprocess` frames a drawing (longest side
fitted, box centred).

Fashion-MNIST's garments all keep the dataset's proportions and fill the box; drawings do not (a drawn
T-shirt is as wide as it is tall, a drawn pair of jeans nearly so). One `affine_grid` + `grid_sample` per
batch, on the device, with the matrices built from each image's bounding box there too: no host sync.
Every draw of epoch e comes from a generator seeded by (seed, e), apart from `epoch_plan`'s, so a run
without it draws exactly what it drew before, and a resumed run draws what a straight one does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..core.config import TrainConfig

#: At strength 1: aspect (width/height) up to ×/÷ 1.5, tilt up to ±15°, the garment's longest side down to
#: 0.85 of the box (drawings are fitted to the whole box: the shrink only varies the scale a little); the ranges
#: grow linearly with the strength (aspect on a log scale), the share floored at 0.7.
ASPECT_PER_S = math.log(1.5)
DEGREES_PER_S = 15.0
SHRINK_PER_S = 0.15
#: The share of images warped in an epoch; the others keep the dataset's own framing, which the test set has
#: (warping every image costs test accuracy).
WARPED = 0.5
#: The garment's position: uniform over this fraction of the room a shrunk garment leaves on each side.
JITTER = 0.5
SIDE = 28
_SALT = 0x5EED_AFF1  # keeps these draws apart from epoch_plan's generator


def warp_plan(cfg: TrainConfig, epoch: int, n: int) -> torch.Tensor | None:
    """Epoch `epoch`'s warp of each of `n` images, [N,5] float (log aspect, radians, share of the box,
    x and y jitter in [-1, 1]; (0, 0, 1, 0, 0), the identity, for the images not warped); None when
    `cfg.affine` is 0. A pure function of (seed, epoch)."""
    s = cfg.affine
    if not s:
        return None
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch + _SALT)
    u = torch.rand(n, 5, generator=gen) * 2 - 1  # uniform in [-1, 1]
    u = u * (torch.rand(n, 1, generator=gen) < WARPED)  # all zero: kept as it is
    log_aspect = u[:, 0] * ASPECT_PER_S * s
    angle = u[:, 1] * math.radians(DEGREES_PER_S) * s
    share = 1 - u[:, 2].abs() * min(SHRINK_PER_S * s, 0.3)
    return torch.stack([log_aspect, angle, share, u[:, 3], u[:, 4]], 1)


def bounding_boxes(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre and half-size, (x, y) in pixels from the image centre, of each image's non-zero pixels
    ([B,H,W] → two [B,2] float): computed on the device, no sync. An empty image gets a 1-pixel box."""
    on = images > 0
    cols, rows = on.any(1), on.any(2)  # [B,W], [B,H]

    def span(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = mask.shape[1]
        first = mask.float().argmax(1)
        last = size - 1 - mask.flip(1).float().argmax(1)
        return (first + last + 1).float() / 2 - size / 2, ((last - first + 1).float() / 2).clamp_min(0.5)

    (cx, hx), (cy, hy) = span(cols), span(rows)
    return torch.stack([cx, cy], 1), torch.stack([hx, hy], 1)


def warp_matrices(images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """`affine_grid`'s [B,2,3] matrices (output → input, normalised coordinates) that take each garment's
    bounding box through the aspect change and the tilt, fit the result's longest side to `share` of the
    box and centre it, moved by its jitter."""
    centre, half = bounding_boxes(images)
    root = torch.exp(params[:, 0] / 2)  # width × √a, height ÷ √a: the aspect changes by a
    cos, sin = torch.cos(params[:, 1]), torch.sin(params[:, 1])
    # L = R(θ)·diag(√a, 1/√a): the garment's linear change before the fit
    lin = torch.stack([torch.stack([cos * root, -sin / root], 1), torch.stack([sin * root, cos / root], 1)], 1)
    extent = (lin.abs() @ half.unsqueeze(2)).squeeze(2)  # [B,2]: half-size of the changed box
    fit = params[:, 2] * (SIDE / 2) / extent.amax(1)  # longest side → share × 28
    room = (SIDE / 2 - fit[:, None] * extent).clamp_min(0)
    shift = params[:, 3:5] * room * JITTER  # pixels from the centre
    # inverse: input = centre + (fit·L)⁻¹ (output − shift); L⁻¹ = diag(1/√a, √a)·R(−θ)
    inv = torch.stack([torch.stack([cos / root, sin / root], 1), torch.stack([-sin * root, cos * root], 1)], 1)
    inv = inv / fit[:, None, None]
    offset = centre - (inv @ shift.unsqueeze(2)).squeeze(2)
    return torch.cat([inv, (offset / (SIDE / 2)).unsqueeze(2)], 2)


def warp(images: torch.Tensor, params: torch.Tensor | None) -> torch.Tensor:
    """uint8 images [B,28,28] warped by `params` (rows of `warp_plan`), as float [B,28,28] in 0–255 (bilinear,
    zero fill); the images unchanged when `params` is None."""
    if params is None:
        return images
    theta = warp_matrices(images, params)
    x = images.unsqueeze(1).float()
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False).squeeze(1)


def shift_images(images: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Images [..., H, W] moved dx pixels right and dy pixels down (negative: left, up); what enters the
    frame is 0, what leaves it is lost."""
    out = torch.zeros_like(images)
    h, w = images.shape[-2:]
    if abs(dx) >= w or abs(dy) >= h:
        return out
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = images[
        ..., max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out
