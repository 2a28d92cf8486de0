"""Pilot tests of the Train tab: a real training on the synthetic data, started and stopped from the UI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from textual.widgets import Checkbox, Collapsible, DataTable, Input, Select

from fmnist_tui.core import registry
from fmnist_tui.core.errors import ConfigError
from fmnist_tui.core.runs import Run
from fmnist_tui.tui import create_app
from fmnist_tui.tui.app import FmnistApp
from fmnist_tui.tui.modals import ConfirmScreen
from fmnist_tui.tui.train_screen import TrainPane, option_row
from tests.tui_support import choices, record_notifications, screen_text, sync, wait_until, wait_workers

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def train_app(tmp_path: Path, tiny_data: Path) -> FmnistApp:
    """The app over empty runs/ and export/ folders in tmp_path, training on the synthetic data."""
    return create_app(runs=tmp_path / "runs", export=tmp_path / "export", images=tmp_path, data_dir=tiny_data)


def names(messages: list[str], *facts: str) -> bool:
    """Whether one of `messages` names every fact (a field, a value, a bound) as a word, whatever its wording."""
    return any(all(re.search(rf"(?<![\w-]){re.escape(fact)}(?![\w-])", m) for fact in facts) for m in messages)


async def fill(pilot, **values: str) -> None:
    """Type values into the form's inputs (replacing their text)."""
    for key, value in values.items():
        pilot.app.query_one(f"#{key}", Input).value = value
    await pilot.pause()


