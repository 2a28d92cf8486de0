"""`fmnist experiment`: the grid plan, run statuses, reuse, resume after an interruption, Ctrl-C, bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fmnist_tui.core import registry
from fmnist_tui.core.config import TrainConfig
from fmnist_tui.core.errors import RunError, UsageError
from fmnist_tui.core.runs import Run
from fmnist_tui.study.plan import DONE, NEW, RESTART, RESUME, plan, status, train_command


def test_default_grid() -> None:
    configs = plan(["mlp", "cnn"], {"kernel": [3, 5, 7]}, 3, 15, Path("ck"))
    names = [c.run_name for c in configs]
    assert len(names) == 12 and names[:4] == ["mlp-s0", "mlp-s1", "mlp-s2", "cnn-k3-s0"] and names[-1] == "cnn-k7-s2"
    # one recipe for all: configs differ only in arch, its options (the mlp has no kernel, depth...) and seed
    varying = {k for k in configs[0].to_dict() if len({str(c.to_dict()[k]) for c in configs}) > 1}
    assert varying == {"arch", "seed", *(o.name for arch in ("mlp", "cnn") for o in registry.get(arch).options)}
    assert {str(c.options["kernel"]) for c in configs if c.arch == "cnn"} == {"3", "5", "7"}


def test_narrowed_grid_and_bad_values() -> None:
    assert [c.run_name for c in plan(["cnn"], {"kernel": [5]}, 2, 1, Path("x"), subset=64)] == [
        "cnn-k5-s0",
        "cnn-k5-s1",
    ]
    assert plan(["cnn"], {"kernel": [5]}, 1, 1, Path("x"), subset=64)[0].subset == 64
    with pytest.raises(UsageError, match="seeds must be at least 1"):
        plan(["mlp"], {"kernel": [3]}, 0, 1, Path("x"))
    with pytest.raises(UsageError, match="kernels 4"):
        plan(["cnn"], {"kernel": [3, 4]}, 1, 1, Path("x"))
    with pytest.raises(UsageError, match="unknown arch 'vit'"):
        plan(["vit"], {"kernel": [3]}, 1, 1, Path("x"))


def test_train_command() -> None:
    cfg = TrainConfig.create(arch="cnn", kernel=7, epochs=4, seed=2, subset=100, out="runs")
    new = train_command(cfg, threads=1, resume=False)
    assert new[1:4] == ["-m", "fmnist_tui", "train"]
    joined = " ".join(new)
    assert "--kernel 7" in joined and "--subset 100" in joined and "--threads 1" in joined and "--resume" not in joined
    resumed = train_command(cfg, threads=2, resume=True)
    assert "--resume" in resumed and "--name cnn-k7-s2" in " ".join(resumed) and "--kernel" not in resumed


def stop_after(batches: int):
    """A should_stop that says stop once `batches` steps ran."""
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] > batches

    return should_stop


@pytest.mark.slow
def test_status_of_runs(tiny_data: Path, tmp_path: Path) -> None:
    from fmnist_tui.training.trainer import train

    cfg = TrainConfig.create(
        arch="mlp",
        kernel=None,
        epochs=2,
        seed=0,
        subset=64,
        out=str(tmp_path / "r"),
        data_dir=str(tiny_data),
        threads=1,
        batch_size=32,
    )
    assert status(cfg) == NEW
    assert train(cfg, should_stop=stop_after(3)).interrupted
    assert status(cfg) == RESUME
    train(cfg, resume=True)
    assert status(cfg) == DONE
    with pytest.raises(RunError, match=r"another recipe.*epochs 2 ≠ 3"):
        status(cfg.with_changes(epochs=3))
    Run(cfg.run_dir).file("summary.json").unlink()
    Run(cfg.run_dir).file("train_state.pt").unlink()
    assert status(cfg) == RESTART


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fmnist_tui", "experiment", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


TINY = ["--archs", "mlp", "--epochs", "1", "--seeds", "2", "--subset", "64", "--runs", "runs", "--out", "out"]


@pytest.mark.slow
def test_experiment_trains_then_reuses(cli_env: dict[str, str], tmp_path: Path) -> None:
    res = run_cli([*TINY, "--jobs", "2"], cli_env, tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["table"][0]["config"] == "mlp" and doc["table"][0]["n"] == 2
    # latency is measured on a model exported by `fmnist export`'s pipeline, never estimated
    assert 0 < doc["table"][0]["latency_ms"] < 100 and (tmp_path / "out" / "onnx" / "mlp-s0.onnx").is_file()
    assert sorted(doc["experiment"]["trained"]) == ["mlp-s0", "mlp-s1"] and doc["experiment"]["jobs"] == 2
    assert doc["experiment"]["executor"] == "local"
    assert (tmp_path / "out" / "results.md").read_text().startswith("## Results by config")
    assert (tmp_path / "out" / "results.csv").read_text().count("\n") == 2
    assert (tmp_path / "out" / "logs" / "mlp-s0.log").stat().st_size > 0
    summary = tmp_path / "runs" / "mlp-s0" / "summary.json"
    before = summary.stat().st_mtime_ns
    again = run_cli(TINY, cli_env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert summary.stat().st_mtime_ns == before  # finished runs are reused, not retrained
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["experiment"]["trained"] == [] and sorted(doc["experiment"]["reused"]) == ["mlp-s0", "mlp-s1"]


@pytest.mark.slow
def test_experiment_resumes_interrupted_runs(cli_env: dict[str, str], tiny_data: Path, tmp_path: Path) -> None:
    from fmnist_tui.training.trainer import train

    runs = tmp_path / "runs"
    cfg = plan(["mlp"], {"kernel": [3]}, 2, 2, runs, subset=64, data_dir=None)[0].with_changes(threads=1)
    assert train(cfg.with_changes(data_dir=str(tiny_data)), should_stop=stop_after(1)).interrupted
    # mlp-s1 stopped before it saved any state: only its config.json exists
    (runs / "mlp-s1").mkdir()
    (runs / "mlp-s1" / "config.json").write_text(json.dumps(cfg.with_changes(seed=1).to_dict()))
    dry = run_cli([*TINY[:-4], "--epochs", "2", "--runs", "runs", "--out", "out", "--dry-run"], cli_env, tmp_path)
    assert "mlp-s0: resume" in dry.stdout and "mlp-s1: restart" in dry.stdout, dry.stdout + dry.stderr
    res = run_cli(
        [*TINY[:-4], "--epochs", "2", "--runs", "runs", "--out", "out", "--jobs", "1", "--no-latency"],
        cli_env,
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "mlp-s0: resuming" in res.stdout and "mlp-s1: restarting" in res.stdout
    assert "resuming at epoch 2 of 2" in (tmp_path / "out" / "logs" / "mlp-s0.log").read_text()
    for name in ("mlp-s0", "mlp-s1"):
        assert Run(runs / name).finished and len(Run(runs / name).metrics()) == 2


@pytest.mark.slow
def test_ctrl_c_stops_children_with_state_saved(cli_env: dict[str, str], tmp_path: Path) -> None:
    args = ["--archs", "mlp", "--epochs", "400", "--seeds", "1", "--runs", "runs", "--out", "out"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "fmnist_tui", "experiment", *args],
        env=cli_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = tmp_path / "out" / "logs" / "mlp-s0.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (log.exists() and "epoch   2/400" in log.read_text()):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "Continue with: fmnist experiment" in err
    run = Run(tmp_path / "runs" / "mlp-s0")
    assert run.file("train_state.pt").exists() and not run.finished
    dry = run_cli([*args, "--dry-run"], cli_env, tmp_path)
    assert "mlp-s0: resume" in dry.stdout


@pytest.mark.slow
def test_experiment_bad_input(cli_env: dict[str, str], tmp_path: Path) -> None:
    res = run_cli(["--seeds", "0"], cli_env, tmp_path)
    assert res.returncode == 2 and "--seeds must be at least 1" in res.stderr and "Traceback" not in res.stderr
    res = run_cli(["--kernels", "3,x"], cli_env, tmp_path)
    assert res.returncode == 2 and "--kernels takes integers" in res.stderr
    res = run_cli(["--jobs", "0", "--archs", "mlp"], cli_env, tmp_path)
    assert res.returncode == 2 and "--jobs must be at least 1" in res.stderr
