"""`fmnist study` on the local pool (study/runner.py): the plan and its statuses, reuse and resume, every
termination signal leaving each run resumable, two studies on one runs folder, and one-line bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fmnist_tui.core import registry
from fmnist_tui.core.config import TrainConfig
from fmnist_tui.core.errors import RunError, UsageError
from fmnist_tui.core.runs import Run
from fmnist_tui.study.plan import DONE, NEW, RESTART, RESUME, plan, status


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


def stop_after(batches: int) -> Callable[[], bool]:
    """A should_stop that says stop once `batches` steps ran."""
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] > batches

    return should_stop


@pytest.mark.slow
def test_status_of_runs_and_the_trainers_own_choice(tiny_data: Path, tmp_path: Path) -> None:
    """`resume="auto"` (what the runner asks) trains a new run, resumes an interrupted one, reports a finished
    one untouched, and refuses a folder of another recipe: decided under the run's lock."""
    from fmnist_tui.training.trainer import AUTO, train

    cfg = TrainConfig.create(
        arch="mlp", epochs=2, subset=64, out=str(tmp_path / "r"), data_dir=str(tiny_data), threads=1, batch_size=32
    )
    assert status(cfg) == NEW
    assert train(cfg, should_stop=stop_after(3), resume=AUTO).interrupted
    assert status(cfg) == RESUME
    done = train(cfg, resume=AUTO)
    assert not done.reused and status(cfg) == DONE and len(Run(cfg.run_dir).metrics()) == 2
    summary = cfg.run_dir / "summary.json"
    before = summary.stat().st_mtime_ns
    again = train(cfg, resume=AUTO)
    assert again.reused and again.summary == Run(cfg.run_dir).summary() and summary.stat().st_mtime_ns == before
    with pytest.raises(RunError, match=r"another recipe.*epochs 2 ≠ 3"):
        status(cfg.with_changes(epochs=3))
    with pytest.raises(RunError, match=r"another recipe.*epochs 2 ≠ 3"):
        train(cfg.with_changes(epochs=3), resume=AUTO)
    Run(cfg.run_dir).file("summary.json").unlink()
    Run(cfg.run_dir).file("train_state.pt").unlink()
    assert status(cfg) == RESTART


def study_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fmnist_tui", "study", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


TINY = ["kernel", "--archs", "mlp", "--epochs", "1", "--seeds", "2", "--subset", "64", "--runs", "runs", "--out", "out"]


