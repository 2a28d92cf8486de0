"""The `--dry-run` estimate times the trainer's own step (training/step.py), with every part of the recipe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fmnist_tui.core.config import TrainConfig
from fmnist_tui.training import speed, step, trainer
from fmnist_tui.training.ema import WeightEma
from fmnist_tui.training.models import FlipTTA


def test_trainer_and_estimate_share_one_step() -> None:
    assert speed.batch_input is trainer.batch_input is step.batch_input
    assert speed.optimise is trainer.optimise is step.optimise
    assert speed.learner is trainer.learner is step.learner  # one model and optimizer set-up


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
    assert built.ema is not None and built.kept is built.ema.model and built.kept is not built.model
    assert isinstance(built.judged, FlipTTA) and built.judged.model is built.kept
    plain = step.learner(TrainConfig.create(arch="mlp"), torch.device("cpu"), bf16=False)
    assert not plain.channels_last and plain.ema is None and plain.judged is plain.kept is plain.model


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


def _modules(code: str, env: dict[str, str]) -> set[str]:
    """The modules a fresh interpreter has imported once it has run `code`."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    ).stdout
    return set(out.split())


@pytest.mark.slow  # two fresh interpreters import torch, and one trains
def test_the_start_probe_imports_what_a_training_child_imports_first(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """A study's estimate times a child's start with `speed.START`: it must pay for torch's compiler, which torch
    imports when the trainer builds its optimizer (~2 s, the start-up an import alone left out), as a real
    `fmnist train` child does."""
    train = (
        "import runpy, sys\n"
        f"sys.argv = ['fmnist', 'train', '--arch', 'mlp', '--epochs', '1', '--out', {str(tmp_path)!r}, "
        "'--name', 'x', '--precision', 'fp32']\n"
        "try:\n    runpy.run_module('fmnist_tui', run_name='__main__')\n"
        "except SystemExit as e:\n    assert not e.code\n"
    )
    child, probe = _modules(train, cli_env), _modules(speed.START, cli_env)
    assert (tmp_path / "x" / "summary.json").is_file()
    assert {"torch._dynamo", "fmnist_tui.training.trainer"} <= child & probe
    assert "torch._dynamo" not in _modules("import fmnist_tui.training.trainer", cli_env)  # the import alone
