"""The trainer: run folder contents, determinism, interruption and exact resume, extension."""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.core.config import TrainConfig, resume_config
from fmnist_tui.core.errors import RunError
from fmnist_tui.core.events import BatchProgress, EpochEnd, Finished, Interrupted, RunStarted
from fmnist_tui.core.runs import METRIC_COLUMNS
from fmnist_tui.training import trainer
from fmnist_tui.training.recipe import Segment, augment, lr_at
from fmnist_tui.training.state import STATE_VERSION, load_state, save_state
from fmnist_tui.training.trainer import train
from tests.conftest import make_tiny_dataset


def cfg_for(tmp_path: Path, data: Path, **kw: object) -> TrainConfig:
    base = dict(
        arch="cnn", kernel=3, epochs=3, batch_size=32, seed=0, out=str(tmp_path / "runs"), data_dir=str(data), threads=1
    )
    base.update(kw)
    return TrainConfig.create(**base)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_run_folder_follows_the_contract(tmp_path: Path, tiny_data: Path) -> None:
    events: list[object] = []
    result = train(cfg_for(tmp_path, tiny_data, epochs=2), events.append)
    run = result.run
    for name in (
        "config.json",
        "metrics.csv",
        "best.safetensors",
        "last.safetensors",
        "train_state.pt",
        "summary.json",
    ):
        assert run.file(name).is_file(), name
    assert not list(run.path.glob("*.tmp")) and [p.name for p in run.path.glob(".*")] == [".lock"]  # no temp files
    rows = run.metrics()
    assert [r["epoch"] for r in rows] == [1, 2] and set(rows[0]) == set(METRIC_COLUMNS)
    cfg = run.config()
    assert cfg["arch"] == "cnn" and cfg["kernel"] == 3 and cfg["params"] == 421_642 and len(cfg["dataset_sha256"]) == 4
    assert "torch" in cfg["versions"] and cfg["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    s = run.summary()
    assert s["finished"] and 0 <= s["test_accuracy"] <= 1 and len(s["per_class"]) == 10
    assert sum(map(sum, s["confusion_matrix"])) == 100
    kinds = [type(e) for e in events]
    assert kinds[0] is RunStarted and kinds[-1] is Finished and kinds.count(EpochEnd) == 2
    assert kinds.count(BatchProgress) == 2 * math.ceil(8 / trainer.SYNC_EVERY)  # 8 batches an epoch


def test_progress_comes_once_per_sync_with_the_mean_loss_since_the_last(
    tmp_path: Path, tiny_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trainer, "SYNC_EVERY", 3)
    events: list[object] = []
    run = train(cfg_for(tmp_path, tiny_data, epochs=1), events.append).run
    progress = [e for e in events if isinstance(e, BatchProgress)]
    assert [e.batch for e in progress] == [3, 6, 8]  # every 3 steps, and always the epoch's last batch
    n = run.config()["train_images"]
    images = [min(e.batch * 32, n) - min(p * 32, n) for e, p in zip(progress, [0, 3, 6], strict=False)]
    weighted = sum(e.loss * k for e, k in zip(progress, images, strict=False)) / n
    assert weighted == pytest.approx(run.metrics()[0]["train_loss"], rel=1e-9)


@pytest.mark.slow
def test_learns_the_synthetic_task(tmp_path: Path, tiny_data: Path) -> None:
    s = train(cfg_for(tmp_path, tiny_data, arch="mlp", kernel=None, epochs=8, lr=3e-3)).summary
    assert s is not None and s["test_accuracy"] >= 0.9


@pytest.mark.slow
def test_same_seed_same_weights_and_metrics(tmp_path: Path, tiny_data: Path) -> None:
    a = train(cfg_for(tmp_path, tiny_data, name="a")).run
    b = train(cfg_for(tmp_path, tiny_data, name="b")).run
    c = train(cfg_for(tmp_path, tiny_data, name="c", seed=1)).run
    assert digest(a.file("last.safetensors")) == digest(b.file("last.safetensors"))

    def strip(rows: list[dict[str, float]]) -> list[dict[str, float]]:
        return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in rows]

    assert strip(a.metrics()) == strip(b.metrics())
    assert digest(a.file("last.safetensors")) != digest(c.file("last.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "stop_after,sync_every",
    [
        (5, 16),
        (8, 16),
        (13, 16),  # mid-epoch before any read of the sums, at an epoch boundary, in the second epoch
        (5, 3),
        (12, 3),  # between two reads: the steps since the last read must be saved too
    ],
)
def test_interrupted_then_resumed_equals_straight(
    tmp_path: Path, tiny_data: Path, stop_after: int, sync_every: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trainer, "SYNC_EVERY", sync_every)
    straight = train(cfg_for(tmp_path, tiny_data, name="straight")).run
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > stop_after

    events: list[object] = []
    first = train(cfg_for(tmp_path, tiny_data, name="cut"), events.append, stop)
    assert first.interrupted and first.summary is None and isinstance(events[-1], Interrupted)
    assert not first.run.finished
    with pytest.raises(RunError, match="interrupted; continue it with resume"):
        train(cfg_for(tmp_path, tiny_data, name="cut"))
    resumed = train(resume_config(first.run.path), resume=True)
    assert resumed.summary is not None
    a, b = load_file(str(straight.file("last.safetensors"))), load_file(str(resumed.run.file("last.safetensors")))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["val_acc"] for r in straight.metrics()] == [r["val_acc"] for r in resumed.run.metrics()]
    assert [r["train_loss"] for r in straight.metrics()] == [r["train_loss"] for r in resumed.run.metrics()]


