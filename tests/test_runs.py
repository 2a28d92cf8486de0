"""Run folders read defensively: a damaged or hostile config.json, summary.json or metrics.csv is one
line naming the file, never a traceback (RecursionError, ValueError...)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.core.errors import RunError
from fmnist_tui.core.runs import Run

runner = CliRunner()
DEEP = "[" * 100_000 + "]" * 100_000  # ~200 KB of JSON nested 100k levels: json's parser recurses


def fake_run(root: Path, config: str, summary: str | None = None, metrics: str | None = None) -> Run:
    path = root / "cnn-k3-s0"
    path.mkdir(parents=True)
    (path / "config.json").write_text(config)
    if summary is not None:
        (path / "summary.json").write_text(summary)
    if metrics is not None:
        (path / "metrics.csv").write_text(metrics)
    return Run(path)


@pytest.mark.parametrize("which", ["config", "summary"])
def test_deeply_nested_json_is_a_one_line_error(tmp_path: Path, which: str) -> None:
    good = json.dumps({"arch": "cnn", "kernel": 3, "finished": True, "test_accuracy": 0.9})
    run = fake_run(tmp_path, DEEP if which == "config" else good, DEEP if which == "summary" else good)
    with pytest.raises(RunError, match=f"{which}.json: the {which} file is corrupted \\(nested too deeply\\)"):
        run.config() if which == "config" else run.summary()
    shown = runner.invoke(app, ["results", "--runs", str(tmp_path)])
    assert "Traceback" not in shown.output and f"skipped cnn-k3-s0: {run.path / f'{which}.json'}" in shown.stderr
    evaluated = runner.invoke(app, ["evaluate", "cnn-k3-s0", "--runs", str(tmp_path)])
    if which == "config":  # evaluate rebuilds the model from config.json
        assert evaluated.exit_code == 1 and "nested too deeply" in evaluated.stderr
    assert "Traceback" not in evaluated.output


@pytest.mark.parametrize(
    "metrics",
    [
        "epoch,train_loss\nx,y\n",
        "\x00\xff garbage \x00\n1,2,3\n",
        "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_s\n1,0.5\n",
    ],
)
def test_garbage_metrics_is_a_one_line_error(tmp_path: Path, metrics: str) -> None:
    run = fake_run(tmp_path, json.dumps({"arch": "cnn", "kernel": 3}), metrics=metrics)
    with pytest.raises(RunError, match=r"metrics\.csv: the metrics file"):
        run.metrics()


def test_a_run_folder_is_locked_while_a_process_trains_it(tmp_path: Path) -> None:
    """The lock names the holder's PID, is released on exit, and dies with a killed process."""
    import os
    import signal
    import subprocess
    import sys

    from fmnist_tui.core.runs import RunLock

    run = Run(tmp_path / "cnn-k3-s0")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from pathlib import Path; from fmnist_tui.core.runs import Run, RunLock\n"
                f"with RunLock(Run(Path({str(run.path)!r}))):\n    print('held', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunError, match=rf"being trained by another process \(PID {holder.pid}\)"), RunLock(run):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the killed holder left no stale lock; a second holder in the same process is refused too (flock is per open
    # file description)
    with RunLock(run), pytest.raises(RunError, match=f"PID {os.getpid()}"), RunLock(run):
        pass
