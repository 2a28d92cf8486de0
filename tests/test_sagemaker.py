"""SageMaker's training contract, against a fake /opt/ml tree in a temporary folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.deploy import sagemaker as sm


def fake_opt_ml(root: Path, hps: dict[str, str], data: Path | None = None) -> Path:
    """The /opt/ml layout SageMaker mounts: config, a training channel, model and output folders."""
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hps))
    (root / "input" / "config" / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
    )
    if data is not None:
        (root / "input" / "data").mkdir(parents=True)
        (root / "input" / "data" / "training").symlink_to(data, target_is_directory=True)
    (root / "model").mkdir()
    (root / "output").mkdir()
    return root


def test_hyperparameters_are_typed_from_sagemaker_strings() -> None:
    raw = {
        "arch": '"cnn"',
        "kernel": "5",
        "epochs": "3",
        "batch-size": "64",
        "lr": "0.001",
        "hflip": "false",
        "subset": "null",
        "sagemaker_program": '"x.py"',
        "_tuning_objective_metric": "val_acc",
        "name": "run-a",
    }
    assert sm.parse_hyperparameters(raw) == {
        "arch": "cnn",
        "kernel": 5,
        "epochs": 3,
        "batch_size": 64,
        "lr": 0.001,
        "hflip": False,
        "subset": None,
        "name": "run-a",
    }


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"epochz": "3"}, "epochz"),
        ({"epochs": "ten"}, "epochs"),
        ({"epochs": "2.5"}, "epochs"),
        ({"lr": "fast"}, "lr"),
        ({"hflip": "maybe"}, "hflip"),
        ({"epochs": None}, "epochs"),
    ],
)
def test_bad_hyperparameter_names_its_key(raw: dict[str, str], named: str) -> None:
    with pytest.raises(sm.HyperparameterError, match=named):
        sm.parse_hyperparameters(raw)


def test_paths_from_sm_variables_win_over_the_layout(tmp_path: Path) -> None:
    env = {
        "SAGEMAKER_BASE_DIR": str(tmp_path),
        "SM_MODEL_DIR": str(tmp_path / "m"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "out" / "data"),
        "SM_HPS": '{"epochs": 2}',
        "SM_NUM_GPUS": "0",
        "SM_HOSTS": '["algo-2", "algo-1"]',
        "SM_CURRENT_HOST": "algo-2",
    }
    job = sm.read_job(env)
    assert job.model_dir == tmp_path / "m" and job.training is None
    assert job.hyperparameters == {"epochs": 2} and job.hp_source == "SM_HPS"
    assert job.hosts == ["algo-1", "algo-2"] and job.current_host == "algo-2"
    assert sm.failure_path(env) == tmp_path / "out" / "failure"
    assert sm.failure_path({"SAGEMAKER_BASE_DIR": str(tmp_path)}) == tmp_path / "output" / "failure"
    cfg = sm.job_config(job)
    assert cfg.epochs == 2 and cfg.device == "cpu" and cfg.out == str(tmp_path / "checkpoints")


def test_detection(tmp_path: Path) -> None:
    assert sm.detected({"SM_MODEL_DIR": "/x"})
    assert sm.detected({"SAGEMAKER_BASE_DIR": str(tmp_path)})  # the variable alone says so
    assert sm.detected({}) == (Path("/opt/ml/input/config/hyperparameters.json").is_file())


def test_bad_hyperparameter_writes_failure_and_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_opt_ml(tmp_path / "ml", {"epochs": "0", "arch": "cnn"})
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(root))
    result = CliRunner().invoke(app, ["train"])
    assert result.exit_code == 1
    failure = (root / "output" / "failure").read_text()
    assert "epochs" in failure and "hyperparameters.json" in failure
    assert "Traceback" not in result.output


def test_options_are_refused_in_sagemaker_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(fake_opt_ml(tmp_path / "ml", {})))
    result = CliRunner().invoke(app, ["train", "--epochs", "3"])
    assert result.exit_code == 2 and "--no-sagemaker" in result.output


@pytest.mark.slow
def test_training_job_writes_model_dir(tmp_path: Path, cli_env: dict[str, str], tiny_data: Path) -> None:
    """`train` as SageMaker runs it: SM_* variables, no options; the model dir gets weights and ONNX."""
    root = fake_opt_ml(tmp_path / "ml", {}, data=tiny_data)
    env = {k: v for k, v in cli_env.items() if k != "FMNIST_DATA"}  # the data must come from the channel
    env.update(
        {
            "SM_MODEL_DIR": str(root / "model"),
            "SM_CHANNEL_TRAINING": str(root / "input" / "data" / "training"),
            "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
            "SM_NUM_GPUS": "0",
            "SAGEMAKER_BASE_DIR": str(root),
            "SM_HPS": json.dumps({"arch": "mlp", "epochs": 1, "subset": 64, "batch_size": 32, "threads": 1}),
        }
    )
    proc = subprocess.run(
        [sys.executable, "-m", "fmnist_tui", "train"], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "epoch   1/1" in proc.stdout and "SageMaker training job done" in proc.stdout
    names = sorted(p.name for p in (root / "model").iterdir())
    assert names == ["best.safetensors", "config.json", "manifest.json", "metrics.csv", "mlp-s0.onnx", "summary.json"]
    config = json.loads((root / "model" / "config.json").read_text())
    assert config["arch"] == "mlp" and config["train_images"] == 64
    assert config["data_dir"] == str(root / "input" / "data" / "training")
    assert not (root / "output" / "failure").exists()

    from fmnist_tui.inference.session import OnnxClassifier

    clf = OnnxClassifier(root / "model" / "mlp-s0.onnx")
    assert clf.metadata["arch"] == "mlp"
