"""The benchmarks' step timer: a few timed training steps and forward passes of a config, as the trainer runs them
(its very step, fmnist_tui/training/step.py: same model, batch, precision, layout, convolution algorithm,
optimizer, threads, re-framing, erasing, weight average and flip-TTA), on random images."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from fmnist_tui.core.config import TrainConfig
from fmnist_tui.training.allocator import keep_freed_memory
from fmnist_tui.training.device import resolve_bf16, resolve_device
from fmnist_tui.training.evaluate import predict_logits
from fmnist_tui.training.geometry import warp_plan
from fmnist_tui.training.recipe import erase_boxes
from fmnist_tui.training.step import autocast_for, batch_input, learner, optimise

#: images of a timed forward pass (the batch `predict_logits` uses for validation and test)
EVAL_BATCH = 1000
_warmed = False  # the process's first measurement is made twice, the first one thrown away


@dataclass(frozen=True)
class Speed:
    """Seconds per training step of `batch_size` images, and per EVAL_BATCH images of forward pass in the
    validation's precision and in fp32 (the final test evaluation)."""

    step_s: float
    eval_s: float
    test_s: float
    batch_size: int
    threads: int
    bf16: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "step_s": round(self.step_s, 5),
            "eval_s_per_1000": round(self.eval_s, 5),
            "test_s_per_1000": round(self.test_s, 5),
            "batch_size": self.batch_size,
            "threads": self.threads,
            "bf16": self.bf16,
        }


def median_time(fn: Callable[[], Any], repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(cfg: TrainConfig, threads: int, steps: int = 6, warmup: int = 2) -> Speed:
    """Time `steps` training steps (after `warmup` untimed ones) and two forward passes of `cfg`'s model with
    `threads` torch threads; random images, so no dataset is needed.

    A process's first measurement runs twice and keeps the second: the first pays for one-time set-up (the
    allocator's first large blocks, thread pools), which made a 19 ms step take 35 ms here, whatever its
    number of warm-up steps."""
    global _warmed
    keep_freed_memory()  # as the training process does (training.allocator)
    if not _warmed:
        _warmed = True
        measure(cfg, threads, steps, warmup)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        device = resolve_device(cfg.device)
        bf16 = resolve_bf16(device, cfg.precision)
        autocast = autocast_for(device, bf16)
        gen = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        built = learner(cfg, device, bf16)
        opt, net, ema, evaluated_model = built.opt, built.net, built.ema, built.evaluated_model
        n = cfg.batch_size
        images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=gen).to(device)
        labels = torch.randint(0, 10, (n,), generator=gen).to(device)
        flips = (torch.rand(n, generator=gen) < 0.5).to(device)
        shifts = torch.randint(-cfg.shift, cfg.shift + 1, (n, 2), generator=gen).to(device)
        boxes = erase_boxes(cfg.erase, n, gen).to(device) if cfg.erase else None
        warps = warp_plan(cfg, 1, n)
        warps = None if warps is None else warps.to(device)
        steps_done = 0

        def step() -> None:  # the trainer's step (training/step.py), then its EMA update
            nonlocal steps_done
            x = batch_input(cfg, images, flips, shifts, boxes, warps, built.channels_last)
            optimise(net, opt, x, labels, cfg.label_smoothing, autocast)
            steps_done += 1
            if ema:
                ema.update(steps_done)

        built.model.train()
        step_s = median_time(step, steps, warmup)
        batch = torch.randint(0, 256, (EVAL_BATCH, 28, 28), dtype=torch.uint8, generator=gen).to(device)
        eval_s = median_time(lambda: predict_logits(evaluated_model, batch, bf16=bf16), 2, 1)
        test_s = eval_s if not bf16 else median_time(lambda: predict_logits(evaluated_model, batch), 2, 1)
    finally:
        torch.set_num_threads(previous)
    return Speed(step_s, eval_s, test_s, cfg.batch_size, threads, bf16)
