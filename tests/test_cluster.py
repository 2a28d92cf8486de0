"""Studies on a Ray cluster (`--ray ADDRESS`, study/runner.py's RayRunner): one local Ray instance (2 CPUs) shared by
every test here, on the synthetic dataset. A quick study through Ray gives the run folders and verdicts the local
pool gives; a training whose worker is killed is retried and resumes its run; Ctrl-C leaves every run resumable;
a node that does not see the runs folder, an address where no cluster answers, a task no node can place, a
missing Ray and bad task resources are one line each, within seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.core.config import TrainConfig
from fmnist_tui.core.runs import Run
from fmnist_tui.study import runner as runner_module
from fmnist_tui.study.runner import REUSED, TRAINED, ClusterError, RayRunner, Task

ray = pytest.importorskip("ray")  # the [cluster] extra; `make test` installs it

pytestmark = pytest.mark.slow
cli = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster_address() -> Iterator[str]:
    """One Ray instance for the module: its workers import this checkout's package."""
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "RAY_USAGE_STATS_ENABLED")}
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        for key, value in saved.items():  # a later test's subprocesses (a wheel's venv) must not see the checkout
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


STUDY = ["study", "regularizer", "--quick", "--seeds", "2", "--subset", "64", "--epochs", "2"]


def files(runs: Path) -> dict[str, list[str]]:
    """Each run folder's file names (without the lock file)."""
    return {p.name: sorted(f.name for f in p.iterdir() if f.name != ".lock") for p in sorted(runs.iterdir())}


def test_quick_study_through_ray_matches_the_local_pool(
    cluster_address: str, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = ["--data-dir", str(tiny_data)]
    local = cli.invoke(app, [*STUDY, *data, "--runs", "local", "--out", "out-local", "--jobs", "1"])
    assert local.exit_code == 0, local.output
    remote = cli.invoke(app, [*STUDY, *data, "--runs", "ray", "--out", "out-ray", "--ray", cluster_address])
    assert remote.exit_code == 0, remote.output
    assert remote.output.count(": trained in") == 4 and "[4/4]" in remote.output
    assert files(tmp_path / "local" / "quick") == files(tmp_path / "ray" / "quick")  # the same files
    assert not list((tmp_path / "ray" / "quick").glob(".fmnist-ray-*"))  # the driver's marker is gone
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("out-local", "out-ray"))
    assert [r["config"] for r in a["table"]] == [r["config"] for r in b["table"]] == ["mlp", "cnn-k3"]
    assert [v["claim"] for v in a["verdicts"]] == [v["claim"] for v in b["verdicts"]]
    assert set(a) == set(b) and a["preset"] == b["preset"]
    for name in ("cnn-k3-s0", "mlp-s1"):  # the same recipe and options in config.json
        ca, cb = (json.loads((tmp_path / d / "quick" / name / "config.json").read_text()) for d in ("local", "ray"))
        assert TrainConfig.from_dict(ca).recipe() == TrainConfig.from_dict(cb).recipe()
    again = cli.invoke(app, [*STUDY, *data, "--runs", "ray", "--out", "out-ray", "--ray", cluster_address])
    assert again.exit_code == 0 and "trained in" not in again.output  # every run reused: no task at all


