"""Pilot tests of the Classify tab: models from export/, a good image, a bad image, no models, a slow model."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from textual.widgets import Input, Select

from fmnist_tui.core.data import CLASSES
from fmnist_tui.tui import create_app
from fmnist_tui.tui.classify_screen import ClassifyPane
from fmnist_tui.tui.services import Services
from tests.tui_support import garment_png, record_notifications, screen_text, sync, tiny_onnx, wait_until, wait_workers


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
        picker.value = str(folders["export"] / "tiny-b.onnx")  # a new model re-classifies the image
        await pilot.pause()
        await wait_workers(app)
        await pilot.pause()
        assert pane.last["model"] == "tiny-b.onnx" and not (pane.last["probs"] == first).all()


@pytest.mark.slow
@sync
async def test_bad_image_is_a_notification_not_a_crash(folders: dict[str, Path]) -> None:
    app = create_app(runs=folders["runs"], export=folders["export"], images=folders["images"])
    notes = record_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        for bad in ("broken.png", "notes.txt", "missing.png"):
            await submit(pilot, folders["images"] / bad)
        messages = [n.message for n in notes]
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
        await pilot.press("down", "down")  # root → broken.png → trouser.png (sorted)
        await pilot.press("enter")
        await wait_workers(app)
        await pilot.pause()
        assert app.query_one(ClassifyPane).last["path"].endswith("trouser.png")


@sync
async def test_no_models_shows_how_to_export(tmp_path: Path) -> None:
    app = create_app(runs=tmp_path / "runs", export=tmp_path / "export", images=tmp_path)
    notes = record_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        assert "fmnist export RUN" in screen_text(app)
        garment = garment_png(tmp_path / "g.png")
        await submit(pilot, garment)
        assert any("No model to classify with" in n.message for n in notes)


class SlowFirstClassifier:
    """A fake model: its first call waits until the test releases it and answers Trouser; later calls
    answer Sandal at once."""

    classes: ClassVar[list[str]] = list(CLASSES)
    metadata: ClassVar[dict[str, str]] = {"arch": "fake"}

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.first_answered = threading.Event()

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        probs = np.full((len(batch), 10), 0.01, dtype=np.float32)
        if self.calls == 1:
            self.release.wait(30)
            probs[:, CLASSES.index("Trouser")] = 0.91
            self.first_answered.set()
        else:
            probs[:, CLASSES.index("Sandal")] = 0.91
        return probs


@sync
async def test_a_slow_earlier_image_never_paints_over_a_newer_one(tmp_path: Path) -> None:
    first, second = garment_png(tmp_path / "first.png"), garment_png(tmp_path / "second.png")
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "fake.onnx").write_bytes(b"the fake classifier never reads it")
    model = SlowFirstClassifier()
    app = create_app(
        runs=tmp_path / "runs",
        export=tmp_path / "export",
        images=tmp_path,
        services=Services(classifier=lambda path: model),
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        pane = app.query_one(ClassifyPane)
        field = app.query_one("#image-path", Input)
        field.value = str(first)
        field.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: model.calls == 1, 30, "the first image to reach the model")
        field.value = str(second)
        await pilot.press("enter")
        await wait_until(pilot, lambda: pane.last is not None, 30, "the second image's result")
        model.release.set()  # now the first image's answer comes, late
        await wait_until(pilot, model.first_answered.is_set, 30, "the first image's answer")
        await pilot.pause(0.5)  # time for a stale result to reach the screen, if it were let through
        assert pane.last is not None and pane.last["path"] == str(second)
        assert pane.last["prediction"].label == "Sandal"
        lines = screen_text(app).splitlines()
        assert any("second.png (56×56)" in line for line in lines)
        assert not any("first.png (56×56)" in line for line in lines)
        assert any("Sandal" in line and "91.0%" in line for line in lines)
        assert not any("Trouser" in line and "91.0%" in line for line in lines)


@pytest.mark.slow
@sync
async def test_a_models_odd_metadata_is_shown_as_text_not_markup(folders: dict[str, Path]) -> None:
    """Metadata is the file's words: brackets are not markup, a test accuracy that is no number is left out."""
    odd = folders["export"] / "odd.onnx"
    tiny_onnx(odd, metadata={"arch": "[bold]lin[/bold", "test_accuracy": "n/a"})
    app = create_app(runs=folders["runs"], export=folders["export"], images=folders["images"])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        app.query_one("#model", Select).value = str(odd)
        await pilot.pause()
        await submit(pilot, folders["images"] / "trouser.png")
        assert "[bold]lin[/bold" in screen_text(app) and "test" not in str(app.query_one("#model-info").render())
        assert app.query_one(ClassifyPane).last is not None


@pytest.mark.slow
@sync
async def test_the_default_model_is_chosen_first(folders: dict[str, Path]) -> None:
    from fmnist_tui.inference.session import DEFAULT_MODEL

    tiny_onnx(folders["export"] / DEFAULT_MODEL, seed=2)
    tiny_onnx(folders["export"] / "cnn-k3-s0.onnx", seed=3)  # listed first, not chosen first
    app = create_app(runs=folders["runs"], export=folders["export"], images=folders["images"])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        assert app.query_one("#model", Select).value == str(folders["export"] / DEFAULT_MODEL)


@pytest.mark.slow
@sync
async def test_classify_shows_the_unsure_flag(tmp_path: Path) -> None:
    """A calibrated model: a blank image is flagged UNSURE on screen; a model without a threshold says so."""
    from PIL import Image

    from tests.calibrated_support import calibrated_onnx

    export = tmp_path / "export"
    export.mkdir()
    calibrated_onnx(tmp_path / "made").rename(export / "calibrated.onnx")
    tiny_onnx(export / "uncalibrated.onnx")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "blank.png")
    app = create_app(runs=tmp_path / "runs", export=export, images=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("3")
        picker = app.query_one("#model", Select)
        picker.value = str(export / "calibrated.onnx")
        await pilot.pause()
        await submit(pilot, tmp_path / "blank.png")
        pane = app.query_one(ClassifyPane)
        assert pane.last is not None and pane.last["prediction"].unsure is True
        assert "UNSURE" in screen_text(app)
        picker.value = str(export / "uncalibrated.onnx")
        await pilot.pause()
        await wait_workers(app)
        await pilot.pause()
        assert pane.last["prediction"].unsure is None and "not available" in screen_text(app)


@pytest.mark.slow
@sync
async def test_the_model_line_names_the_kernel_only_where_there_is_one(folders: dict[str, Path]) -> None:
    """A ResNet's file says `kernel: none`: its line is `resnet · test 94.88%`; a CNN's keeps `k=3`."""
    resnet, cnn = folders["export"] / "resnet.onnx", folders["export"] / "cnn.onnx"
    tiny_onnx(resnet, metadata={"arch": "resnet", "kernel": "none", "test_accuracy": "0.948800"})
    tiny_onnx(cnn, metadata={"arch": "cnn", "kernel": "3", "test_accuracy": "0.931800"})
    app = create_app(runs=folders["runs"], export=folders["export"], images=folders["images"])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        shown = []
        for path in (resnet, cnn):
            app.query_one("#model", Select).value = str(path)
            await pilot.pause()
            shown.append(str(app.query_one("#model-info").render()))
    assert shown == ["resnet · test 94.88%", "cnn k=3 · test 93.18%"]
