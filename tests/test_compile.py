"""`--compile`: torch.compile of the training step is a placement setting (where and how a run runs, not what it
learns), validated in one line, recorded, changeable on resume, and it trains exactly what eager trains."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.cli.train_cmd import command_line
from fmnist_tui.core.config import COMPILES, TrainConfig, resume_config
from fmnist_tui.core.errors import EXIT_FAILED, ConfigError
from fmnist_tui.training.step import COMPILE_MODES

runner = CliRunner()


def test_compile_is_placement_with_its_valid_values() -> None:
    assert tuple(COMPILE_MODES) == COMPILES
    compiled = TrainConfig.create(arch="resnet", compile="graphs")
    assert compiled.recipe() == TrainConfig.create(arch="resnet").recipe()  # a study reuses either run for the other
    assert compiled.run_name == "resnet-s0"
    assert "--compile graphs" in " ".join(command_line(compiled))
    assert "--compile" not in " ".join(command_line(TrainConfig.create(arch="resnet")))
    with pytest.raises(ConfigError, match="valid: off, default, graphs"):
        TrainConfig.create(compile="fast")


def test_an_unknown_compile_mode_is_one_usage_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--compile", "fast", "--out", str(tmp_path / "runs")], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert all(f"'{word}'" in result.output for word in ("fast", "off", "default", "graphs"))  # the value, the choices
    assert not (tmp_path / "runs").exists()


def _losses(run: Path) -> list[float]:
    with open(run / "metrics.csv", newline="") as fh:
        return [float(row["train_loss"]) for row in csv.DictReader(fh)]


@pytest.mark.slow
def test_a_compiled_run_trains_what_eager_trains_and_resumes_either_way(
    tiny_data: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    runs = tmp_path / "runs"
    common = ["--arch", "cnn", "--subset", "96", "--batch-size", "32", "--precision", "fp32", "--threads", "1"]
    for mode in ("off", "default"):
        args = ["train", *common, "--epochs", "1", "--compile", mode, "--name", mode, "--out", str(runs)]
        # as a user runs it: torch's own log lines (a CUDA build without CUDA warns about it) would show here
        done = subprocess.run(
            [sys.executable, "-m", "fmnist_tui", *args], env=cli_env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr and "CUDA" not in done.stdout + done.stderr, done.stderr
        assert json.loads((runs / mode / "config.json").read_text())["compile"] == mode
    assert _losses(runs / "default") == pytest.approx(_losses(runs / "off"), rel=1e-5)
    # a placement setting: the run resumes under another mode, and says so in its config
    more = ["train", "--resume", "--out", str(runs), "--name", "default", "--epochs", "2", "--compile", "off"]
    result = runner.invoke(app, [*more, "--data-dir", str(tiny_data)])
    assert result.exit_code == 0, result.output
    assert resume_config(runs / "default").compile == "off" and len(_losses(runs / "default")) == 2


@pytest.mark.slow
def test_a_compile_that_fails_is_one_line_and_the_run_resumes_without_it(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from torch._dynamo.exc import BackendCompilerFailed

    from fmnist_tui.training import step

    class Unbuildable(torch.nn.Module):  # what torch.compile's wrapper does on a machine without a C++ compiler
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise BackendCompilerFailed(torch.compile, RuntimeError("No working C++ compiler found"), None)

    monkeypatch.setattr(step, "compiled", lambda net, mode: net if mode == "off" else Unbuildable())
    runs = tmp_path / "runs"
    where = ["--out", str(runs), "--data-dir", str(tiny_data)]
    args = ["train", "--arch", "mlp", "--subset", "64", "--epochs", "1", "--compile", "default"]
    failed = runner.invoke(app, [*args, *where], env={"COLUMNS": "300"})
    assert failed.exit_code == EXIT_FAILED and "Traceback" not in failed.output
    said = [line for line in failed.output.splitlines() if "torch.compile could not build" in line]
    assert said == [
        "error: --compile default: torch.compile could not build the training step (RuntimeError: No working C++ "
        "compiler found); the run's last saved state is kept: continue it with --resume and --compile off"
    ], failed.output
    resumed = runner.invoke(app, ["train", "--resume", "--name", "mlp-s0", "--compile", "off", *where])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((runs / "mlp-s0" / "summary.json").read_text())["epochs"] == 1


def test_a_study_passes_compile_to_its_trainings_and_reuses_runs_trained_without(tmp_path: Path) -> None:
    """`fmnist study NAME --compile MODE`: every planned training carries the mode, and a finished run trained
    without it is still the study's run (placement, not recipe): reused, not retrained."""
    from fmnist_tui.study import studies
    from fmnist_tui.study.plan import DONE, NEW, status

    spec = studies.get("kernel")
    configs = spec.plan(spec.quick, tmp_path, compile="graphs")
    assert {c.compile for c in configs} == {"graphs"}
    eager = configs[0].with_changes(compile="off")
    eager.run_dir.mkdir(parents=True)
    (eager.run_dir / "config.json").write_text(json.dumps({**eager.to_dict(), "run": eager.run_name}))
    (eager.run_dir / "summary.json").write_text(json.dumps({"test_accuracy": 0.9, "finished": True}))
    assert status(configs[0]) == DONE and status(configs[1]) == NEW
    args = ["study", "kernel", "--quick", "--compile", "fast", "--dry-run"]
    result = runner.invoke(app, [*args, "--runs", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and all(f"'{word}'" in result.output for word in ("fast", "off", "default", "graphs"))
