"""Shifted evaluation: images moved with zero fill, the grid of accuracies on models whose answers are known, the
per-radius drops, the run folder's cache (shift.json), and `fmnist evaluate RUN --shift` as a user runs it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.core.config import TrainConfig
from fmnist_tui.core.runs import SHIFTS, Run
from fmnist_tui.core.shifts import ShiftGrid, cached_grid
from fmnist_tui.training.evaluate import evaluate_model
from fmnist_tui.training.geometry import shift_images
from fmnist_tui.training.models import create_model
from fmnist_tui.training.shift import pick_images, shift_grid
from fmnist_tui.training.trainer import train
from tests.conftest import make_tiny_dataset, synthetic_images

runner = CliRunner()


def test_shift_images_moves_content_and_fills_with_zero() -> None:
    img = torch.zeros(1, 28, 28, dtype=torch.uint8)
    img[0, 10, 5] = 200
    img[0, 0, 27] = 100  # leaves the frame when moved right or up
    moved = shift_images(img, dx=3, dy=-2)
    assert moved[0, 8, 8] == 200 and int(moved.sum()) == 200
    assert torch.equal(shift_images(img, 0, 0), img)
    assert torch.equal(shift_images(shift_images(img, 2, 1), -2, -1)[0, 10, 5], torch.tensor(200, dtype=torch.uint8))
    assert int(shift_images(img, 28, 0).sum()) == 0  # moved out entirely
    assert shift_images(img.float()[:, None], 1, 0).shape == (1, 1, 28, 28)  # [N,C,H,W] too


def test_pick_images_takes_the_first_of_each_class() -> None:
    labels = np.array([3, 1, 3, 0, 1, 2, 3, 0, 2, 1] * 3 + list(range(4, 10)) * 2)
    picked = pick_images(labels, 20)  # 2 of each class
    assert list(picked) == sorted(picked) and np.bincount(labels[picked], minlength=10).tolist() == [2] * 10
    assert list(picked[:3]) == [0, 1, 2]
    assert len(pick_images(labels, 10_000)) == len(labels)


class RowReader(nn.Module):
    """Classifies the synthetic images of tests/conftest.py exactly: class c lights rows 2c+2..2c+4 (columns 4–23),
    so the score of c is the brightness of those rows. A horizontal shift keeps the class; a vertical one of
    2 pixels moves the bar onto the next class's rows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x[:, 0].sum(dim=2)  # [N,28]
        return torch.stack([rows[:, 2 + 2 * c : 5 + 2 * c].sum(dim=1) for c in range(10)], dim=1)


