"""SVG snapshots of each tab at 80×24 on synthetic data (no timings, no paths in the rendered text), stored in
tests/__snapshots__/test_tui_snapshots/ and compared by conftest.py's `screen_snapshot`.

Update after an intended change with: pytest tests/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from fmnist_tui.core.events import BatchProgress, EpochEnd, RunStarted
from fmnist_tui.tui.app import FmnistApp
from fmnist_tui.tui.messages import TrainerEvent
from fmnist_tui.tui.results_screen import ResultsPane
from fmnist_tui.tui.services import Services, Settings
from fmnist_tui.tui.train_screen import TrainPane
from tests.tui_support import fake_run, garment_png, tiny_onnx, wait_until, wait_workers

SIZE = (80, 24)


def make_app(root: Path, data_dir: Path | None = None) -> FmnistApp:
    """Relative folders (the test chdirs into `root`), so no temporary path is ever rendered."""
    return FmnistApp(Settings(Path("runs"), Path("export"), Path("images"), data_dir, timings=False), Services())


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    return tmp_path


def test_train_idle(screen_snapshot, root: Path) -> None:
    screen_snapshot(make_app(root), SIZE)


@pytest.mark.slow
def test_train_live(screen_snapshot, root: Path) -> None:
    """The live view fed with fixed trainer events: curves, epoch table, progress line."""

    async def feed(pilot) -> None:
        pane = pilot.app.query_one(TrainPane)
        pane.on_trainer_event(
            TrainerEvent(
                RunStarted(Path("runs/cnn-k3-s0"), "cnn-k3-s0", {}, 421642, 4_240_000, "cpu", "fp32", 1, 6, 100, False)
            )
        )
        for e in range(1, 5):
            row = {
                "epoch": e,
                "train_loss": 0.9 / e,
                "train_acc": 0.8 + 0.02 * e,
                "val_loss": 0.95 / e,
                "val_acc": 0.79 + 0.02 * e,
                "lr": 1e-3,
                "seconds": 4.5,
                "images_per_s": 11900.0,
            }
            pane.on_trainer_event(TrainerEvent(EpochEnd(e, 6, row, True)))
        pane.on_trainer_event(TrainerEvent(BatchProgress(5, 6, 50, 100, 0.25, 11900.0)))
        await pilot.pause()

    screen_snapshot(make_app(root), SIZE, feed)


async def show_results(pilot) -> None:
    """The Results tab once its worker has read the run folders."""
    await pilot.press("2")
    await wait_workers(pilot.app)
    await pilot.pause()


@pytest.mark.slow
def test_results(screen_snapshot, root: Path) -> None:
    fake_run(root / "runs", "cnn", 3, 0, 0.90)
    fake_run(root / "runs", "cnn", 3, 1, 0.92)
    fake_run(root / "runs", "cnn", 5, 0, 0.93)
    fake_run(root / "runs", "mlp", None, 0, 0.85)
    screen_snapshot(make_app(root), SIZE, show_results)


@pytest.mark.slow
def test_results_study(screen_snapshot, root: Path) -> None:
    """The depth study picked: its configs, its accuracy bars and its verdicts."""
    for seed in (0, 1):
        for depth, acc in ((1, 0.88), (2, 0.91), (3, 0.912), (4, 0.913)):
            fake_run(root / "runs", "cnn", 3, seed, acc + 0.004 * seed + 0.0005 * depth * seed, depth=depth)
    fake_run(root / "runs", "mlp", None, 0, 0.85)

    async def pick(pilot) -> None:
        await show_results(pilot)
        pilot.app.query_one(ResultsPane).pick_study("depth")
        await pilot.pause()

    screen_snapshot(make_app(root), SIZE, pick)


@pytest.mark.slow
def test_results_empty(screen_snapshot, root: Path) -> None:
    screen_snapshot(make_app(root), SIZE, show_results)


@pytest.mark.slow
def test_classify(screen_snapshot, root: Path) -> None:
    tiny_onnx(root / "export" / "tiny.onnx")
    garment_png(root / "images" / "trouser.png")

    async def classify(pilot) -> None:
        await pilot.press("3")
        tree = pilot.app.query_one("#image-tree")
        await wait_until(pilot, lambda: len(tree.root.children) == 1, 10, "the file tree")
        field = pilot.app.query_one("#image-path", Input)
        field.cursor_blink = False  # a blinking cursor is drawn or not by when the screenshot falls
        field.value = "images/trouser.png"
        field.focus()
        await pilot.press("enter")
        await wait_workers(pilot.app)
        await pilot.pause()

    screen_snapshot(make_app(root), SIZE, classify)


@pytest.mark.slow
def test_explore(screen_snapshot, root: Path, tiny_data: Path) -> None:
    async def explore(pilot) -> None:
        await pilot.press("4")
        await wait_workers(pilot.app)
        await pilot.pause()

    screen_snapshot(make_app(root, tiny_data), SIZE, explore)


def test_help(screen_snapshot, root: Path) -> None:
    screen_snapshot(make_app(root), SIZE, press=["question_mark"])
