"""Pilot tests of the Results tab on synthetic run folders: grouping, sorting, details of a row."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmnist_tui.tui import create_app
from fmnist_tui.tui.results_screen import ResultsPane
from textual.widgets import DataTable
from tests.tui_support import fake_run, screen_text, sync


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    fake_run(root, "cnn", 3, 0, 0.90)
    fake_run(root, "cnn", 3, 1, 0.92)
    fake_run(root, "cnn", 7, 0, 0.93, seconds=30.0)
    fake_run(root, "mlp", None, 0, 0.85, seconds=5.0)
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text("{not json")
    return root


def table_column(app, index: int) -> list[str]:
    table = app.query_one("#results-table", DataTable)
    return [str(table.get_row_at(r)[index]) for r in range(table.row_count)]


@pytest.mark.slow
@sync
async def test_groups_sorting_and_details(runs: Path, tmp_path: Path) -> None:
    app = create_app(runs=runs, export=tmp_path / "export", images=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        assert table_column(app, 0) == ["mlp", "cnn-k3", "cnn-k7"]
        assert table_column(app, 1) == ["0", "0,1", "0"]
        assert table_column(app, 3)[1] == "91.00% ± 1.41%"     # mean ± sample std over two seeds
        assert any("skipped broken" in n.message for n in app._notifications)
        pane = app.query_one(ResultsPane)
        pane.sort_by("acc")
        await pilot.pause()
        assert table_column(app, 0) == ["mlp", "cnn-k3", "cnn-k7"]
        await pilot.press("o")          # next column after acc: time
        assert pane.sort_key == "time" and table_column(app, 0) == ["mlp", "cnn-k3", "cnn-k7"]
        pane.sort_by("time")            # same key again: descending
        await pilot.pause()
        assert table_column(app, 0) == ["cnn-k7", "cnn-k3", "mlp"]
        table = app.query_one("#results-table", DataTable)
        table.focus()
        await pilot.press("down")       # highlight cnn-k3
        await pilot.pause()
        text = screen_text(app)
        assert "cnn-k3 · runs cnn-k3-s0, cnn-k3-s1" in text
        assert "true  Tsh" in text and "Trouser" in text and "accuracy" in text


@sync
async def test_header_click_sorts(runs: Path, tmp_path: Path) -> None:
    app = create_app(runs=runs, export=tmp_path / "export", images=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        table = app.query_one("#results-table", DataTable)
        table.post_message(DataTable.HeaderSelected(table, table.ordered_columns[2].key, 2, table.ordered_columns[2].label))
        await pilot.pause()
        assert app.query_one(ResultsPane).sort_key == "params"
        assert table_column(app, 0) == ["mlp", "cnn-k3", "cnn-k7"]
