"""The trainer's set-up (training/step.py's `learner`): what it builds for the step and for validation."""

from __future__ import annotations

from fmnist_tui.core.config import TrainConfig
from fmnist_tui.training import step, trainer
from fmnist_tui.training.models import FlipTTA


def test_the_trainer_builds_through_the_learner() -> None:
    assert trainer.learner is step.learner and trainer.optimise is step.optimise


def test_the_learner_holds_what_the_step_trains_and_what_validation_judges() -> None:
    import torch

    cfg = TrainConfig.create(arch="resnet", width=8, blocks=1, ema=0.9, tta=True)
    built = step.learner(cfg, torch.device("cpu"), bf16=False)
    weights = dict(built.model.named_parameters())
    assert built.params == sum(p.numel() for p in weights.values()) and built.macs > 0
    assert built.channels_last and weights["stem.0.weight"].is_contiguous(memory_format=torch.channels_last)
    assert built.net is built.model  # --compile off, no DDP: the step calls the model itself
    trained = {id(p) for group in built.opt.param_groups for p in group["params"]}
    assert trained == {id(p) for p in weights.values()}
    assert built.ema is not None and built.saved_model is built.ema.model and built.saved_model is not built.model
    assert isinstance(built.evaluated_model, FlipTTA) and built.evaluated_model.model is built.saved_model
    plain = step.learner(TrainConfig.create(arch="mlp"), torch.device("cpu"), bf16=False)
    assert not plain.channels_last and plain.ema is None and plain.evaluated_model is plain.saved_model is plain.model


def test_a_resnet_narrower_than_8_channels_keeps_the_default_layout() -> None:
    """Its strided 1×1 shortcut in channels_last aborts the backward on AVX2 CPUs (torch 2.14's oneDNN)."""
    import torch

    from fmnist_tui.training.models import build_cnn, build_resnet

    assert not step.channels_last_is_safe(build_resnet(width=4, blocks=1))
    assert step.channels_last_is_safe(build_resnet(width=8, blocks=1))
    assert step.channels_last_is_safe(build_cnn(kernel=3))
    cfg = TrainConfig.create(arch="resnet", width=4, blocks=1)
    assert not step.learner(cfg, torch.device("cpu"), bf16=False).channels_last