@pytest.mark.slow
def test_a_study_trains_then_reuses_and_reports_latency(cli_env: dict[str, str], tmp_path: Path) -> None:
    res = study_cli([*TINY, "--jobs", "2", "--latency"], cli_env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "[1/2] mlp-s" in res.stdout and "trained in" in res.stdout
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["table"][0]["config"] == "mlp" and doc["table"][0]["n"] == 2 and doc["schema"] == 2
    # latency is measured on a model exported by `fmnist export`'s pipeline, never estimated
    assert 0 < doc["table"][0]["latency_ms"] < 100 and (tmp_path / "out" / "onnx" / "mlp-s0.onnx").is_file()
    assert (tmp_path / "out" / "results.md").read_text().startswith("## Results by config")
    provenance = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert [r["run"] for r in provenance["runs"]] == ["mlp-s0", "mlp-s1"]
    assert all(r["source"] == "yours" and r["machine"]["cores"] >= 1 and r["finished_at"] for r in provenance["runs"])
    summary = tmp_path / "runs" / "mlp-s0" / "summary.json"
    before = summary.stat().st_mtime_ns
    again = study_cli(TINY, cli_env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert summary.stat().st_mtime_ns == before and "trained in" not in again.stdout  # reused, not retrained
    assert "(2 done)" in again.stdout and "analysed 2 runs: 2 yours" in again.stdout


@pytest.mark.slow
def test_a_study_resumes_interrupted_runs(cli_env: dict[str, str], tiny_data: Path, tmp_path: Path) -> None:
    from fmnist_tui.training.trainer import train

    runs = tmp_path / "runs"
    cfg = plan(["mlp"], {"kernel": [3]}, 2, 2, runs, subset=64)[0].with_changes(threads=1)
    assert train(cfg.with_changes(data_dir=str(tiny_data)), should_stop=stop_after(1)).interrupted
    # mlp-s1 stopped before it saved any state: only its config.json exists
    (runs / "mlp-s1").mkdir()
    (runs / "mlp-s1" / "config.json").write_text(json.dumps(cfg.with_changes(seed=1).to_dict()))
    args = [*TINY[:4], "2", *TINY[5:]]  # 2 epochs
    dry = study_cli([*args, "--dry-run"], cli_env, tmp_path)
    assert "mlp-s0: resume" in dry.stdout and "mlp-s1: restart" in dry.stdout, dry.stdout + dry.stderr
    res = study_cli([*args, "--jobs", "1"], cli_env, tmp_path)
    assert res.returncode == 0, res.stderr
    for name in ("mlp-s0", "mlp-s1"):
        assert Run(runs / name).finished and [r["epoch"] for r in Run(runs / name).metrics()] == [1, 2]


def wait_for(check: Callable[[], object], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


LONG = ["kernel", "--archs", "mlp", "--epochs", "400", "--seeds", "3", "--subset", "64", "--jobs", "2"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "group"),
    [(signal.SIGINT, True), (signal.SIGTERM, False), (signal.SIGHUP, True)],
    ids=["ctrl-c", "kill-term", "terminal-closed"],
)
def test_every_termination_signal_leaves_each_run_resumable(
    sig: signal.Signals, group: bool, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Ctrl-C reaches the whole foreground group, `kill -TERM` the study alone, a closed terminal the group's
    SIGHUP: every time, the trainings save their state and stop, the one not started is left alone, and the
    same command continues them all."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fmnist_tui", "study", *LONG, "--runs", "runs", "--out", "out"],
        env=cli_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    runs = tmp_path / "runs"
    wait_for(lambda: len(list(runs.glob("mlp-s*/metrics.csv"))) == 2)
    os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "fmnist study kernel" in err and "Traceback" not in err  # the command that continues it
    started = [Run(p) for p in sorted(runs.iterdir())]
    assert len(started) == 2 and all(r.file("train_state.pt").exists() and not r.finished for r in started)
    assert subprocess.run(["pgrep", "-f", f"spawn_main.*{proc.pid}"], capture_output=True).returncode != 0
    dry = study_cli([*LONG, "--runs", "runs", "--out", "out", "--dry-run"], cli_env, tmp_path)
    assert dry.stdout.count(": resume") == 2 and "mlp-s2: new" in dry.stdout, dry.stdout


@pytest.mark.slow
def test_two_studies_on_one_runs_folder_share_it(cli_env: dict[str, str], tmp_path: Path) -> None:
    """The second study skips (and names) what the first is training, trains the rest, and neither leaves a run
    that cannot continue: the first's runs resume once it is stopped and called again."""
    args = ["kernel", "--archs", "mlp", "--epochs", "150", "--seeds", "2", "--subset", "64", "--jobs", "1"]
    args += ["--runs", "runs"]
    first = subprocess.Popen(
        [sys.executable, "-m", "fmnist_tui", "study", *args, "--out", "out1"],
        env=cli_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: (tmp_path / "runs" / "mlp-s0" / "metrics.csv").exists())
    second = study_cli([*args, "--out", "out2"], cli_env, tmp_path)
    assert second.returncode == 1, second.stdout + second.stderr
    assert "mlp-s0: skipped: another process" in second.stderr and "Traceback" not in second.stderr
    assert Run(tmp_path / "runs" / "mlp-s1").finished
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=120)
    again = study_cli([*args, "--out", "out1"], cli_env, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(Run(tmp_path / "runs" / f"mlp-s{s}").finished for s in (0, 1))


@pytest.mark.slow
def test_bad_input_is_one_line_before_any_work(cli_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    for args, code, words in (
        (["kernel", "--seeds", "0"], 2, "--seeds must be a positive integer"),
        (["kernel", "--kernels", "3,x"], 2, "--kernels takes integers"),
        (["kernel", "--jobs", "0"], 2, "--jobs must be at least 1"),
        (["locality", "--archs", "mlp"], 2, "the locality study's configs are fixed"),
        (["kernel", "--archs", "mlp", "--out", "a-file"], 1, "--out a-file cannot be written (is a file)"),
        (["kernel", "--archs", "mlp", "--runs", "a-file"], 1, "--runs a-file"),
    ):
        res = study_cli(args, cli_env, tmp_path, timeout=60)
        assert res.returncode == code and words in res.stderr, (args, res.stdout, res.stderr)
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert "Traceback" not in res.stderr and len(errors) == 1 and words in errors[0], res.stderr
    assert not (tmp_path / "checkpoints").exists()  # nothing was trained for any of them


def test_experiment_points_at_the_kernel_study() -> None:
    from typer.testing import CliRunner

    from fmnist_tui.cli import app

    res = CliRunner().invoke(app, ["experiment", "--archs", "mlp", "--seeds", "2"])
    assert res.exit_code == 2
    said = " ".join(res.output.split())  # however the width wrapped it; it names the new command
    assert said.startswith("error:") and "fmnist study kernel --archs mlp --seeds 2" in said, res.output
