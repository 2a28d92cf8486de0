"""The CLI as a user meets it: exit codes, one-line errors, no tracebacks, Ctrl-C and resume, output to a log."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.core.data import CLASSES

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--arch", "vit"], "'vit' is not one of"),
        (["--kernel", "4"], "valid: 3, 5, 7"),
        (["--arch", "mlp", "--kernel", "3"], "does not apply"),
        (["--epochs", "0"], "positive"),
        (["--batch-size", "-1"], "positive"),
    ],
)
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
    cmd = [
        sys.executable,
        "-m",
        "fmnist_tui",
        "train",
        "--arch",
        "cnn",
        "--epochs",
        "30",
        "--batch-size",
        "16",
        "--threads",
        "1",
        "--out",
        str(out),
        "--name",
        "cut",
    ]
    proc = subprocess.Popen(cmd, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "cut" / "metrics.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "fmnist train --resume" in stderr and "Traceback" not in stderr + stdout
    assert (out / "cut" / "train_state.pt").exists()
    resume = [
        sys.executable,
        "-m",
        "fmnist_tui",
        "train",
        "--resume",
        "--out",
        str(out),
        "--name",
        "cut",
        "--threads",
        "1",
    ]
    done = subprocess.run(resume, env=cli_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming at epoch" in done.stdout
    assert json.loads((out / "cut" / "summary.json").read_text())["finished"] is True
    assert os.path.exists(out / "cut" / "best.safetensors")


# --- output that is not a terminal: a log file or a pipe ------------------------------------------
NUMBER = r"[\d,]+(\.\d+)?"
EPOCH = (
    rf"epoch +\d+/(?P<of>\d+)  train loss {NUMBER} acc {NUMBER}  val loss {NUMBER} acc {NUMBER}  {NUMBER}s  "
    rf"{NUMBER} img/s(  best)?"
)
#: every line `fmnist train` prints, by how it starts and how it ends (its wording in between is free): a line
#: broken mid-way matches none of them, its head missing the end and its tail the start
TRAIN_LINES = [
    rf"\S+: .*{NUMBER} params .* → \S+",
    EPOCH,
    rf"done: test accuracy {NUMBER}% .* → \S+",
    r"next: fmnist evaluate \S+ .*fmnist export \S+",
]


@pytest.fixture
def pipe_env(cli_env: dict[str, str]) -> dict[str, str]:
    """cli_env as a log or a pipe sees it: no $COLUMNS, and nothing that turns colour on or off; a TERM
    that has colours, so ANSI codes would show if the CLI took the pipe for a terminal."""
    env = {k: v for k, v in cli_env.items() if k not in ("COLUMNS", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")}
    return {**env, "TERM": "xterm-256color"}


def run_logged(args: list[str], env: dict[str, str], log: Path | None = None) -> str:
    """Run `fmnist ARGS` with stdout to the file `log` (else a pipe) and stderr to a pipe; its stdout, checked
    for what only a terminal should get."""
    with open(log or os.devnull, "w") as file:
        done = subprocess.run(
            [sys.executable, "-m", "fmnist_tui", *args],
            env=env,
            text=True,
            timeout=300,
            stdout=file if log else subprocess.PIPE,
            stderr=subprocess.PIPE,
            check=False,
        )
    text = log.read_text() if log else done.stdout
    assert done.returncode == 0, done.stderr + text
    for junk in ("\r", "\x1b"):
        assert junk not in text + done.stderr, f"{junk!r} in the output"
    assert "" not in text.splitlines(), "a blank line (a progress bar's leftovers?)"
    return text


def test_a_ctrl_c_caught_inside_exec_still_exits_130(cli_env: dict[str, str], tmp_path: Path) -> None:
    """A second Ctrl-C can land in code CPython runs from a string (dataclasses' and namedtuple's exec while
    torch imports); caught there, it used to make `python -m fmnist_tui` die of SIGINT (-2) after printing
    its one line. The command's own 130 must win (a study's scheduler reads it)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "__main__.py").write_text(
        "from fmnist_tui import cli\n"
        "def interrupted(first):\n"
        "    try:\n"
        "        exec('raise KeyboardInterrupt')  # what the StopFlag raises on a second Ctrl-C, inside an exec\n"
        "    except KeyboardInterrupt:\n"
        "        raise SystemExit(130)\n"
        "cli._run = interrupted\n"
        "cli.main()\n"
    )
    env = {**cli_env, "PYTHONPATH": f"{tmp_path}{os.pathsep}{cli_env['PYTHONPATH']}"}
    done = subprocess.run([sys.executable, "-m", "probe", "train"], env=env, capture_output=True, text=True)
    assert done.returncode == 130, done.stderr


