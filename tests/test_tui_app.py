"""Pilot tests of the app shell: empty start, tab keys, help, command palette, small terminals, quit."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.command import CommandPalette

from fmnist_tui.tui import create_app
from fmnist_tui.tui.explore_screen import ExplorePane
from fmnist_tui.tui.messages import RunsChanged
from fmnist_tui.tui.modals import HelpScreen
from fmnist_tui.tui.results_screen import ResultsPane
from tests.tui_support import screen_text, sync, wait_workers

pytestmark = pytest.mark.slow  # every test here starts the app (1–3 s) or a process


@sync
async def test_starts_empty_with_hints_on_every_tab(tiny_data: Path, tmp_path: Path) -> None:
    app = create_app(runs=tmp_path / "none", export=tmp_path / "none-either", images=tmp_path, data_dir=tiny_data)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.active_tab == "train" and "Start" in screen_text(app)
        await pilot.press("2")
        await wait_workers(app)  # Results reads the run folders in a worker
        await pilot.pause()
        assert app.active_tab == "results" and "No finished runs" in screen_text(app)
        await pilot.press("3")
        assert app.active_tab == "classify" and "No models in" in screen_text(app)
        await pilot.press("4")
        await wait_workers(app)
        await pilot.pause()
        assert app.active_tab == "explore" and "250 train · 50 val · 100 test" in screen_text(app)
        await pilot.press("q")
    assert app.return_code == 0


@sync
async def test_a_training_that_ends_while_the_app_is_taken_down_is_no_error(tmp_path: Path) -> None:
    """The end of a training re-reads the runs in Results and Explore; when it arrives as the app is being
    taken down, those panes are gone already, which must not raise (it once did: NoMatches)."""
    app = create_app(runs=tmp_path, export=tmp_path, images=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await app.query_one(ResultsPane).remove()
        await app.query_one(ExplorePane).remove()
        app.post_message(RunsChanged())
        await pilot.pause()
        await pilot.press("q")
    assert app.return_code == 0


@sync
async def test_help_and_tab_bindings_in_footer(tmp_path: Path) -> None:
    app = create_app(runs=tmp_path, export=tmp_path, images=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        footer = screen_text(app).splitlines()[-1]
        assert "Quit" in footer and "Start" in footer and "Sort" not in footer
        await pilot.press("2")
        await pilot.pause()
        footer = screen_text(app).splitlines()[-1]
        assert "Sort" in footer and "Start" not in footer
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen) and "fmnist predict" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


@sync
async def test_command_palette_offers_every_action(tmp_path: Path) -> None:
    app = create_app(runs=tmp_path, export=tmp_path, images=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {
            "Show Train",
            "Show Results",
            "Show Classify",
            "Show Explore",
            "Start training",
            "Stop training",
            "Resume training",
            "Sort results",
            "Reload runs and models",
            "Feature maps",
            "Help",
            "Quit",
        } <= titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"show explore")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        assert app.active_tab == "explore"


@pytest.mark.parametrize("size", [(40, 12), (20, 6)])
@sync
async def test_tiny_terminal_does_not_crash(tmp_path: Path, size: tuple[int, int]) -> None:
    app = create_app(runs=tmp_path, export=tmp_path, images=tmp_path)
    async with app.run_test(size=size) as pilot:
        for key in "12341":
            await pilot.press(key)
        await pilot.pause()
        assert app.is_running


def test_tui_command_help(python: str, cli_env: dict[str, str]) -> None:
    import subprocess

    out = subprocess.run(
        [python, "-m", "fmnist_tui", "tui", "--help"], env=cli_env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "--runs" in out.stdout and "--export-dir" in out.stdout
    bad = subprocess.run(
        [python, "-m", "fmnist_tui", "tui", "--images", "/no/such/dir"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_startup_imports_neither_torch_nor_onnxruntime(python: str, cli_env: dict[str, str]) -> None:
    """torch loads when a training or feature maps start, onnxruntime when Classify needs a model."""
    import subprocess

    code = (
        "import sys; from fmnist_tui.cli import app; from fmnist_tui.tui import create_app; create_app(); "
        "print(sorted(m for m in ('torch', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([python, "-c", code], env=cli_env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
