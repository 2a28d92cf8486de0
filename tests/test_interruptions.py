"""No interruption leaves a dead end: whatever state a kill, a Ctrl-C (or two), a full disk or a second
process leaves a run folder in, the command `fmnist train` printed (or, after a kill that printed nothing,
`--resume`) continues the run, and it ends with exactly the weights and metrics of a straight run.

The interrupted trainings are processes (a kill, a signal, a hook that kills in the middle of a write); what
continues them runs in this process (CliRunner): the command is what is tested there, not its process."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.core.runs import Run, RunLock
from tests.conftest import ROOT, make_tiny_dataset

pytestmark = pytest.mark.slow  # real processes and signals throughout

runner = CliRunner()
#: the straight run's outcome, how long its process took to start training, and how long it then trained
Straight = tuple[tuple[str, list[list[str]]], float, float]
RECIPE = ["--arch", "cnn", "--epochs", "3", "--subset", "512", "--batch-size", "32", "--threads", "1"]
#: SIGKILLs itself when a file named FMNIST_TEST_KILL_AT ("name:n") is renamed into place for the n-th time,
#: i.e. after its temporary twin is fully written and before the rename: a kill in the middle of a write
KILL_HOOK = """
import os, signal
_at = os.environ.get("FMNIST_TEST_KILL_AT")
if _at:
    _name, _nth = _at.rsplit(":", 1)
    _seen, _replace = [0], os.replace
    def _killing_replace(src, dst, *args, **kwargs):
        if os.path.basename(str(dst)) == _name:
            _seen[0] += 1
            if _seen[0] == int(_nth):
                os.kill(os.getpid(), signal.SIGKILL)
        return _replace(src, dst, *args, **kwargs)
    os.replace = _killing_replace
"""


def situation(run: Run) -> str:
    """What a kill left: nothing, a config only, a saved state, or a finished run."""
    if run.finished:
        return "finished"
    if run.file("train_state.pt").exists():
        return "state saved"
    return "config only" if run.file("config.json").exists() else "nothing"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outcome(run: Path) -> tuple[str, list[list[str]]]:
    """The final weights and metrics.csv without its timing columns: what must not depend on interruptions."""
    rows = [line.split(",")[:6] for line in (run / "metrics.csv").read_text().splitlines()]
    return digest(run / "last.safetensors"), rows


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of every `fmnist` here: the synthetic data (made once for the module; its hashes are not
    Fashion-MNIST's), this checkout, and the kill hook."""
    base = tmp_path_factory.mktemp("interruptions")
    hook = base / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_HOOK)
    return {
        **os.environ,
        "FMNIST_VERIFY": "0",
        "FMNIST_DATA": str(make_tiny_dataset(base / "data")),
        "PYTHONPATH": f"{hook}{os.pathsep}{ROOT}",
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }


def fmnist(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fmnist_tui", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def here(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """`fmnist ARGS` in this process, in `cwd`, on `env`'s data: its exit code and stderr (an exception it let
    out fails the test with its traceback)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        result = runner.invoke(app, args, env={k: env[k] for k in ("FMNIST_DATA", "FMNIST_VERIFY", "COLUMNS")})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stderr


def continue_run(name: str, env: dict[str, str], cwd: Path, printed: str = "") -> None:
    """Continue with the command the interrupted process printed; after a silent kill, with --resume, or
    with the plain command where --resume says there is nothing to resume (never neither)."""
    if "run the same command again: " in printed:
        args = shlex.split(printed.split("run the same command again: ", 1)[1].strip())[1:]
    elif "Resume with: " in printed:
        args = shlex.split(printed.split("Resume with: ", 1)[1].strip())[1:]
    else:
        args = ["train", "--resume", "--out", "runs", "--name", name]
    code, err = here(args, env, cwd)
    if not printed and code == 1 and "start it without --resume" in err:
        args = ["train", *RECIPE, "--out", "runs", "--name", name]
        code, err = here(args, env, cwd)
    assert code == 0, f"{shlex.join(args)} after the interruption: exit {code}\n{err}"
    assert "Traceback" not in err


def wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    """Until `path` exists (or the process ended)."""
    while not path.exists() and proc.poll() is None:
        time.sleep(0.005)


