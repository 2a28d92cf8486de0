"""The recipe's schedule and augmentation: learning rate per step, and each epoch's order, flips, shifts and
erased rectangles.

Every random choice of epoch e comes from a generator seeded by (seed, e), and the learning rate is a
pure function of the global step, so an interrupted run resumes to exactly the weights a straight run
would have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core.config import TrainConfig


@dataclass(frozen=True)
class Segment:
    """One stretch of the schedule over global steps [start, end): linear warm-up, then cosine to zero."""

    start: int
    end: int
    peak: float  # learning rate at the top of the warm-up
    warmup: float  # fraction of the segment's steps spent warming up


def first_segment(cfg: TrainConfig, batches: int) -> Segment:
    """The schedule of a new run: one cycle over all its planned steps."""
    return Segment(0, cfg.epochs * batches, cfg.peak_lr, cfg.warmup)


def extension_segment(cfg: TrainConfig, done_epochs: int, batches: int) -> Segment:
    """The schedule of the epochs added to a run planned for `done_epochs`: a warm restart at a tenth
    of the peak, so the extension refines the weights instead of undoing them, cosine to zero."""
    return Segment(done_epochs * batches, cfg.epochs * batches, cfg.peak_lr / 10, cfg.warmup)


def lr_at(step: int, segments: list[Segment]) -> float:
    """Learning rate at a global step: each segment warms up linearly, then follows a cosine to zero."""
    for seg in segments:
        if seg.start <= step < seg.end:
            length = seg.end - seg.start
            warm = max(1, int(seg.warmup * length)) if seg.warmup > 0 else 0
            pos = step - seg.start
            if pos < warm:
                return seg.peak * (0.1 + 0.9 * (pos + 1) / warm)
            progress = (pos - warm) / max(1, length - warm)
            return seg.peak * 0.5 * (1 + math.cos(math.pi * progress))
    return 0.0


#: random erasing's rectangle (Zhong et al. 2020, their defaults): 2–40% of the image's area, aspect ratio
#: (height / width) from 0.3 to 1/0.3, uniform in its logarithm
ERASE_AREA = (0.02, 0.4)
ERASE_RATIO = 0.3


@dataclass(frozen=True)
class EpochPlan:
    """An epoch's random choices, one entry per training image: its place in the order, flip, shift and
    erased rectangle."""

    perm: torch.Tensor  # [N] long: the image order
    flip: torch.Tensor  # [N] bool, indexed by image
    shift: torch.Tensor  # [N,2] long (rows, columns), indexed by image
    erase: torch.Tensor | None = None  # [N,4] long (top, left, height, width; height 0: none); None: erasing off

    def to(self, device: torch.device) -> EpochPlan:
        """The same plan on `device`, where the batches are built."""
        erase = None if self.erase is None else self.erase.to(device)
        return EpochPlan(self.perm.to(device), self.flip.to(device), self.shift.to(device), erase)


def epoch_plan(cfg: TrainConfig, epoch: int, n: int, draws: int | None = None) -> EpochPlan:
    """Order, flips, shifts and erased rectangles of epoch `epoch` over `n` images: a pure function of (seed,
    epoch). The order holds the first `draws` of a random permutation (all `n` by default; fewer where a small
    training set is repeated past the epoch's length). The rectangles are drawn last, so a run without erasing
    draws exactly what it did before erasing existed."""
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=gen)[:draws]
    flip = (torch.rand(n, generator=gen) < 0.5) if cfg.hflip else torch.zeros(n, dtype=torch.bool)
    s = cfg.shift
    shift = torch.randint(-s, s + 1, (n, 2), generator=gen) if s else torch.zeros(n, 2, dtype=torch.long)
    return EpochPlan(perm, flip, shift, erase_boxes(cfg.erase, n, gen) if cfg.erase else None)


def erase_boxes(p: float, n: int, gen: torch.Generator, size: int = 28) -> torch.Tensor:
    """[n,4] rectangles (top, left, height, width) of random erasing: each image's with probability `p`, else
    height 0. A rectangle whose side would exceed the image is clipped to it (Zhong et al. redraw it instead)."""
    on = torch.rand(n, generator=gen) < p
    area = torch.empty(n).uniform_(*ERASE_AREA, generator=gen) * size * size
    log_ratio = torch.empty(n).uniform_(math.log(ERASE_RATIO), -math.log(ERASE_RATIO), generator=gen)
    h = (area * log_ratio.exp()).sqrt().round().clamp(1, size).long()
    w = (area / log_ratio.exp()).sqrt().round().clamp(1, size).long()
    top = (torch.rand(n, generator=gen) * (size - h + 1)).long()
    left = (torch.rand(n, generator=gen) * (size - w + 1)).long()
    return torch.stack([top, left, h * on, w], dim=1)


def erase(images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Black out each uint8 image's rectangle [B,28,28] (boxes [B,4] as `erase_boxes` draws them), by a mask
    built from comparisons: no loop, no host sync."""
    top, left, h, w = boxes[:, 0:1], boxes[:, 1:2], boxes[:, 2:3], boxes[:, 3:4]  # each [B,1]
    r = torch.arange(images.shape[1], device=images.device)[None, :]
    c = torch.arange(images.shape[2], device=images.device)[None, :]
    rows = (r >= top) & (r < top + h)  # [B,28]
    cols = (c >= left) & (c < left + w)
    return images.masked_fill(rows[:, :, None] & cols[:, None, :], 0)


def augment(images: torch.Tensor, flip: torch.Tensor, shift: torch.Tensor, pad: int) -> torch.Tensor:
    """Flip and shift uint8 images [B,28,28] in one gather (zero fill, as the background is black)."""
    b, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
    ar_h = torch.arange(h, device=images.device)
    ar_w = torch.arange(w, device=images.device)
    rows = ar_h[None, :] + pad + shift[:, 0:1]  # [B,28]
    cols = torch.where(flip[:, None], (w - 1) - ar_w[None, :], ar_w[None, :]) + pad + shift[:, 1:2]
    batch = torch.arange(b, device=images.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]]