def synthetic(n_per_class: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    labels = np.repeat(np.arange(10), n_per_class)
    return torch.from_numpy(synthetic_images(labels, seed=3)), torch.from_numpy(labels)


def test_shift_grid_on_a_model_whose_answers_are_known() -> None:
    images, labels = synthetic()
    grid = shift_grid(RowReader(), images, labels, max_shift=4)
    assert grid.n == 100 and grid.accuracy.shape == (9, 9)
    for dx in range(-4, 5):
        assert grid.at(dx, 0) == 1.0  # the bar (columns 4–23) stays in frame and on its rows
    assert grid.at(0, 2) == pytest.approx(0.0, abs=0.1) and grid.at(0, -2) == pytest.approx(0.0, abs=0.1)
    # a prediction changes exactly where it stops being right: the model was right everywhere unshifted
    assert np.array_equal(grid.correct + grid.changed, np.full((9, 9), 100))
    assert grid.by_radius()[0]["shifts"] == 8 and grid.by_radius()[3]["shifts"] == 32


@pytest.mark.slow  # a CNN's first forward passes in a process take seconds here
def test_zero_shift_is_todays_accuracy() -> None:
    torch.manual_seed(0)
    model = create_model("cnn", {"depth": 1, "head": "gap"}).eval()
    images, labels = synthetic()
    grid = shift_grid(model, images, labels, max_shift=1)
    today = evaluate_model(model, images.numpy(), labels.numpy())["test_accuracy"]
    assert grid.unshifted == today and grid.changed[1, 1] == 0


def test_radius_statistics_by_hand() -> None:
    correct = np.full((5, 5), 60)
    correct[2, 2] = 100  # unshifted: 100 of 100
    correct[0, :] = correct[-1, :] = correct[:, 0] = correct[:, -1] = 20  # radius 2: 16 shifts at 20%
    grid = ShiftGrid(2, 100, correct, 100 - correct)
    r1, r2 = grid.by_radius()
    assert (r1["shifts"], r1["accuracy"], r1["drop"]) == (8, 0.6, pytest.approx(0.4))
    assert (r2["shifts"], r2["drop"], r2["changed"]) == (16, pytest.approx(0.8), pytest.approx(0.8))
    assert grid.mean_drop() == pytest.approx(0.6) and grid.to_dict()["mean_drop"] == pytest.approx(0.6)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """One finished one-epoch cnn-k3 run on the synthetic dataset: (runs folder, data folder)."""
    base = tmp_path_factory.mktemp("shift")
    data = make_tiny_dataset(base / "data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FMNIST_VERIFY", "0")
        train(
            TrainConfig.create(arch="cnn", epochs=1, subset=256, threads=1, out=str(base / "runs"), data_dir=str(data))
        )
    yield base / "runs", data


@pytest.mark.slow
def test_evaluate_shift_cli(tiny_run: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    runs, data = tiny_run
    monkeypatch.setenv("FMNIST_VERIFY", "0")
    common = ["--runs", str(runs), "--data-dir", str(data)]
    first = runner.invoke(app, ["evaluate", "cnn-k3-s0", *common, "--shift", "--json"])
    assert first.exit_code == 0, first.output
    doc = json.loads(first.output)
    shift = doc["shift"]
    summary = json.loads((runs / "cnn-k3-s0" / "summary.json").read_text())
    assert shift["unshifted_accuracy"] == summary["test_accuracy"]  # the shift (0, 0) is today's test set
    assert shift["images"] == 100 and shift["shifts"] == list(range(-4, 5)) and not shift["cached"]
    assert [r["radius"] for r in shift["by_radius"]] == [1, 2, 3, 4]
    assert shift["mean_drop"] == pytest.approx(np.mean([r["drop"] for r in shift["by_radius"]]))
    cache = json.loads((runs / "cnn-k3-s0" / SHIFTS).read_text())
    assert cache["weights"] == "best.safetensors" and len(cache["evaluations"]) == 1

    again = runner.invoke(app, ["evaluate", "cnn-k3-s0", *common, "--shift", "--json"])
    assert (
        json.loads(again.output)["shift"]["cached"]
        and json.loads(again.output)["shift"]["accuracy"] == shift["accuracy"]
    )

    text = runner.invoke(app, ["evaluate", "cnn-k3-s0", *common, "--shift", "--max-shift", "2"], env={"COLUMNS": "120"})
    assert text.exit_code == 0, text.output
    assert "shifted by (dx, dy) pixels" in text.output and "2 px (16 shifts): accuracy" in text.output
    assert "mean drop over 1–2 px:" in text.output and "3 px" not in text.output

    # new weights (a run extended with --resume): the cache no longer counts
    run = Run(runs / "cnn-k3-s0")
    assert cached_grid(run, 10_000, 4) is not None
    weights = run.file("best.safetensors")
    original = weights.read_bytes()
    try:
        weights.write_bytes(original + b" ")
        assert cached_grid(run, 10_000, 4) is None
    finally:
        weights.write_bytes(original)


@pytest.fixture(scope="module")
def other_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """One-epoch lcn-k3 and resnet runs on 256 images of the synthetic dataset, trained through the CLI: (runs
    folder, data folder)."""
    base = tmp_path_factory.mktemp("shift-archs")
    data = make_tiny_dataset(base / "data")
    common = ["--epochs", "1", "--subset", "256", "--threads", "1", "--out", str(base / "runs")]
    common += ["--data-dir", str(data)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FMNIST_VERIFY", "0")
        for arch in ("lcn", "resnet"):
            extra = ["--width", "8", "--blocks", "1"] if arch == "resnet" else []
            res = runner.invoke(app, ["train", "--arch", arch, *extra, *common])
            assert res.exit_code == 0, res.output
    yield base / "runs", data


@pytest.mark.slow
@pytest.mark.parametrize(
    "run,first,last",
    [
        ("lcn-k3-s0", ["conv1", "pool1"], ["pool2", "logits"]),
        ("resnet-w8-b1-s0", ["stem", "stage1"], ["gap", "logits"]),
    ],
)
def test_evaluate_shift_on_an_lcn_and_a_resnet(
    other_runs: tuple[Path, Path], run: str, first: list[str], last: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shifted evaluation and the equivariance measure take every architecture with feature maps."""
    runs, data = other_runs
    monkeypatch.setenv("FMNIST_VERIFY", "0")
    common = ["--runs", str(runs), "--data-dir", str(data), "--shift", "--max-shift", "2"]
    res = runner.invoke(app, ["evaluate", run, *common, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    summary = json.loads((runs / run / "summary.json").read_text())
    assert doc["shift"]["unshifted_accuracy"] == summary["test_accuracy"] and len(doc["shift"]["accuracy"]) == 5
    stages = [st["stage"] for st in doc["equivariance"]]
    assert stages[:2] == first and stages[-2:] == last
    text = runner.invoke(app, ["evaluate", run, *common], env={"COLUMNS": "120"})
    assert text.exit_code == 0 and "from shift.json" in text.output and "equivariance on the first" in text.output
    assert "Traceback" not in text.output


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--shift", "--max-shift", "0"], "--max-shift 0 is out of range; give 1–12 pixels"),
        (["--shift", "--max-shift", "13"], "--max-shift 13 is out of range"),
        (["--shift", "--images", "5"], "--images 5 is too few; give at least 10"),
        (["--images", "100"], "--max-shift and --images go with --shift"),
    ],
)
def test_evaluate_shift_usage_errors(args: list[str], needle: str, tmp_path: Path) -> None:
    cfg = TrainConfig.create(arch="mlp", out=str(tmp_path))
    cfg.run_dir.mkdir(parents=True)
    (cfg.run_dir / "config.json").write_text(json.dumps(cfg.to_dict()))
    res = runner.invoke(app, ["evaluate", "mlp-s0", "--runs", str(tmp_path), *args])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
