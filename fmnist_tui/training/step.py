"""One training step, as the trainer runs it and as the benchmarks time it (bench/step_time.py): the batch's input
(re-framing, flips and shifts, erasing, layout) and the optimisation step (autocast, loss, backward, optimizer).
One definition, so a benchmark times every part of the recipe the training runs."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..core.config import TrainConfig
from .ema import WeightEma
from .evaluate import to_input
from .geometry import warp
from .models import FlipTTA, count_macs, count_params, create_model
from .recipe import augment, erase
from .spectral import use_spectral

if TYPE_CHECKING:
    from .distributed import World

#: `--compile`: what torch.compile is asked for. off: eager; default: inductor's fused kernels; graphs: the same
#: replayed as CUDA graphs (torch.compile's "reduce-overhead"), for small batches whose kernel launches cost more
#: than their arithmetic on a GPU. Measured per device by `python bench/compile_speed.py`.
COMPILE_MODES: dict[str, str | None] = {"off": None, "default": "default", "graphs": "reduce-overhead"}


def compiled(net: nn.Module, mode: str) -> nn.Module:
    """`net` as the training step calls it under `--compile mode`: itself, or torch.compile's wrapper of it, which
    shares its weights (state dicts, the weight average, validation and export keep using `net`, eager)."""
    how = COMPILE_MODES[mode]
    if how is None:
        return net
    # a CUDA build of torch on a machine without CUDA warns at its first compile that it found no CUDA runtime:
    # nothing a user of the CPU can act on, so it is not shown among the epoch lines
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    return cast(nn.Module, torch.compile(net, mode=how))


def autocast_for(device: torch.device, bf16: bool) -> AbstractContextManager[Any]:
    """The training step's autocast: bf16 where it is used, else nothing (fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


@dataclass(frozen=True)
class Learner:
    """A config's model and optimizer as the training step uses them: built once, by `learner`, for the trainer
    and for bench/step_time.py alike, so the benchmark times the layout, convolution algorithm, optimizer, weight
    average and flip-TTA that the training runs."""

    model: nn.Module  # the weights the optimizer trains, on the device
    params: int
    macs: int
    channels_last: bool  # the inputs' layout (and the weights', but under DDP on CUDA)
    spectral: list[str]  # the layers computed in the frequency domain (training.spectral)
    opt: torch.optim.Optimizer
    net: nn.Module  # what the training step calls: the model (DDP's wrapper of it), compiled with --compile
    ema: WeightEma | None  # the weight average, with --ema
    saved_model: nn.Module  # the weights that are validated, saved (best, last) and exported: the average with --ema
    evaluated_model: nn.Module  # what validation and the test evaluate: `saved_model`, under flip-TTA with --tta


def learner(cfg: TrainConfig, device: torch.device, bf16: bool, world: World | None = None) -> Learner:
    """`cfg`'s model, initialised from torch's current RNG (seed it first), on `device`, with its optimizer."""
    model = create_model(cfg.arch, cfg.options, cfg.permute_seed)
    params, macs = count_params(model), count_macs(model)  # counted on the CPU, before the move
    model.to(device)
    # channels_last: the layout bf16 convolutions run fastest in. Not for the weights under DDP on
    # CUDA: there cuDNN hands back their gradients in the default layout, which DDP's buckets
    # (made in the weights' layout) warn about at every step; the inputs stay channels_last.
    channels_last = cfg.spec.has_convs and channels_last_is_safe(model)
    if channels_last and not (world and device.type == "cuda"):
        model.to(memory_format=torch.channels_last)
    # fp32 on a CPU: large kernels computed in the frequency domain, where that is faster (training.spectral)
    spectral = use_spectral(model, device, bf16)
    # fused: one kernel per step instead of a loop over tensors
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.peak_lr, weight_decay=cfg.weight_decay, fused=True)
    net = compiled(world.wrap(model) if world else model, cfg.compile)
    ema = WeightEma(model, cfg.ema) if cfg.ema else None
    saved_model = ema.model if ema else model
    evaluated_model = FlipTTA(saved_model) if cfg.tta else saved_model
    return Learner(model, params, macs, channels_last, spectral, opt, net, ema, saved_model, evaluated_model)


def channels_last_is_safe(model: nn.Module) -> bool:
    """False where a strided 1×1 convolution reads fewer than 8 channels (a ResNet of `--width` under 8): in
    channels_last, the backward of such a layer corrupts the heap in torch 2.14's oneDNN on AVX2 CPUs and the
    process aborts, so the model keeps the default layout there."""
    return not any(
        isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1) and m.in_channels < 8
        for m in model.modules()
    )


def compile_failure(exc: BaseException) -> str | None:
    """Why torch.compile could not build the step, when `exc` is that (no working C++ compiler for the CPU backend,
    an operation it cannot compile); None for any other exception."""
    from torch._dynamo.exc import BackendCompilerFailed  # loaded already by the compile that raised

    if not isinstance(exc, BackendCompilerFailed):
        return None
    inner = exc.inner_exception
    first = (str(inner).strip().splitlines() or [""])[0]
    return f"torch.compile could not build the training step ({type(inner).__name__}: {first})"


def batch_input(
    cfg: TrainConfig,
    images: torch.Tensor,
    flip: torch.Tensor,
    shift: torch.Tensor,
    boxes: torch.Tensor | None,
    warps: torch.Tensor | None,
    channels_last: bool,
) -> torch.Tensor:
    """The model's input for uint8 images [B,28,28]: re-framed (`--affine`: `warps`), flipped and shifted,
    erased (`--erase`: `boxes`), as float [B,1,28,28], channels_last where the model has convolutions."""
    images = augment(warp(images, warps), flip, shift, cfg.shift)
    if boxes is not None:
        images = erase(images, boxes)
    x = to_input(images)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def optimise(
    net: nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    label_smoothing: float,
    autocast: AbstractContextManager[Any],
    sum_scale: float | None = None,
) -> torch.Tensor:
    """Forward under `autocast`, cross-entropy in fp32, backward, optimizer step; the logits (for the running
    sums). `sum_scale` (DDP): the loss is the batch's sum times it instead of its mean."""
    with autocast:
        logits = net(x)
    logits = logits.float()
    if sum_scale is not None:
        loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing, reduction="sum") * sum_scale
    else:
        loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return logits
