"""Pilot tests of the Explore tab: the synthetic dataset, class samples, and feature maps of a run."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from textual.widgets import Select, Static

from fmnist_tui.core.config import TrainConfig
from fmnist_tui.tui import create_app
from fmnist_tui.tui.explore_screen import ExplorePane, counts_table
from fmnist_tui.tui.services import Services
from fmnist_tui.tui.widgets import Mosaic
from tests.tui_support import fake_run, record_notifications, screen_text, sync, wait_workers


async def open_explore(pilot) -> ExplorePane:
    await pilot.press("4")
    await wait_workers(pilot.app)
    await pilot.pause()
    return pilot.app.query_one(ExplorePane)


@sync
async def test_dataset_samples_and_class_picker(tiny_data: Path, tmp_path: Path) -> None:
    app = create_app(runs=tmp_path / "runs", export=tmp_path / "export", images=tmp_path, data_dir=tiny_data)
    notes = record_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_explore(pilot)
        assert pane.dataset is not None
        text = screen_text(app)
        assert "T-shirt/top: 12 training samples" in text and "no CNN run yet" in text
        app.query_one("#explore-class", Select).value = 5
        await pilot.pause()
        assert "Sandal: 12 training samples" in screen_text(app)
        assert len(app.query_one("#samples", Mosaic).maps) == 12
        await pilot.press("f")  # no run: a notification, not a crash
        await pilot.pause()
        assert any("No CNN run" in n.message for n in notes)


@sync
async def test_class_counts_fit_the_side_panel_at_80_columns(tiny_data: Path, tmp_path: Path) -> None:
    app = create_app(runs=tmp_path / "runs", export=tmp_path / "export", images=tmp_path, data_dir=tiny_data)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_explore(pilot)
        counts = app.query_one("#explore-counts", Static)
        counts.scroll_visible(animate=False)
        await pilot.pause()
        lines = counts_table(pane.dataset).splitlines()
        assert len(lines) == 11 and max(map(len, lines)) <= counts.content_region.width
        assert counts.size.height == len(lines)  # one screen row per line: nothing wrapped
        text = screen_text(app)
        assert "class train   val  test" in text and "Boot     25     5    10" in text


@sync
async def test_missing_dataset_says_how_to_get_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("FMNIST_DATA", raising=False)
    app = create_app(runs=tmp_path, export=tmp_path, images=tmp_path, data_dir=tmp_path / "nothing-here")
    async with app.run_test(size=(80, 24)) as pilot:
        await open_explore(pilot)
        assert "Cannot load the dataset" in screen_text(app)


@pytest.mark.slow
@sync
async def test_feature_maps_of_a_real_tiny_run(tiny_data: Path, tmp_path: Path) -> None:
    from fmnist_tui.training.trainer import train

    runs = tmp_path / "runs"
    train(
        TrainConfig.create(arch="cnn", kernel=5, epochs=1, subset=64, threads=1, out=str(runs), data_dir=str(tiny_data))
    )
    app = create_app(runs=runs, export=tmp_path / "export", images=tmp_path, data_dir=tiny_data)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_explore(pilot)
        await pilot.click("#explore-maps")
        await wait_workers(app)
        await pilot.pause()
        conv1, conv2 = app.query_one("#conv1", Mosaic).maps, app.query_one("#conv2", Mosaic).maps
        assert conv1.shape == (32, 28, 28) and conv2.shape == (64, 14, 14) and (conv1 >= 0).all()
        app.query_one("#maps-title").scroll_visible(animate=False, top=True)
        await pilot.pause()
        assert "cnn-k5-s0, test image" in screen_text(app)


@pytest.mark.slow
@sync
async def test_feature_map_errors_are_notifications(tiny_data: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = fake_run(runs, "cnn", 3, 0, 0.9)
    (run / "best.safetensors").write_bytes(b"damaged")

    def broken(run, image):  # what a damaged weights file makes the real call raise
        raise ValueError("cannot read best.safetensors")

    seen = []

    def fake(run, image):
        seen.append(image.shape)
        return np.ones((32, 28, 28), np.float32), np.ones((64, 14, 14), np.float32)

    app = create_app(
        runs=runs, export=tmp_path, images=tmp_path, data_dir=tiny_data, services=Services(feature_maps=broken)
    )
    notes = record_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_explore(pilot)
        await pilot.press("f")
        await wait_workers(app)
        await pilot.pause()
        assert any("cannot read best.safetensors" in n.message for n in notes) and app.is_running
        app.services.feature_maps = fake
        await pilot.press("f")
        await wait_workers(app)
        assert seen == [(28, 28)]
        app.services.feature_maps = lambda run, image: [np.ones((32, 14, 14), np.float32)]  # one strided block
        await pilot.press("f")
        await wait_workers(app)
        await pilot.pause()
        assert (
            app.query_one("#conv1", Mosaic).maps.shape == (32, 14, 14) and app.query_one("#conv2", Mosaic).maps is None
        )


@sync
async def test_an_image_beside_its_permuted_version(tiny_data: Path, tmp_path: Path) -> None:
    from fmnist_tui.core.data import permute_pixels, pixel_permutation
    from fmnist_tui.tui.widgets import pixels

    app = create_app(runs=tmp_path / "runs", export=tmp_path / "export", images=tmp_path, data_dir=tiny_data)
    async with app.run_test(size=(100, 40)) as pilot:
        pane = await open_explore(pilot)
        chosen = pane.chosen_image()
        assert chosen is not None
        assert "its pixels permuted" in str(app.query_one("#permuted-title", Static).render())

        def drawn(renderable: object) -> str:  # the half-block cells with their colours
            console = Console(width=40, record=True, color_system="truecolor", file=io.StringIO())
            console.print(renderable)
            return console.export_text(styles=True)

        shown = drawn(app.query_one("#permuted-image", Static).content)
        assert shown == drawn(pixels(permute_pixels(chosen[0], pixel_permutation())))
        assert shown != drawn(pixels(chosen[0])) and drawn(app.query_one("#natural-image", Static).content) == drawn(
            pixels(chosen[0])
        )