def test_train_to_a_log_file_is_one_whole_line_per_epoch(pipe_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "a-folder-name-long-enough-that-the-lines-pass-eighty-columns" / "runs"
    text = run_logged(
        ["train", "--arch", "mlp", "--epochs", "3", "--threads", "1", "--out", str(out)],
        pipe_env,
        tmp_path / "train.log",
    )
    lines = text.splitlines()
    assert len(lines) == 6 and max(map(len, lines)) > 80, text
    for line in lines:
        assert any(re.fullmatch(pattern, line) for pattern in TRAIN_LINES), f"a broken or unknown line: {line!r}"
    assert [re.fullmatch(EPOCH, line) is not None for line in lines] == [False, True, True, True, False, False]


def test_evaluate_and_export_to_a_pipe_keep_lines_and_class_names_whole(
    pipe_env: dict[str, str], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    run_logged(["train", "--arch", "mlp", "--epochs", "1", "--threads", "1", "--out", str(runs)], pipe_env)
    text = run_logged(["evaluate", "mlp-s0", "--runs", str(runs)], pipe_env)
    lines = text.splitlines()
    assert "…" not in text  # nothing truncated to fit a column
    assert any(re.fullmatch(r" *true \\ pred" + "".join(rf" +{j}" for j in range(10)) + " *", line) for line in lines)
    for i, name in enumerate(CLASSES):  # in full, in the per-class table and as a matrix row
        assert any(re.fullmatch(rf"│ {re.escape(name)} +│" + rf" +{NUMBER} │" * 4, line) for line in lines), name
        row = next(line for line in lines if line.strip().startswith(f"{i} {name} "))
        assert len(row.split()) == len(name.split()) + 1 + 10, row
    assert next(line for line in lines if line.startswith("most confused: ")).count("↔") == 3
    text = run_logged(
        ["export", "mlp-s0", "--runs", str(runs), "--out", str(tmp_path / "export"), "--threads", "1"], pipe_env
    )
    # whole lines: each begins with its head and ends with its last number or path
    assert re.search(r"^exported mlp-s0 → \S+\.onnx .*[\d.]+s$", text, re.MULTILINE), text
    assert re.search(r"^  onnxruntime .* [\d.]+%$", text, re.MULTILINE), text
    assert re.search(r"^manifest: \S+ .*fmnist predict .*\S+\.onnx$", text, re.MULTILINE), text


def test_a_study_to_a_log_file_writes_whole_lines(pipe_env: dict[str, str], tmp_path: Path) -> None:
    args = ["study", "kernel", "--archs", "mlp", "--seeds", "1", "--epochs", "2", "--subset", "64"]
    args += ["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    lines = run_logged(args, pipe_env, tmp_path / "study.log").splitlines()
    assert any(re.fullmatch(r"\[1/1\] mlp-s0: .*[\d.]+%", line) for line in lines), lines
    assert any(re.fullmatch(r"analysed 1 run.* → \S+results\.md.*provenance\.json", x) for x in lines), lines
    table = [line for line in lines if line.startswith(tuple("┏┃┡│└"))]
    assert table and all(line.endswith(tuple("┓┃┩│┘")) for line in table)  # a wrapped table row would end mid-cell
