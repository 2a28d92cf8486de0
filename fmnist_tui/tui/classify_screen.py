"""The Classify tab: pick an image file, see it and the 28×28 input the model sees, and the top classes.

Inference is onnxruntime on CPU through the same preprocessing as `fmnist predict` (no torch);
it runs in a thread that a newer request overtakes, and a bad image or model becomes a
notification, never a crash.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DirectoryTree, Input, Select, Static
from textual.worker import Worker, get_current_worker

from ..core.text import printable
from ..inference.prediction import Prediction, predictions
from ..inference.session import Classifier, predict_scores
from .services import Services, Settings
from .widgets import bars, fit_size, pixels

TOP_K = 5


def no_models_hint(export: Path) -> Text:
    """What to do without a model: in a base install, open the shipped ones; `fmnist export` needs the extra."""
    from ..core.extras import INSTALL_TRAIN
    from ..inference.session import PACKAGE_EXPORT, list_models

    lines = [f"No models in {export}/."]
    if list_models(PACKAGE_EXPORT) and Path(export).resolve() != PACKAGE_EXPORT:
        lines.append(f"Open the shipped ones:\nfmnist tui --export-dir {PACKAGE_EXPORT}")
    lines.append(f"Export your own with `fmnist export RUN` (it needs the train extra: {INSTALL_TRAIN}).")
    return Text("\n".join(lines))  # Text, not markup: [train] is no style


def unsure_text(prediction: Prediction, threshold: float | None) -> Text:
    """The unsure flag in words: unsure (bold), like Fashion-MNIST, or not available for this model."""
    if prediction.unsure is None or prediction.ood_score is None or threshold is None:
        return Text("unsure: not available (the model has no OOD threshold)", style="dim")
    if prediction.unsure:
        return Text(
            f"UNSURE: unlike Fashion-MNIST (OOD {prediction.ood_score:.4g} > {threshold:.4g})", style="bold yellow"
        )
    return Text(f"like Fashion-MNIST (OOD {prediction.ood_score:.4g} ≤ {threshold:.4g})", style="green")


class ImageTree(DirectoryTree):
    """A directory tree that lists folders and image files only (no hidden ones)."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        # imported here: Pillow's decoders load in the tree's loader thread, not on the app's start-up path
        from ..inference.preprocess import IMAGE_SUFFIXES

        return [p for p in paths if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES)]


