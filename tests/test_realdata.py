"""End to end on the real Fashion-MNIST files (installed by `make test`): data, a small training, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.core.data import SHA256, load_dataset

pytestmark = pytest.mark.realdata
runner = CliRunner()


@pytest.fixture(autouse=True)
def _real_data_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FMNIST_DATA", raising=False)
    monkeypatch.setenv("FMNIST_VERIFY", "1")


def test_real_dataset_verifies_and_splits() -> None:
    ds = load_dataset()
    assert ds.sha256 == SHA256
    assert len(ds.train_labels) == 50_000 and len(ds.val_labels) == 10_000 and len(ds.test_labels) == 10_000
    result = runner.invoke(app, ["data", "--json"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)["counts"]
    assert counts["val"] == [1000] * 10 and counts["test"] == [1000] * 10
    assert [a + b for a, b in zip(counts["train"], counts["val"], strict=False)] == [6000] * 10


@pytest.mark.slow
def test_small_real_training_run_folder(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    result = runner.invoke(
        app,
        [
            "train",
            "--arch",
            "cnn",
            "--kernel",
            "3",
            "--subset",
            "2048",
            "--epochs",
            "2",
            "--out",
            str(out),
            "--threads",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    run = out / "cnn-k3-s0"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["dataset_sha256"] == SHA256 and cfg["subset"] == 2048 and cfg["train_images"] == 2048
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_accuracy"] > 0.6  # 2 epochs on 2k images; chance is 0.1
    assert [sum(row) for row in summary["confusion_matrix"]] == [1000] * 10
    assert summary["params"] == 421_642 and summary["macs"] == 4_241_152
    ev = runner.invoke(app, ["evaluate", str(run), "--json"])
    assert ev.exit_code == 0 and json.loads(ev.output)["test_accuracy"] == summary["test_accuracy"]