@pytest.mark.slow
def test_finished_run_is_not_overwritten_and_can_be_extended(tmp_path: Path, tiny_data: Path) -> None:
    run = train(cfg_for(tmp_path, tiny_data, epochs=2)).run
    before = {p.name: digest(p) for p in run.path.iterdir()}
    with pytest.raises(RunError, match="already finished"):
        train(cfg_for(tmp_path, tiny_data, epochs=2))
    assert before == {p.name: digest(p) for p in run.path.iterdir()}
    with pytest.raises(RunError, match="set epochs above 2 to extend it"):
        train(resume_config(run.path), resume=True)
    extended = train(resume_config(run.path, epochs=4), resume=True)
    assert [r["epoch"] for r in extended.run.metrics()] == [1, 2, 3, 4]
    assert extended.summary is not None and extended.summary["epochs"] == 4


def test_reuse_keeps_a_finished_run_resumes_an_interrupted_one_and_refuses_another_recipe(
    tmp_path: Path, tiny_data: Path
) -> None:
    """`fmnist train --reuse` (what `make models` runs): the same command twice trains once; an interrupted run
    is resumed to the end; a folder holding another recipe is one line, exit 1, and is left as it was."""
    cfg = cfg_for(tmp_path, tiny_data, epochs=2)
    args = ["train", "--arch", "cnn", "--epochs", "2", "--batch-size", "32", "--threads", "1", "--out", cfg.out]
    args += ["--data-dir", str(tiny_data), "--reuse"]
    stops = {"n": 0}

    def stop() -> bool:
        stops["n"] += 1
        return stops["n"] > 3

    cut = train(cfg, None, stop)
    assert cut.interrupted and not cut.run.finished
    resumed = CliRunner().invoke(app, args)
    assert resumed.exit_code == 0 and "resuming at epoch" in resumed.output, resumed.output
    assert cut.run.finished and [r["epoch"] for r in cut.run.metrics()] == [1, 2]
    before = {p.name: digest(p) for p in cut.run.path.iterdir()}
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "reusing" in again.output and "already trained" in again.output, again.output
    other = CliRunner().invoke(app, [*args[:4], "3", *args[5:]])
    assert other.exit_code == 1 and re.search(r"\bepochs 2\b.*\b3\b", other.output), other.output  # what differs
    assert "Traceback" not in other.output
    assert before == {p.name: digest(p) for p in cut.run.path.iterdir()}
    both = CliRunner().invoke(app, [*args, "--resume"])
    assert both.exit_code == 2 and "drop --resume" in both.output