@pytest.mark.slow
@sync
async def test_start_stop_resume_from_the_ui(tiny_data: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    app = train_app(tmp_path, tiny_data)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(TrainPane)
        # many small batches and epochs, so Stop lands mid-run even on a slow machine (32 batches per epoch)
        await fill(pilot, epochs="400", batch="8", threads="1", name="ui-run")
        app.set_focus(None)
        await pilot.press("s")
        table = pane.query_one("#epochs-table", DataTable)
        await wait_until(pilot, lambda: table.row_count >= 1, 90, "the first epoch")
        assert pane.running and "epoch" in screen_text(app)
        await pilot.press("2")  # the UI answers keys while training
        assert app.active_tab == "results"
        await pilot.press("1")
        await pilot.press("x")
        await wait_until(pilot, lambda: not pane.running, 60, "the stop")
        await pilot.pause()
        run = Run(runs / "ui-run")
        assert run.file("train_state.pt").exists() and not run.finished
        assert "state saved" in screen_text(app)
        done = len(run.metrics())
        assert 1 <= done < 400
        # Resume continues from the saved epoch with the earlier epochs in the table; then stop again
        await pilot.press("r")
        await wait_until(pilot, lambda: pane.started is not None and pane.started.resumed, 60, "the resume")
        assert pane.started.start_epoch == done + 1
        assert table.row_count >= done
        await pilot.press("x")
        await wait_until(pilot, lambda: not pane.running, 60, "the second stop")


@pytest.mark.slow
@sync
async def test_training_to_the_end_shows_test_accuracy_and_results(tiny_data: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    app = train_app(tmp_path, tiny_data)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(TrainPane)
        await fill(pilot, epochs="2", batch="64", threads="1", seed="3")
        app.query_one("#arch", Select).value = "mlp"
        await pilot.pause()
        assert app.query_one("#kernel", Select).disabled
        await pilot.click("#start")
        await wait_until(pilot, lambda: pane.worker is not None and not pane.running, 120, "the training")
        await pilot.pause()
        text = screen_text(app)
        assert "done: test accuracy" in text and "true  Tsh" in text
        assert Run(runs / "mlp-s3").finished
        await pilot.press("2")
        await wait_workers(app)  # Results reads the run folders in a worker
        await pilot.pause()
        assert "mlp" in screen_text(app)  # results refreshed when the training ended


@pytest.mark.slow
@sync
async def test_bad_form_value_is_a_notification(tiny_data: Path, tmp_path: Path) -> None:
    app = train_app(tmp_path, tiny_data)
    notes = record_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await fill(pilot, lr="fast")
        await pilot.click("#start")
        await pilot.pause()
        assert not app.query_one(TrainPane).running
        assert names([n.message for n in notes], "lr", "number")
        assert app.query_one("#lr").has_class("invalid") and app.focused is app.query_one("#lr")
        await fill(pilot, lr="", batch="0")
        app.set_focus(None)
        await pilot.press("s")  # not a second click: two quick clicks on one spot are a double click
        await pilot.pause()
        messages = [n.message for n in notes]
        assert names(messages, "batch", "positive"), messages
        assert not any("--" in m for m in messages), messages  # the TUI names its fields, not the CLI's flags
        assert app.query_one("#batch").has_class("invalid") and not app.query_one("#lr").has_class("invalid")
        assert not app.query_one(TrainPane).running


@pytest.mark.slow
@sync
async def test_quit_while_training_asks_then_stops_and_saves(tiny_data: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    app = train_app(tmp_path, tiny_data)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(TrainPane)
        await fill(pilot, epochs="400", batch="8", threads="1", name="quit-run")
        await pilot.click("#start")
        await wait_until(pilot, lambda: "img/s" in screen_text(app), 90, "the first batches")
        app.set_focus(None)
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and pane.running
        await pilot.press("n")  # keep training
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen) and pane.running
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("y")
        await wait_until(pilot, lambda: not pane.running, 60, "the stop on quit")
    assert Run(runs / "quit-run").file("train_state.pt").exists()


@sync
async def test_the_form_offers_family_options_and_names_bad_combinations(tiny_data: Path, tmp_path: Path) -> None:
    """depth, pool, head (cnn) and hidden (mlp) come from the registry; pool none with a flatten head is refused
    on the head field, before any training."""
    app = train_app(tmp_path, tiny_data)
    notes = record_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(TrainPane)
        assert choices(app.query_one("#pool", Select)) == ["max", "avg", "stride", "blur", "allconv", "none"]
        assert app.query_one("#hidden", Input).disabled and app.query_one("#hidden", Input).value == "256,128"
        app.query_one("#depth", Select).value = 3
        app.query_one("#pool", Select).value = "avg"
        await pilot.pause()
        assert pane.form_config().run_name == "cnn-k3-d3-avg-s0"
        app.query_one("#pool", Select).value = "none"
        await pilot.pause()
        pane.start()
        await pilot.pause()
        messages = [n.message for n in notes]
        assert names(messages, "head", "flatten", "pool", "none"), messages
        assert app.query_one("#head").has_class("invalid") and not pane.running
        app.query_one("#head", Select).value = "gap"
        assert pane.form_config().run_name == "cnn-k3-d3-none-gap-s0"
        app.query_one("#arch", Select).value = "mlp"
        await pilot.pause()
        assert not app.query_one("#hidden", Input).disabled and app.query_one("#depth", Select).disabled
        app.query_one("#hidden", Input).value = "128, 64"
        assert pane.form_config().options == {"hidden": (128, 64)} and pane.form_config().run_name == "mlp-h128x64-s0"


def field_labels(app: FmnistApp) -> set[str]:
    """The labels of the form rows on screen (each row's first word)."""
    return {line.split()[0] for line in screen_text(app).splitlines() if line.split()}


@sync
async def test_the_form_shows_only_the_options_of_the_chosen_architecture(tiny_data: Path, tmp_path: Path) -> None:
    """Which option fields are on screen comes from the registry: the default cnn shows kernel, depth, pool, head
    and norm, not the MLP's hidden widths nor the ResNet's width and blocks; picking another arch swaps them."""
    app = train_app(tmp_path, tiny_data)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(TrainPane)

        def shown() -> set[str]:
            return {name for name in registry.option_names() if app.query_one(f"#{option_row(name)}").display}

        assert shown() == {o.name for o in registry.get("cnn").options} == {"kernel", "depth", "pool", "head", "norm"}
        assert {"kernel", "norm"} <= field_labels(app) and not {"hidden", "width", "blocks"} & field_labels(app)
        assert app.query_one("#hidden") not in app.screen.focus_chain  # Tab never lands on a hidden field
        for arch, spec in registry.REGISTRY.items():
            app.query_one("#arch", Select).value = arch
            await pilot.pause()
            options = {o.name for o in spec.options}
            assert shown() == options and set(pane.form_config().options) == options, arch
            assert options <= field_labels(app) and not (set(registry.option_names()) - options) & field_labels(app)


@sync
async def test_the_recipe_and_hardware_sections_train_the_default_models_recipe(
    tiny_data: Path, tmp_path: Path
) -> None:
    """The folded recipe and hardware sections reach every setting of `fmnist train` (the default model's
    recipe: shifts, erasing, label smoothing, flip-TTA; the device, precision, compile); a bad value there is
    named and its section unfolds; the run trained from the form records what the form said."""
    runs = tmp_path / "runs"
    app = train_app(tmp_path, tiny_data)
    notes = record_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(TrainPane)
        recipe, hardware = app.query_one("#recipe", Collapsible), app.query_one("#placement", Collapsible)
        assert recipe.collapsed and hardware.collapsed  # folded: the form fits 24 rows with Start in view
        await fill(pilot, erase="2")
        pane.start()
        await pilot.pause()
        messages = [n.message for n in notes]
        assert names(messages, "erase", "[0, 1]"), messages
        assert not recipe.collapsed and app.query_one("#erase").has_class("invalid") and not pane.running
        await fill(pilot, shift="x")
        with pytest.raises(ConfigError, match="must be a whole number"):
            pane.form_config()
        await fill(pilot, epochs="1", batch="64", threads="1", shift="2", erase="0.25", label_smoothing="0.05")
        await fill(pilot, train_size="200", ema="0.9")
        app.query_one("#tta", Checkbox).value = True
        app.query_one("#device", Select).value = "cpu"
        app.query_one("#precision", Select).value = "fp32"
        await pilot.pause()
        cfg = pane.form_config()
        assert (cfg.shift, cfg.erase, cfg.label_smoothing, cfg.ema, cfg.tta) == (2, 0.25, 0.05, 0.9, True)
        assert (cfg.device, cfg.precision, cfg.compile, cfg.train_size) == ("cpu", "fp32", "off", 200)
        assert cfg.run_name == "cnn-k3-n200-shift2-s0"
        pane.start()
        await wait_until(pilot, lambda: pane.worker is not None and not pane.running, 120, "the training")
        await pilot.pause()  # the app handles the end of the training (RunsChanged) before the test leaves it
        saved = Run(runs / cfg.run_name).config()
        assert {k: saved[k] for k in ("shift", "erase", "label_smoothing", "ema", "tta", "train_size")} == {
            "shift": 2,
            "erase": 0.25,
            "label_smoothing": 0.05,
            "ema": 0.9,
            "tta": True,
            "train_size": 200,
        }
        assert (saved["device"], saved["precision"]) == ("cpu", "fp32")
