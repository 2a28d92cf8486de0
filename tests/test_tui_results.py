"""Pilot tests of the Results tab on synthetic run folders: grouping, sorting, details of a row, loading in a thread."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from textual.widgets import DataTable

from fmnist_tui.study.results import RunRecord, load_records
from fmnist_tui.study.studies import STUDIES
from fmnist_tui.tui import create_app, results_screen
from fmnist_tui.tui.results_screen import ResultsPane
from tests.tui_support import fake_run, record_notifications, screen_text, sync, wait_until, wait_workers

CLAIMS = sum(len(s.claims) for s in STUDIES.values())  # the family every verdict is corrected over


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
    notes = record_notifications(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await wait_workers(app)  # the runs are read in a worker thread
        await pilot.pause()
        assert table_column(app, 0) == ["mlp", "cnn-k3", "cnn-k7"]
        assert table_column(app, 1) == ["0", "0,1", "0"]
        assert table_column(app, 3)[1] == "91.00% ± 1.41%"  # mean ± sample std over two seeds
        assert any("skipped broken" in n.message for n in notes)
        pane = app.query_one(ResultsPane)
        pane.sort_by("acc")
        await pilot.pause()
        assert table_column(app, 0) == ["mlp", "cnn-k3", "cnn-k7"]
        await pilot.press("o")  # next column after acc: time
        assert pane.sort_key == "time" and table_column(app, 0) == ["mlp", "cnn-k3", "cnn-k7"]
        pane.sort_by("time")  # same key again: descending
        await pilot.pause()
        assert table_column(app, 0) == ["cnn-k7", "cnn-k3", "mlp"]
        table = app.query_one("#results-table", DataTable)
        table.focus()
        await pilot.press("down")  # highlight cnn-k3
        await pilot.pause()
        text = screen_text(app)
        assert "cnn-k3 · runs cnn-k3-s0, cnn-k3-s1" in text
        assert "true  Tsh" in text and "Trouser" in text and "accuracy" in text


@sync
async def test_header_click_sorts(runs: Path, tmp_path: Path) -> None:
    app = create_app(runs=runs, export=tmp_path / "export", images=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await wait_workers(app)
        table = app.query_one("#results-table", DataTable)
        table.post_message(
            DataTable.HeaderSelected(table, table.ordered_columns[2].key, 2, table.ordered_columns[2].label)
        )
        await pilot.pause()
        assert app.query_one(ResultsPane).sort_key == "params"
        assert table_column(app, 0) == ["mlp", "cnn-k3", "cnn-k7"]


@sync
async def test_loading_is_off_the_ui_thread_and_the_newest_load_wins(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow first load (say, a slow disk) leaves the UI answering keys and showing "loading…"; a newer load
    that finishes first is painted, and the older one, finishing last, must not paint over it."""
    older_root = tmp_path / "older"
    fake_run(older_root, "mlp", None, 5, 0.80)
    older, newer = load_records(older_root), load_records(runs)
    gates = [threading.Event(), threading.Event()]  # the first and second loads wait on these
    calls: list[object] = []

    def slow_loader(folders: object) -> tuple[list[RunRecord], list[str]]:
        index = len(calls)
        calls.append(folders)
        if index < len(gates):
            assert gates[index].wait(30), "the test never released this load"
        return older if index == 0 else newer

    monkeypatch.setattr(results_screen.lab, "load", slow_loader)
    app = create_app(runs=runs, export=tmp_path / "export", images=tmp_path)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: len(calls) == 1, 10, "the first load to start")
            await pilot.press("2")  # answered while the first load blocks; starts a second load
            assert app.active_tab == "results"
            await wait_until(pilot, lambda: len(calls) == 2, 10, "the second load to start")
            table = app.query_one("#results-table", DataTable)
            assert table.loading and "loading…" in screen_text(app)
            gates[1].set()  # the newer load finishes first...
            await wait_until(pilot, lambda: not table.loading, 10, "the newer load to paint")
            assert table_column(app, 0) == ["mlp", "cnn-k3", "cnn-k7"]
            gates[0].set()  # ...then the older one, which must not paint
            await wait_workers(app)  # not app.workers.wait_for_complete(): DirectoryTree's loader never ends
            await pilot.pause()
            assert table_column(app, 0) == ["mlp", "cnn-k3", "cnn-k7"] and "4 runs in 3 groups" in screen_text(app)
    finally:
        for gate in gates:
            gate.set()


@pytest.fixture
def depth_runs(tmp_path: Path) -> Path:
    """Two seeds of the depth study's four configs, plus an mlp that is not in it."""
    root = tmp_path / "runs"
    for seed in (0, 1):
        for depth, acc in ((1, 0.80), (2, 0.91), (3, 0.912), (4, 0.913)):
            fake_run(root, "cnn", 3, seed, acc + 0.004 * seed + 0.0005 * depth * seed, depth=depth)
    fake_run(root, "mlp", None, 0, 0.85)
    return root


@sync
async def test_study_picker_shows_the_studys_table_and_verdicts(depth_runs: Path, tmp_path: Path) -> None:
    app = create_app(runs=depth_runs, export=tmp_path / "export", images=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await wait_workers(app)
        await pilot.pause()
        pane = app.query_one(ResultsPane)
        assert table_column(app, 0) == ["mlp", "cnn-k3-d1", "cnn-k3", "cnn-k3-d3", "cnn-k3-d4"]
        assert not app.query_one("#study-verdicts").display
        pane.pick_study("depth")
        await pilot.pause()
        assert table_column(app, 0) == ["cnn-k3-d1", "cnn-k3", "cnn-k3-d3", "cnn-k3-d4"]  # the mlp is not in it
        text = screen_text(app)
        assert "depth: 8 runs in 4 configs" in text and "Depth study" in text
        assert "● supported (adjusted p" in text and "2 conv blocks beat 1" in text
        assert "cnn-k3 − cnn-k3-d1" in text and "+11.0" in text and "margin +0.50 points" in text
        assert "● not supported at this sample size (2 seeds)" in text  # sufficient: not shown
        assert "Holm-adjusted" in text and f"over the lab's claims ({CLAIMS} claims" in text
        pane.pick_study("pooling")  # cnn-k3 alone of its six configs
        await pilot.pause()
        assert table_column(app, 0) == ["cnn-k3"] and "not tested" in screen_text(app)
        pane.pick_study("regularizer")  # the mlp and cnn-k3
        await pilot.pause()
        assert table_column(app, 0) == ["mlp", "cnn-k3"]
        app.action_show_study("kernel")  # the command palette's "Study: kernel"
        await pilot.pause()
        assert pane.study == "kernel" and table_column(app, 0) == ["mlp", "cnn-k3"]
        pane.pick_study("claims")  # every claim of every study, as one forest
        await pilot.pause()
        text = screen_text(app)
        assert len(table_column(app, 0)) == 5 and app.query_one("#study-verdicts").display
        assert "Every claim of the lab" in text and f"{CLAIMS} claims across every study" in text
        assert "● not tested" in text and "3×3 beats 5×5" in text and "┊" in text
        pane.pick_study("all")
        await pilot.pause()
        assert len(table_column(app, 0)) == 5 and not app.query_one("#study-verdicts").display
