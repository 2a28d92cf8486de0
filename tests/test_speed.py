"""The `--dry-run` estimate times the trainer's own step (training/step.py), with every part of the recipe."""

from __future__ import annotations

from typing import Any

import pytest

from fmnist_tui.core.config import TrainConfig
from fmnist_tui.training import speed, step, trainer
from fmnist_tui.training.ema import WeightEma
from fmnist_tui.training.models import FlipTTA


def test_trainer_and_estimate_share_one_step() -> None:
    assert speed.batch_input is trainer.batch_input is step.batch_input
    assert speed.optimise is trainer.optimise is step.optimise


@pytest.mark.slow
def test_the_estimate_pays_for_erasing_reframing_ema_and_tta(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, list[Any]] = {"input": [], "ema": [], "judged": []}
    real_input, real_update, real_predict = step.batch_input, WeightEma.update, speed.predict_logits

    def spy_input(cfg: TrainConfig, images: Any, flip: Any, shift: Any, boxes: Any, warps: Any, cl: bool) -> Any:
        seen["input"].append((boxes is not None, warps is not None))
        return real_input(cfg, images, flip, shift, boxes, warps, cl)

    def spy_update(self: WeightEma, n: int) -> None:
        seen["ema"].append(n)
        real_update(self, n)

    def spy_predict(model: Any, images: Any, **kw: Any) -> Any:
        seen["judged"].append(type(model))
        return real_predict(model, images, **kw)

    monkeypatch.setattr(speed, "batch_input", spy_input)
    monkeypatch.setattr(WeightEma, "update", spy_update)
    monkeypatch.setattr(speed, "predict_logits", spy_predict)
    cfg = TrainConfig.create(arch="mlp", batch_size=16, erase=0.5, affine=1.0, ema=0.9, tta=True, shift=2)
    result = speed.measure(cfg, threads=1, steps=2, warmup=1)
    assert result.step_s > 0 and result.eval_s > 0
    assert seen["input"] and all(b and w for b, w in seen["input"])  # erased and re-framed, every step
    assert len(seen["ema"]) == len(seen["input"])  # the weight average moves after every step
    assert seen["judged"] and set(seen["judged"]) == {FlipTTA}  # validation and test as the run does them