def test_resume_without_a_run_and_unwritable_out(tmp_path: Path, tiny_data: Path) -> None:
    with pytest.raises(RunError, match="no run to resume"):
        train(cfg_for(tmp_path, tiny_data), resume=True)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunError, match="not writable"):
        train(cfg_for(tmp_path, tiny_data, out=str(blocker / "sub")))


def test_augment_flip_and_shift() -> None:
    img = torch.zeros(1, 28, 28, dtype=torch.uint8)
    img[0, 10, 3] = 255
    flipped = augment(img, torch.tensor([True]), torch.tensor([[0, 0]]), 2)
    assert flipped[0, 10, 24] == 255
    shifted = augment(img, torch.tensor([False]), torch.tensor([[1, -2]]), 2)
    assert shifted[0, 9, 5] == 255 and shifted.sum() == 255


def test_schedule_warms_up_then_decays() -> None:
    seg = [Segment(start=0, end=100, peak=1.0, warmup=0.1)]
    lrs = [lr_at(s, seg) for s in range(100)]
    assert lrs[9] == pytest.approx(1.0) and lrs[0] < 0.2 and lrs[-1] < 1e-3
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))  # after the warm-up


def test_state_round_trips_through_its_file(tmp_path: Path, tiny_data: Path) -> None:
    run = train(cfg_for(tmp_path, tiny_data, arch="mlp", kernel=None, epochs=1)).run
    saved = load_state(run)
    assert saved.state.epoch_done == 1 and saved.state.step == 8 and saved.state.segments[0].end == 8
    copy = tmp_path / "copy.pt"
    save_state(copy, saved)
    raw, again = torch.load(run.file("train_state.pt"), weights_only=True), torch.load(copy, weights_only=True)
    assert raw["version"] == STATE_VERSION and set(raw) == set(again) and raw["partial"] == again["partial"]


def _bad_state(raw: dict[str, Any], case: str) -> object:
    """A train_state.pt payload that a resume must refuse with one line."""
    if case == "older":
        return {**raw, "version": STATE_VERSION - 1}
    if case == "newer":
        return {**raw, "version": STATE_VERSION + 1}
    if case == "missing key":
        return {k: v for k, v in raw.items() if k != "segments"}
    if case == "wrong type":
        return {**raw, "partial": {**raw["partial"], "seen": "250"}}
    return {"empty": {}, "list": [1, 2, 3]}[case]


@pytest.mark.parametrize(
    "case,needles",
    [
        (
            "older",
            [
                f"training state version {STATE_VERSION - 1} is older than the version {STATE_VERSION}",
                "resume it with the fmnist that wrote it, or retrain it under another --name",
            ],
        ),
        (
            "newer",
            [
                f"training state version {STATE_VERSION + 1} is newer than the version {STATE_VERSION}",
                "upgrade fmnist to resume it",
            ],
        ),
        (
            "empty",
            [
                "training state has the wrong shape ('version' is missing)",
                "delete its folder to train it again, or choose another --name",
            ],
        ),
        (
            "list",
            [
                "training state has the wrong shape (the file holds a list, not a dict)",
                "delete its folder to train it again, or choose another --name",
            ],
        ),
        ("missing key", ["wrong shape ('segments' is missing)"]),
        ("wrong type", ["wrong shape ('partial.seen' is a str, expected int)"]),
    ],
)
def test_resume_refuses_a_foreign_or_misshapen_state_in_one_line(
    tmp_path: Path, tiny_data: Path, case: str, needles: list[str]
) -> None:
    cfg = cfg_for(tmp_path, tiny_data, arch="mlp", kernel=None, epochs=1)
    state_file = train(cfg).run.file("train_state.pt")
    torch.save(_bad_state(torch.load(state_file, weights_only=True), case), state_file)
    result = CliRunner().invoke(app, ["train", "--resume", "--epochs", "2", "--out", cfg.out, "--name", cfg.run_name])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith(f"error: {state_file}: "), result.output
    assert all(needle in lines[0] for needle in needles) and "Traceback" not in result.output


