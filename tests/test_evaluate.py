"""`fmnist evaluate`'s device handling: the shared --device choices, and a missing GPU as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fmnist_tui.cli import app

runner = CliRunner()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA device")
def test_evaluate_on_cuda_without_a_gpu_is_one_line(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "cnn-k3-s0"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"arch": "cnn", "kernel": 3}))
    res = runner.invoke(app, ["evaluate", "cnn-k3-s0", "--runs", str(tmp_path / "runs"), "--device", "cuda"])
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [
        "error: --device cuda: no CUDA device is available here; use cpu or auto"
    ]
    assert "Traceback" not in res.output


def test_every_device_option_offers_the_same_choices() -> None:
    shown = {}
    for command in ("train", "evaluate", "study"):
        res = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0
        line = next(line for line in res.output.splitlines() if "--device" in line)
        shown[command] = line.split("--device", 1)[1].split()[0]
    assert set(shown.values()) == {"<auto|cpu|cuda>"}, shown