class ClassifyPane(Vertical):
    """Files on the left, the image and the model input in the middle, model and top-k on the right."""

    def __init__(self, settings: Settings, services: Services | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.services = services or Services()
        self._classifiers: dict[Path, Classifier] = {}
        self.last: dict[str, Any] | None = None  # the latest result, for tests and the palette

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="classify-files"):
                yield Input(placeholder="image path, then Enter", compact=True, id="image-path")
                yield ImageTree(self.settings.images, id="image-tree")
            with VerticalScroll(id="classify-view"):
                yield Static("Pick an image on the left.", id="image-title")
                yield Static("", id="image-original")
                yield Static("", id="input-title")
                yield Static("", id="image-input")
            with VerticalScroll(id="classify-result"):
                yield Select([], prompt="no models", compact=True, id="model")
                yield Static("", id="model-info")
                yield Static("", id="topk")
                yield Static("", id="classify-unsure")
                yield Static("", id="classify-time")

    def on_mount(self) -> None:
        self.reload_models()

    def reload_models(self) -> None:
        """List the ONNX files in the export folder, the default model (predict's) chosen first where it is there;
        an empty folder shows how to make one."""
        from ..inference.session import DEFAULT_MODEL, list_models

        try:
            models = list(list_models(self.settings.export))
        except Exception:  # noqa: BLE001 - an unreadable folder is the same as an empty one here
            models = []
        picker = self.query_one("#model", Select)
        current = picker.value
        picker.set_options([(Path(m).name, str(m)) for m in models])
        if models:
            first = next((m for m in models if m.name == DEFAULT_MODEL), models[0])
            picker.value = current if current in [str(m) for m in models] else str(first)
        else:
            self.query_one("#model-info", Static).update(no_models_hint(self.settings.export))

    @on(Select.Changed, "#model")
    def _model_changed(self) -> None:
        self._show_model_info()
        if self.last is not None:
            self.classify(Path(self.last["path"]))

    def _show_model_info(self) -> None:
        value = self.query_one("#model", Select).value
        if value is Select.NULL:
            return
        try:
            meta = self._classifier(Path(str(value))).metadata
        except Exception as exc:  # noqa: BLE001 - shown, not raised
            self.query_one("#model-info", Static).update(Text(printable(str(exc)), style="red"))  # no markup
            return
        try:
            acc_text = f" · test {float(meta.get('test_accuracy', '')):.2%}"
        except ValueError:  # absent or not a number in a foreign model's metadata: not shown
            acc_text = ""
        kernel = f" k={meta['kernel']}" if meta.get("kernel") not in (None, "", "none") else ""  # "none": no kernel
        info = Text(printable(f"{meta.get('arch', '?')}{kernel}{acc_text}"))  # the file's words, never markup
        self.query_one("#model-info", Static).update(info)

    def _classifier(self, path: Path) -> Classifier:
        """The model file's classifier, made once (loading a session takes longer than classifying)."""
        if path not in self._classifiers:
            self._classifiers[path] = self.services.classifier(path)
        return self._classifiers[path]

    @on(DirectoryTree.FileSelected, "#image-tree")
    def _file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.query_one("#image-path", Input).value = str(event.path)
        self.classify(event.path)

    @on(Input.Submitted, "#image-path")
    def _path_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.classify(Path(event.value.strip()).expanduser())

    def classify(self, path: Path) -> None:
        """Classify one image file with the chosen model (in a thread)."""
        model = self.query_one("#model", Select).value
        if model is Select.NULL:
            self.notify(
                f"No model to classify with: no .onnx file in {self.settings.export}/ (see the model panel).",
                severity="warning",
            )
            return
        self._classify_worker(path, Path(str(model)))

    @work(thread=True, exclusive=True, group="classify", exit_on_error=False)
    def _classify_worker(self, path: Path, model: Path) -> None:
        from ..inference.preprocess import open_image, to_model_input

        worker = get_current_worker()
        try:
            image = open_image(path)
            x = to_model_input(image)
            clf = self._classifier(model)
            t0 = time.perf_counter()
            scores = predict_scores(clf, x[None, None].astype(np.float32))
            seconds = time.perf_counter() - t0
        except Exception as exc:  # noqa: BLE001 - a bad image or model is a notification, not a crash
            if not worker.is_cancelled:  # the user has moved on: an old image's error is not news
                self.app.call_from_thread(
                    self.notify,
                    printable(f"{path.name}: {exc}"),
                    title="Cannot classify",
                    severity="error",
                    markup=False,
                )
            return
        prediction = predictions(scores, clf.classes, TOP_K)[0]
        result = {
            "path": str(path),
            "image": image,
            "input": x,
            "probs": np.asarray(scores.probs)[0],
            "threshold": scores.threshold,
            "seconds": seconds,
            "prediction": prediction,
            "top": prediction.top_k_json(),
            "model": model.name,
        }
        # exclusive=True only marks this worker cancelled when a newer one starts (a thread cannot
        # be stopped), so a slow earlier image must not paint over the newer one's result
        if not worker.is_cancelled:
            self.app.call_from_thread(self._show_if_current, worker, result)

    def _show_if_current(self, worker: Worker[None], result: dict[str, Any]) -> None:
        # checked again here, on the app's thread where newer workers start: one may have started
        # between the worker's own check and this call
        if not worker.is_cancelled:
            self._show(result)

    def _show(self, result: dict[str, Any]) -> None:
        self.last = result
        image = result["image"]
        self.query_one("#image-title", Static).update(f"{Path(result['path']).name} ({image.width}×{image.height})")
        cols = max(8, self.query_one("#classify-view").content_size.width - 1)
        self.query_one("#image-original", Static).update(
            pixels(image.convert("RGB"), fit_size(image.width, image.height, cols, 14))
        )
        self.query_one("#input-title", Static).update("model input 28×28")
        self.query_one("#image-input", Static).update(pixels(result["input"]))
        top = [(t.label, t.probability) for t in result["prediction"].top_k]
        width = self.query_one("#classify-result").content_size.width - 12 - 7 - 1  # label+gap, percentage
        self.query_one("#topk", Static).update(bars(top, width=max(3, min(width, 20)), label_width=11))
        self.query_one("#classify-unsure", Static).update(unsure_text(result["prediction"], result["threshold"]))
        timing = f"{result['seconds'] * 1000:.1f} ms" if self.settings.timings else "(timing hidden)"
        self.query_one("#classify-time", Static).update(f"{result['model']} · inference {timing}")