def training_pid(run_dir: Path) -> int | None:
    """The PID of the process training `run_dir`, from its lock file."""
    try:
        return int((run_dir / ".lock").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def wait_for(condition: Any, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_killed_worker_is_retried_and_resumes_its_run(cluster_address: str, tiny_data: Path, tmp_path: Path) -> None:
    cfg = TrainConfig.create(arch="mlp", seed=0, epochs=40, out=str(tmp_path / "runs"), data_dir=str(tiny_data))
    killed: list[int] = []

    def kill_worker() -> None:  # once an epoch is saved, SIGKILL the Ray worker that trains it
        wait_for(lambda: (cfg.run_dir / "train_state.pt").exists() and training_pid(cfg.run_dir))
        pid = training_pid(cfg.run_dir)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_worker, daemon=True)
    killer.start()
    outcome = RayRunner(cluster_address, 1).run([Task(cfg)], tmp_path / "logs")
    killer.join(5)
    assert killed, "the worker was not killed"
    assert [r.result for r in outcome.ran] == [TRAINED] and not outcome.interrupted
    assert Run(cfg.run_dir).finished
    epochs = [int(line.split(",")[0]) for line in (cfg.run_dir / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs == list(range(1, 41))  # every epoch once: nothing lost, nothing repeated
    again = RayRunner(cluster_address, 1).run([Task(cfg)], tmp_path / "logs")
    assert [r.result for r in again.ran] == [REUSED]


def test_ctrl_c_leaves_every_run_resumable(cluster_address: str, cli_env: dict[str, str], tmp_path: Path) -> None:
    args = [sys.executable, "-m", "fmnist_tui", "study", "regularizer", "--quick", "--seeds", "1", "--subset", "64"]
    args += ["--epochs", "60", "--runs", "runs", "--out", "out", "--ray", cluster_address]
    proc = subprocess.Popen(args, cwd=tmp_path, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = tmp_path / "runs" / "quick"
    wait_for(lambda: (runs / "cnn-k3-s0" / "train_state.pt").exists())  # the mlp may finish before: it is quick
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=200)
    assert proc.returncode == 130, out + err
    assert "interrupted" in err and "fmnist study regularizer" in err  # what happened, and the command to go on
    assert "Traceback" not in err
    assert not Run(runs / "cnn-k3-s0").finished and (runs / "cnn-k3-s0" / "train_state.pt").exists()
    assert not list(runs.glob(".fmnist-ray-*"))
    again = subprocess.run(args, cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(Run(runs / n).finished for n in ("mlp-s0", "cnn-k3-s0"))
    assert len(Run(runs / "cnn-k3-s0").metrics()) == 60


def test_a_node_that_cannot_see_the_runs_folder_stops_the_study(
    cluster_address: str, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker file the driver leaves in --runs is what a task looks for; without it (a node whose --runs is
    another folder of the same path) the study stops with one line."""
    real = runner_module.write_text
    monkeypatch.setattr(  # the driver writes its marker somewhere the tasks do not look
        runner_module, "write_text", lambda path, text: real(path.with_name(path.name + "-elsewhere"), text)
    )
    monkeypatch.chdir(tmp_path)
    res = cli.invoke(app, [*STUDY, "--data-dir", str(tiny_data), "--runs", "runs", "--ray", cluster_address])
    assert res.exit_code == 1, res.output
    line = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert line and "runs folder" in line[0] and "shared filesystem" in res.output  # the folder, and the fix
    assert "Traceback" not in res.output


def test_one_line_errors_within_seconds(tmp_path: Path, tiny_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    base = [*STUDY, "--data-dir", str(tiny_data), "--runs", "runs"]
    for extra, words in (
        (["--ray", "local", "--task-gpus", "0"], "--task-gpus must be more than 0 and at most 1, got 0"),
        (["--ray", "local", "--task-cpus", "0"], "--task-cpus must be at least 1, got 0"),
        (["--ray", " "], "--ray needs an address"),
    ):
        res = cli.invoke(app, [*base, *extra])
        assert res.exit_code == 2 and words in res.output, res.output
    t0 = time.monotonic()
    res = cli.invoke(app, [*base, "--ray", "127.0.0.1:1"])  # nothing listens there
    assert res.exit_code == 1 and "Ray" in res.output and "127.0.0.1:1" in res.output, res.output
    assert time.monotonic() - t0 < 20
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the [cluster] extra were not installed
    res = cli.invoke(app, [*base, "--ray", "local"])
    assert res.exit_code == 1 and "pip install 'fmnist-tui[cluster]'" in res.output, res.output
    assert not any(p.is_dir() for p in (tmp_path / "runs" / "quick").glob("*"))
    with pytest.raises(ClusterError):
        runner_module.import_ray()


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--device", "cuda"], "has no GPU"),
        (["--task-cpus", "64"], "--task-cpus 64: no node of the Ray cluster has that many CPUs (the most: 2)"),
    ],
)
def test_tasks_no_node_can_place_are_refused_at_once(
    extra: list[str], words: str, cluster_address: str, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task that asks for a GPU on a cluster that has none, or for more CPUs than any node has, would wait for
    ever; the driver says so at once, and leaves no run folder behind."""
    monkeypatch.chdir(tmp_path)
    t0 = time.monotonic()
    res = cli.invoke(app, [*STUDY, "--data-dir", str(tiny_data), "--runs", "runs", "--ray", cluster_address, *extra])
    assert res.exit_code == 1, res.output
    line = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert line and words in line[0], res.output
    assert time.monotonic() - t0 < 20 and "Traceback" not in res.output
    assert not any(p.is_dir() for p in (tmp_path / "runs" / "quick").glob("*"))