@pytest.fixture(scope="module")
def straight(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Straight:
    """A run trained without interruption (once for the module: every test compares with it); how long its
    process took to start training (config.json written), and how long the training then took (until
    summary.json)."""
    cwd = tmp_path_factory.mktemp("straight")
    t0 = time.monotonic()
    proc = fmnist(["train", *RECIPE, "--out", "runs", "--name", "straight"], env, cwd)
    wait_for(cwd / "runs" / "straight" / "config.json", proc)
    t1 = time.monotonic()
    wait_for(cwd / "runs" / "straight" / "summary.json", proc)
    t2 = time.monotonic()
    code, _, err = finish(proc)
    assert code == 0, err
    return outcome(cwd / "runs" / "straight"), t1 - t0, t2 - t1


def test_killed_at_10_random_moments_a_run_always_continues_to_the_same_result(
    env: dict[str, str], tmp_path: Path, straight: Straight
) -> None:
    """Half the kills fall anywhere in the process's life, half while it trains (after config.json). (The kills
    in the middle of each file's write are the next test's: these moments sample the rest.)"""
    expected, start, training = straight
    moments = random.Random(20261125).sample(range(1, 1000), 10)
    continued, found = 0, []
    for i, permille in enumerate(moments):
        run = Run(tmp_path / "runs" / f"k{i}")
        proc = fmnist(["train", *RECIPE, "--out", "runs", "--name", run.name], env, tmp_path)
        if i % 2:
            wait_for(run.file("config.json"), proc)
            time.sleep(training * permille / 1000)
        else:
            time.sleep((start + training) * permille / 1000)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        found.append(situation(run))
        if not run.finished:  # a kill after the run finished leaves nothing to continue
            continue_run(run.name, env, tmp_path)
        assert outcome(run.path) == expected, f"killed at {permille / 10:.1f}% of a run ({found[-1]})"
        continued += 1
    print(f"killed at 10 moments, continued {continued} of 10:", Counter(found))
    assert continued == 10


@pytest.mark.parametrize(
    "at",
    [
        "config.json:1",
        "train_state.pt:1",
        "train_state.pt:2",
        "last.safetensors:2",
        "metrics.csv:2",
        "best.safetensors:1",
        "summary.json:1",
    ],
)
def test_killed_in_the_middle_of_a_write_a_run_continues(
    env: dict[str, str], tmp_path: Path, straight: Straight, at: str
) -> None:
    code, _, _ = finish(
        fmnist(["train", *RECIPE, "--out", "runs", "--name", "w"], {**env, "FMNIST_TEST_KILL_AT": at}, tmp_path)
    )
    assert code == -signal.SIGKILL, f"the hook did not fire at {at}"
    continue_run("w", env, tmp_path)
    assert outcome(tmp_path / "runs" / "w") == straight[0]
    assert not list((tmp_path / "runs" / "w").glob(".*.tmp"))  # no temporary file left behind


@pytest.mark.parametrize("delay,signals", [(0.3, 1), (0.3, 2), (1.5, 1), (1.5, 2)])
def test_ctrl_c_at_start_prints_a_command_that_works(
    env: dict[str, str],
    tmp_path: Path,
    straight: Straight,
    delay: float,
    signals: int,
) -> None:
    """One or two Ctrl-C while torch or the dataset loads: exit 130, one line, and the command it names works."""
    proc = fmnist(["train", *RECIPE, "--out", "runs", "--name", "c"], env, tmp_path)
    time.sleep(delay)
    for _ in range(signals):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
    code, _, err = finish(proc)
    if code == 0:
        pytest.skip("the run finished before the signal")  # a very fast machine: nothing to test
    assert code == 130 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert "Resume with: fmnist train --resume" in last or "run the same command again: fmnist train" in last, err
    continue_run("c", env, tmp_path, printed=last)
    assert outcome(tmp_path / "runs" / "c") == straight[0]


def test_a_second_training_into_the_same_run_is_refused_naming_the_first(env: dict[str, str], tmp_path: Path) -> None:
    """While one process trains a run (long enough to outlast the test), a second train or --resume of it is
    one line naming the first's PID; once the first is killed, its lock is gone with it."""
    first = fmnist(["train", *RECIPE, "--epochs", "1000", "--out", "runs", "--name", "busy"], env, tmp_path)
    lock = tmp_path / "runs" / "busy" / ".lock"
    deadline = time.monotonic() + 60
    while not (lock.is_file() and lock.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        for args in (
            ["train", *RECIPE, "--out", "runs", "--name", "busy"],
            ["train", "--resume", "--out", "runs", "--name", "busy"],
        ):
            code, err = here(args, env, tmp_path)
            lines = err.strip().splitlines()
            assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), err
            assert "'busy'" in lines[0] and f"PID {first.pid}" in lines[0] and "--name" in lines[0], err
        assert first.poll() is None  # still training: the refusals were real
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    with RunLock(Run(tmp_path / "runs" / "busy")):  # the lock died with its process
        pass


def test_a_full_disk_is_one_line_and_keeps_the_last_saved_state(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while the second epoch's state is written: one line naming the file and the fix; the first
    epoch's state stays and --resume finishes the run."""
    from fmnist_tui.training import state

    args = ["--out", str(tmp_path / "runs"), "--name", "full", "--data-dir", str(tiny_data)]
    real, calls = state.write_bytes, {"state": 0}

    def filling(path: Path, data: bytes) -> None:
        if Path(path).name == "train_state.pt":
            calls["state"] += 1
            if calls["state"] == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, data)

    monkeypatch.setattr(state, "write_bytes", filling)
    res = runner.invoke(app, ["train", *RECIPE, *args])
    assert res.exit_code == 1 and "Traceback" not in res.output
    line = res.stderr.strip().splitlines()
    assert len(line) == 1 and line[0].startswith("error: ") and "no space" in line[0]
    assert "train_state.pt" in line[0] and "--resume" in line[0]  # the file it could not write, and the fix
    monkeypatch.setattr(state, "write_bytes", real)
    done = runner.invoke(app, ["train", "--resume", "--out", str(tmp_path / "runs"), "--name", "full"])
    assert done.exit_code == 0, done.output
