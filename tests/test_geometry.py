"""The re-framing augmentation (`--affine`): off by default, the geometry it promises, deterministic draws, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.cli.train_cmd import command_line
from fmnist_tui.core.config import TrainConfig
from fmnist_tui.core.errors import ConfigError
from fmnist_tui.training.geometry import JITTER, bounding_boxes, warp, warp_plan
from fmnist_tui.training.recipe import epoch_plan


def garment() -> torch.Tensor:
    """A 28×28 'garment' fitted as Fashion-MNIST's are, 28 tall and 24 wide (columns 2–25), centred: a full-height
    bar on the left, a blob at the top right."""
    img = torch.zeros(1, 28, 28, dtype=torch.uint8)
    img[0, :, 2:8] = 255
    img[0, 0:4, 22:26] = 255
    return img


def params(log_aspect: float = 0.0, angle: float = 0.0, share: float = 1.0, jx: float = 0.0, jy: float = 0.0):
    return torch.tensor([[log_aspect, angle, share, jx, jy]])


def box(img: torch.Tensor) -> tuple[list[float], list[float]]:
    """Centre and half-size (x, y) of the pixels above half brightness."""
    centre, half = bounding_boxes((img > 127.5).to(torch.uint8))
    return centre[0].tolist(), half[0].tolist()


def test_off_by_default_and_names() -> None:
    cfg = TrainConfig()
    assert cfg.affine == 0 and warp_plan(cfg, 1, 10) is None and cfg.run_name == "cnn-k3-s0"
    img = garment()
    assert warp(img, None) is img
    assert TrainConfig(affine=1).run_name == "cnn-k3-aff1-s0" and TrainConfig(affine=0.5).label == "cnn-k3-aff0.5"
    line = command_line(TrainConfig(affine=0.5))
    assert "--affine" not in command_line(cfg) and line[line.index("--affine") + 1] == "0.5"
    assert TrainConfig.from_dict({"arch": "cnn", "kernel": 3}).affine == 0  # a config.json from before the option
    assert TrainConfig(affine=1).recipe()["affine"] == 1 and TrainConfig().recipe()["affine"] == 0


def test_identity_parameters_keep_a_fitted_image() -> None:
    img = garment()
    assert torch.allclose(warp(img, params()), img.float(), atol=1e-3)


def test_tilt_moves_the_blob_and_share_shrinks() -> None:
    img = garment()
    quarter = warp(img, params(angle=math.pi / 2))  # a quarter turn clockwise on screen (y points down)
    assert quarter[0, 22:26, 24:28].min() > 250 and quarter[0, 0:2].max() < 5  # top right → bottom right
    assert quarter[0, 2:8, :].min() > 250  # the bar on the left now lies along the top
    (cx, cy), (hx, hy) = box(warp(img, params(share=0.5)))
    assert (cx, cy) == pytest.approx((0, 0), abs=0.5) and (hx, hy) == pytest.approx((6, 7), abs=0.5)
    (cx, cy), _ = box(warp(img, params(share=0.5, jx=1, jy=-1)))  # moved by JITTER of the room (8 and 7 px)
    assert (cx, cy) == pytest.approx((8 * JITTER, -7 * JITTER), abs=0.5)


def test_aspect_refits_the_longest_side() -> None:
    bar = torch.zeros(1, 28, 28, dtype=torch.uint8)
    bar[0, :, 10:18] = 255  # 8 wide, 28 tall
    _, (hx, hy) = box(warp(bar, params(log_aspect=math.log(2))))
    assert (hx, hy) == pytest.approx((8, 14), abs=0.5)  # twice as wide for its height, still 28 tall
    _, (hx, hy) = box(warp(bar.transpose(1, 2).contiguous(), params(log_aspect=math.log(2))))
    assert (hx, hy) == pytest.approx((14, 2), abs=0.5)  # a wide bar (28 × 8): still 28 wide, half as tall


def test_empty_image_stays_empty() -> None:
    out = warp(torch.zeros(2, 28, 28, dtype=torch.uint8), params().repeat(2, 1))
    assert torch.isfinite(out).all() and out.abs().max() == 0


def test_draws_are_per_seed_and_epoch_and_leave_the_plan_alone() -> None:
    cfg = TrainConfig(affine=1)
    a, b = warp_plan(cfg, 1, 100), warp_plan(cfg, 1, 100)
    assert a is not None and b is not None and torch.equal(a, b)
    other_seed = warp_plan(cfg.with_changes(seed=1), 1, 100)
    assert not torch.equal(a, warp_plan(cfg, 2, 100)) and not torch.equal(a, other_seed)
    assert a[:, 2].min() >= 0.85 and a[:, 2].max() <= 1 and a[:, 1].abs().max() <= math.radians(15) + 1e-6
    kept = (a == torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0])).all(1)
    assert 30 < kept.sum() < 70  # about half the images keep the dataset's framing
    plain, warped = epoch_plan(TrainConfig(), 1, 100), epoch_plan(cfg, 1, 100)
    assert torch.equal(plain.perm, warped.perm) and torch.equal(plain.flip, warped.flip)


@pytest.mark.parametrize("value", [-0.5, 2.5, float("nan"), True])
def test_config_refuses_bad_strengths(value: float) -> None:
    with pytest.raises(ConfigError, match="affine"):
        TrainConfig(affine=value)


@pytest.mark.parametrize("value", ["-1", "3", "nan", "lots"])
def test_cli_refuses_bad_strengths_in_one_line(value: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--affine", value, "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert "--affine" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_cli_trains_an_epoch_with_it(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    args = ["train", "--epochs", "1", "--affine", "1", "--batch-size", "32", "--threads", "1"]
    result = CliRunner().invoke(app, [*args, "--data-dir", str(tiny_data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    run = out / "cnn-k3-aff1-s0"
    assert json.loads((run / "config.json").read_text())["affine"] == 1
    assert json.loads((run / "summary.json").read_text())["affine"] == 1
    again = CliRunner().invoke(app, ["train", "--resume", "--epochs", "2", "--out", str(out), "--name", run.name])
    assert again.exit_code == 0, again.output  # resumes with its recipe (the data dir comes from config.json)
