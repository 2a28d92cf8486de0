"""The recipe's schedule and augmentation: learning rate per step, and each epoch's order, flips and shifts.

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


@dataclass(frozen=True)
class EpochPlan:
    """An epoch's random choices, one entry per training image: its place in the order, flip, shift."""

    perm: torch.Tensor  # [N] long: the image order
    flip: torch.Tensor  # [N] bool, indexed by image
    shift: torch.Tensor  # [N,2] long (rows, columns), indexed by image

    def to(self, device: torch.device) -> EpochPlan:
        """The same plan on `device`, where the batches are built."""
        return EpochPlan(self.perm.to(device), self.flip.to(device), self.shift.to(device))


def epoch_plan(cfg: TrainConfig, epoch: int, n: int, draws: int | None = None) -> EpochPlan:
    """Order, flips and shifts of epoch `epoch` over `n` images: a pure function of (seed, epoch). The order
    holds the first `draws` of a random permutation (all `n` by default; fewer where a small training set is
    repeated past the epoch's length)."""
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=gen)[:draws]
    flip = (torch.rand(n, generator=gen) < 0.5) if cfg.hflip else torch.zeros(n, dtype=torch.bool)
    s = cfg.shift
    shift = torch.randint(-s, s + 1, (n, 2), generator=gen) if s else torch.zeros(n, 2, dtype=torch.long)
    return EpochPlan(perm, flip, shift)


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