def test_resume_refuses_an_optimizer_state_that_does_not_fit(tmp_path: Path, tiny_data: Path) -> None:
    run = train(cfg_for(tmp_path, tiny_data, arch="mlp", kernel=None, epochs=1)).run
    raw = torch.load(run.file("train_state.pt"), weights_only=True)
    torch.save({**raw, "optimizer": {}}, run.file("train_state.pt"))
    with pytest.raises(RunError, match="wrong shape \\(model, optimizer or RNG state does not fit"):
        train(resume_config(run.path, epochs=2), resume=True)
    assert [r["epoch"] for r in run.metrics()] == [1]  # nothing was trained or written


def test_resume_refuses_another_architectures_state_in_one_line(tmp_path: Path, tiny_data: Path) -> None:
    mlp = train(cfg_for(tmp_path, tiny_data, arch="mlp", kernel=None, epochs=1)).run
    cnn = train(cfg_for(tmp_path, tiny_data, epochs=1)).run
    cnn.file("train_state.pt").write_bytes(mlp.file("train_state.pt").read_bytes())
    result = CliRunner().invoke(
        app, ["train", "--resume", "--epochs", "2", "--out", str(cnn.path.parent), "--name", cnn.name]
    )
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith(f"error: {cnn.file('train_state.pt')}") and "shape" in lines[0], result.output


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished one-epoch cnn-k3 run (batch 32, so its peak learning rate is 0.0005) on the synthetic data."""
    base = tmp_path_factory.mktemp("resume")
    data = make_tiny_dataset(base / "data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FMNIST_VERIFY", "0")
        return train(cfg_for(base, data, epochs=1)).run.path


@pytest.mark.parametrize(
    "args,saved",
    [
        (["--kernel", "5"], "kernel 3"),
        (["--arch", "mlp"], "arch cnn"),
        (["--arch", "lcn"], "arch cnn"),
        (["--lr", "0.01"], "lr 0.0005"),
        (["--shift", "2"], "shift 0"),
        (["--batch-size", "64"], "batch_size 32"),
        (["--subset", "64"], "subset (none)"),
        (["--no-augment"], "hflip True"),
        (["--seed", "1"], "seed 0"),
        (["--depth", "3"], "depth 2"),
    ],
)
def test_resume_refuses_an_option_that_differs_from_the_run(finished_run: Path, args: list[str], saved: str) -> None:
    """`--resume` goes on with the saved recipe: an option given to change it is one line, exit 2, nothing trained;
    the line names the option as given, the run's saved value, and the way out (--name)."""
    before = digest(finished_run / "last.safetensors")
    where = ["--out", str(finished_run.parent), "--name", finished_run.name]
    result = CliRunner().invoke(app, ["train", "--resume", "--epochs", "2", *where, *args])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and " ".join(args) in errors[0] and saved in errors[0], result.output
    assert "resume" in errors[0] and "--name" in errors[0], result.output
    assert "Traceback" not in result.output and digest(finished_run / "last.safetensors") == before


def test_resume_takes_the_runs_own_values_and_the_settings_it_may_change(tmp_path: Path, tiny_data: Path) -> None:
    """Options equal to the saved ones are no conflict; --epochs extends, --threads, --device, --compile apply."""
    run = train(cfg_for(tmp_path, tiny_data, epochs=1)).run
    same = ["--arch", "cnn", "--kernel", "3", "--batch-size", "32", "--lr", "0.0005", "--shift", "0", "--seed", "0"]
    same += ["--data-dir", str(tiny_data), "--precision", run.config()["precision"]]
    placement = ["--epochs", "2", "--threads", "2", "--device", "cpu", "--compile", "off"]
    where = ["--out", str(run.path.parent), "--name", run.name]
    result = CliRunner().invoke(app, ["train", "--resume", *where, *same, *placement])
    assert result.exit_code == 0 and "resuming at epoch 2" in result.output, result.output
    assert [r["epoch"] for r in run.metrics()] == [1, 2] and run.config()["threads"] == 2
