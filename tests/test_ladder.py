"""The ladder (issue 14): rungs picked from the runs present, paired steps, the rungs left to train, the figure
through `fmnist report --figure ladder`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.core.config import TrainConfig
from fmnist_tui.study import ladder
from fmnist_tui.study.results import group_records, load_records

runner = CliRunner()


def finished(root: Path, seed: int, acc: float, epochs: int = 15, **values: Any) -> None:
    """A finished run folder with a real config.json and a hand-made summary.json (no training)."""
    cfg = TrainConfig.create(seed=seed, epochs=epochs, out=str(root), **values)
    cfg.run_dir.mkdir(parents=True)
    (cfg.run_dir / "config.json").write_text(json.dumps(cfg.to_dict()))
    summary = {"test_accuracy": acc, "finished": True, "params": 1000, "macs": 2e6, "train_seconds": 10.0}
    (cfg.run_dir / "summary.json").write_text(json.dumps({**summary, "device": "cpu"}))


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for seed, (mlp, cnn, bn) in enumerate([(0.89, 0.93, 0.935), (0.90, 0.92, 0.93), (0.88, 0.93, 0.94)]):
        finished(root, seed, mlp, arch="mlp")
        finished(root, seed, cnn, arch="cnn", kernel=3)
        finished(root, seed, bn, arch="cnn", kernel=3, norm="batch")
    for seed in range(4):  # another recipe, with more runs than the default's: still not the rung's runs
        finished(root, seed, 0.5, epochs=2, arch="cnn", kernel=3, norm="batch", name=f"short-s{seed}")
    finished(root, 0, 0.95, epochs=40, arch="resnet", shift=2, erase=0.25, tta=True)
    return root


def test_rungs_steps_and_what_is_left_to_train(runs: Path) -> None:
    records, warnings = load_records(runs)
    assert not warnings
    rows = {r["config"]: r for r in ladder.ladder(group_records(records))}
    assert [r.label for r in ladder.RUNGS] == list(rows)
    bn = rows["cnn-k3-bn"]
    assert (bn["n"], bn["epochs"]) == (3, 15)  # the default recipe's 3 runs, not the 2-epoch one
    assert bn["step_from"] == "cnn-k3" and bn["step_n"] == 3
    assert bn["step_mean"] == pytest.approx((0.005 + 0.01 + 0.01) / 3)
    assert bn["step_ci"][0] < bn["step_mean"] < bn["step_ci"][1]
    assert rows["cnn-k3"]["step_mean"] == pytest.approx((0.04 + 0.02 + 0.05) / 3)
    assert rows["resnet"]["n"] == 0 and rows["cnn-k3-d3-bn"]["n"] == 0
    top = rows["resnet-shift2"]  # the nearest lower rung with runs: cnn-k3-bn, over seed 0 only
    assert (top["step_from"], top["step_n"], top["step_ci"], top["epochs"]) == ("cnn-k3-bn", 1, None, 40)
    text = ladder.markdown(list(rows.values()))
    assert "| + batch norm | cnn-k3-bn | 3 | 93.50 ± 0.50% | +0.83 [" in text
    assert "(one seed)" in text and "not trained" in text
    assert "- resnet: `fmnist train --arch resnet --width 32 --blocks 2 --seed 0` (and 1, 2)" in text


@pytest.mark.slow
def test_report_draws_the_ladder(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", "--runs", str(runs), "--out", str(out), "--figure", "ladder"])
    assert result.exit_code == 0, result.output
    assert (out / "ladder_study.png").stat().st_size > 0 and "ladder" in result.output


def test_report_without_rungs_names_the_ladder_absent(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    finished(root, 0, 0.9, arch="cnn", kernel=5)  # a run, but of no rung
    result = runner.invoke(app, ["report", "--runs", str(root), "--out", str(tmp_path / "r"), "--figure", "ladder"])
    assert result.exit_code == 0, result.output
    assert "ladder" in result.output and "no finished runs" in result.output
