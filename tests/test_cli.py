"""The CLI as a user meets it: exit codes, one-line errors, no tracebacks, Ctrl-C and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fmnist_tui.cli import app

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None):  # noqa: ANN201 - click Result
    return runner.invoke(app, list(args), env=env)


@pytest.mark.parametrize("args,needle", [
    (["--arch", "vit"], "'vit' is not one of"),
    (["--kernel", "4"], "valid: 3, 5, 7"),
    (["--arch", "mlp", "--kernel", "3"], "does not apply"),
    (["--epochs", "0"], "positive"),
    (["--batch-size", "-1"], "positive"),
])
def test_usage_errors_exit_2(args: list[str], needle: str, tiny_data: Path, tmp_path: Path) -> None:
    result = invoke("train", *args, "--data-dir", str(tiny_data), "--out", str(tmp_path / "runs"))
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_missing_dataset_exit_1(tmp_path: Path) -> None:
    result = invoke("train", "--data-dir", str(tmp_path), "--out", str(tmp_path / "runs"))
    assert result.exit_code == 1
    assert "apt-get install -y dataset-fashion-mnist" in result.output and "Traceback" not in result.output
    assert invoke("data", "--data-dir", str(tmp_path)).exit_code == 1


def test_truncated_and_corrupted_dataset_files_are_named(tiny_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMNIST_VERIFY", "1")
    result = invoke("data", "--data-dir", str(tiny_data))
    assert result.exit_code == 1 and "train-images-idx3-ubyte.gz: SHA-256" in result.output
    monkeypatch.setenv("FMNIST_VERIFY", "0")
    labels = tiny_data / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-10])
    result = invoke("data", "--data-dir", str(tiny_data))
    assert result.exit_code == 1 and "train-labels-idx1-ubyte.gz" in result.output


def test_data_json_counts(tiny_data: Path) -> None:
    result = invoke("data", "--data-dir", str(tiny_data), "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["via"] == "--data-dir" and info["counts"]["train"] == [25] * 10 and info["counts"]["test"] == [10] * 10


@pytest.mark.slow
def test_train_evaluate_and_refusals(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    common = ["--data-dir", str(tiny_data), "--out", str(out), "--threads", "1"]
    result = invoke("train", "--arch", "mlp", "--epochs", "2", *common)
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output and "235,146 params" in result.output
    run = out / "mlp-s0"
    again = invoke("train", "--arch", "mlp", "--epochs", "2", *common)
    assert again.exit_code == 1 and "already finished" in again.output
    ev = invoke("evaluate", "mlp-s0", "--runs", str(out), "--data-dir", str(tiny_data), "--json")
    assert ev.exit_code == 0, ev.output
    report = json.loads(ev.output)
    summary = json.loads((run / "summary.json").read_text())
    assert report["test_accuracy"] == summary["test_accuracy"] and len(report["most_confused"]) == 3
    table = invoke("evaluate", str(run), "--data-dir", str(tiny_data))
    assert table.exit_code == 0 and "confusion matrix" in table.output and "most confused" in table.output
    unknown = invoke("evaluate", "nope", "--runs", str(out))
    assert unknown.exit_code == 1 and "unknown run 'nope'" in unknown.output and "mlp-s0" in unknown.output
    (run / "best.safetensors").write_bytes(b"garbage")
    bad = invoke("evaluate", str(run), "--data-dir", str(tiny_data))
    assert bad.exit_code == 1 and "corrupted" in bad.output and "Traceback" not in bad.output
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    res = invoke("train", "--data-dir", str(tiny_data), "--out", str(blocked))
    assert res.exit_code == 1 and "not writable" in res.output


@pytest.mark.slow
def test_ctrl_c_saves_state_exits_130_and_resume_finishes(cli_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "fmnist_tui", "train", "--arch", "cnn", "--epochs", "30", "--batch-size", "16",
           "--threads", "1", "--out", str(out), "--name", "cut"]
    proc = subprocess.Popen(cmd, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "cut" / "metrics.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "fmnist train --resume" in stderr and "Traceback" not in stderr + stdout
    assert (out / "cut" / "train_state.pt").exists()
    resume = [sys.executable, "-m", "fmnist_tui", "train", "--resume", "--out", str(out), "--name", "cut", "--threads", "1"]
    done = subprocess.run(resume, env=cli_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming at epoch" in done.stdout
    assert json.loads((out / "cut" / "summary.json").read_text())["finished"] is True
    assert os.path.exists(out / "cut" / "best.safetensors")
