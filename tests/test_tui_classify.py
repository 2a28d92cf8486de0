"""Pilot tests of the Classify tab: models from export/, a good image, a bad image, no models."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmnist_tui.tui import create_app
from fmnist_tui.tui.classify_screen import ClassifyPane
from textual.widgets import Input, Select
from tests.tui_support import garment_png, screen_text, sync, tiny_onnx, wait_workers


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    images = tmp_path / "images"
    images.mkdir()
    garment_png(images / "trouser.png")
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    (images / "notes.txt").write_text("not an image")
    export = tmp_path / "export"
    tiny_onnx(export / "tiny-a.onnx", seed=0)
    tiny_onnx(export / "tiny-b.onnx", seed=1)
    return {"images": images, "export": export, "runs": tmp_path / "runs"}


async def submit(pilot, path: Path) -> None:
    field = pilot.app.query_one("#image-path", Input)
    field.value = str(path)
    field.focus()
    await pilot.press("enter")
    await wait_workers(pilot.app)
    await pilot.pause()


@pytest.mark.slow
@sync
async def test_classify_an_image_and_switch_models(folders: dict[str, Path]) -> None:
    app = create_app(runs=folders["runs"], export=folders["export"], images=folders["images"])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        pane = app.query_one(ClassifyPane)
        picker = app.query_one("#model", Select)
        assert picker.value == str(folders["export"] / "tiny-a.onnx")
        await submit(pilot, folders["images"] / "trouser.png")
        assert pane.last is not None and pane.last["model"] == "tiny-a.onnx"
        probs = pane.last["probs"]
        assert probs.shape == (10,) and abs(float(probs.sum()) - 1) < 1e-4
        assert pane.last["input"].shape == (28, 28)
        text = screen_text(app)
        assert "trouser.png (56×56)" in text and "model input 28×28" in text
        best = pane.last["top"][0]
        assert best["label"] in text and f"{best['probability']:.1%}" in text
        assert "inference" in text and " ms" in text
        first = probs.copy()
        picker.value = str(folders["export"] / "tiny-b.onnx")   # a new model re-classifies the image
        await pilot.pause()
        await wait_workers(app)
        await pilot.pause()
        assert pane.last["model"] == "tiny-b.onnx" and not (pane.last["probs"] == first).all()


@pytest.mark.slow
@sync
async def test_bad_image_is_a_notification_not_a_crash(folders: dict[str, Path]) -> None:
    app = create_app(runs=folders["runs"], export=folders["export"], images=folders["images"])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        for bad in ("broken.png", "notes.txt", "missing.png"):
            await submit(pilot, folders["images"] / bad)
        messages = [n.message for n in app._notifications]
        assert any(m.startswith("broken.png:") for m in messages)
        assert any(m.startswith("notes.txt:") for m in messages)
        assert any("missing.png: no such file" in m for m in messages)
        assert app.query_one(ClassifyPane).last is None and app.is_running


@pytest.mark.slow
@sync
async def test_tree_lists_images_only_and_selecting_one_classifies(folders: dict[str, Path]) -> None:
    app = create_app(runs=folders["runs"], export=folders["export"], images=folders["images"])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await pilot.pause(0.3)
        text = screen_text(app)
        assert "trouser.png" in text and "broken.png" in text and "notes.txt" not in text
        tree = app.query_one("#image-tree")
        tree.focus()
        await pilot.press("down", "down")   # root → broken.png → trouser.png (sorted)
        await pilot.press("enter")
        await wait_workers(app)
        await pilot.pause()
        assert app.query_one(ClassifyPane).last["path"].endswith("trouser.png")


@sync
async def test_no_models_shows_how_to_export(tmp_path: Path) -> None:
    app = create_app(runs=tmp_path / "runs", export=tmp_path / "export", images=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        assert "fmnist export RUN" in screen_text(app)
        garment = garment_png(tmp_path / "g.png")
        await submit(pilot, garment)
        assert any("No model to classify with" in n.message for n in app._notifications)
