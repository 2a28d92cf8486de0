"""The Explore tab: samples and the mean image of a class, an image beside its permuted pixels (`--permute`),
class counts, and a run's feature maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static

from ..core import registry
from ..core.data import CLASSES, Dataset, class_counts, permute_pixels, pixel_permutation
from ..core.errors import FmnistError
from ..core.runs import BEST, Run, list_runs
from ..core.text import printable
from .services import Services, Settings
from .widgets import SHORT, Mosaic, pixels

SAMPLES = 12  # sample images shown per class


def counts_table(ds: Dataset) -> str:
    """Images per class in each split, in columns just wide enough for the widest count (one space between),
    so that it fits the side panel at 80 columns instead of wrapping."""
    splits = ("train", "val", "test")
    counts = [[f"{n:,}" for n in class_counts(ds.split(s)[1])] for s in splits]
    width = 1 + max(len(cell) for cell in (*splits, *(c for column in counts for c in column)))
    lines = [f"{'class':<5}" + "".join(f"{split:>{width}}" for split in splits)]
    for i, name in enumerate(SHORT):
        lines.append(f"{name:<5}" + "".join(f"{column[i]:>{width}}" for column in counts))
    return "\n".join(lines)


def cnn_runs(root: Any) -> list[Run]:
    """Runs with best weights and convolutions: the ones that have feature maps."""
    runs = []
    for run in list_runs(root):
        try:
            if run.file(BEST).exists() and registry.has_convs(run.config().get("arch")):
                runs.append(run)
        except FmnistError:
            continue
    return runs


class ExplorePane(Vertical):
    """Class picker, image index and run picker on the left; images and feature maps on the right."""

    def __init__(self, settings: Settings, services: Services, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings, self.services = settings, services
        self.dataset: Dataset | None = None
        self.loading = False

    def compose(self) -> ComposeResult:
        with Horizontal():
            with VerticalScroll(id="explore-side"):
                yield Label("class")
                yield Select(
                    [(name, i) for i, name in enumerate(CLASSES)],
                    value=0,
                    allow_blank=False,
                    compact=True,
                    id="explore-class",
                )
                yield Label("n-th test image of class")
                yield Input("0", type="integer", compact=True, id="explore-index")
                yield Label("run for feature maps")
                yield Select([], prompt="no CNN run yet", compact=True, id="explore-run")
                yield Button("Feature maps (f)", id="explore-maps", compact=True)
                yield Static("", id="explore-counts")
            with VerticalScroll(id="explore-main"):
                yield Static("Loading the dataset…", id="explore-status")
                yield Static("", id="samples-title", classes="section")
                yield Mosaic(size=14, normalise=False, id="samples")
                yield Static("", id="mean-title", classes="section")
                with Horizontal(id="mean-row"):
                    yield Static("", id="mean-image")
                    yield Static("", id="chosen-image")
                yield Static("", id="permuted-title", classes="section")
                with Horizontal(id="permuted-row"):
                    yield Static("", id="natural-image")
                    yield Static("", id="permuted-image")
                yield Static("", id="maps-title", classes="section")
                yield Mosaic(size=14, id="conv1")
                yield Mosaic(size=14, id="conv2")

    def on_mount(self) -> None:
        self.reload_runs()

    def ensure_loaded(self) -> None:
        """Load the dataset in a thread the first time the tab is shown."""
        if self.dataset is None and not self.loading:
            self.loading = True
            self._load_worker()

    def reload_runs(self) -> None:
        picker = self.query_one("#explore-run", Select)
        runs = cnn_runs(self.settings.runs)
        picker.set_options([(r.name, str(r.path)) for r in runs])
        if runs:
            picker.value = str(runs[0].path)

    @work(thread=True, exclusive=True, group="explore-data", exit_on_error=False)
    def _load_worker(self) -> None:
        try:
            ds = self.services.load_dataset(self.settings.data_dir)
        except FmnistError as exc:
            self.app.call_from_thread(self._load_failed, str(exc))
        else:
            self.app.call_from_thread(self._loaded, ds)

    def _load_failed(self, message: str) -> None:
        self.loading = False
        self.query_one("#explore-status", Static).update(f"[red]Cannot load the dataset:[/] {message}")

    def _loaded(self, ds: Dataset) -> None:
        self.dataset, self.loading = ds, False
        self.query_one("#explore-status", Static).update(
            f"{len(ds.train_labels):,} train · {len(ds.val_labels):,} val · {len(ds.test_labels):,} test images"
        )
        self.query_one("#explore-counts", Static).update(counts_table(ds))
        self.show_class()

    def _chosen_class(self) -> int:
        """The class index the picker shows (it never is blank: allow_blank=False)."""
        return int(cast(int, self.query_one("#explore-class", Select).value))

    def chosen_image(self) -> tuple[np.ndarray, str] | None:
        """The test image the index picks within the chosen class, and its description."""
        if self.dataset is None:
            return None
        cls = self._chosen_class()
        members = np.flatnonzero(self.dataset.test_labels == cls)
        if not len(members):
            return None
        text = self.query_one("#explore-index", Input).value.strip() or "0"
        index = int(text) % len(members) if text.lstrip("-").isdigit() else 0
        return self.dataset.test_images[members[index]], f"test image #{members[index]} ({CLASSES[cls]})"

    @on(Select.Changed, "#explore-class")
    @on(Input.Submitted, "#explore-index")
    def show_class(self) -> None:
        """Sample grid, mean image and the chosen image of the selected class (training split)."""
        if self.dataset is None:
            return
        cls = self._chosen_class()
        images = self.dataset.train_images[self.dataset.train_labels == cls]
        self.query_one("#samples-title", Static).update(f"{CLASSES[cls]}: {min(SAMPLES, len(images))} training samples")
        self.query_one("#samples", Mosaic).set_maps(images[:SAMPLES])
        self.query_one("#mean-title", Static).update("class mean (train) · chosen image")
        if len(images):
            self.query_one("#mean-image", Static).update(pixels(images.mean(axis=0) / 255.0))
        chosen = self.chosen_image()
        self.query_one("#chosen-image", Static).update(pixels(chosen[0]) if chosen else "")
        self.query_one("#permuted-title", Static).update(
            "chosen image · its pixels permuted (--permute: the same pixels, no neighbourhoods)" if chosen else ""
        )
        self.query_one("#natural-image", Static).update(pixels(chosen[0]) if chosen else "")
        permuted = permute_pixels(chosen[0], pixel_permutation()) if chosen else None
        self.query_one("#permuted-image", Static).update(pixels(permuted) if permuted is not None else "")

    @on(Button.Pressed, "#explore-maps")
    def show_feature_maps(self) -> None:
        """Compute conv1/conv2 maps of the chosen image for the chosen run, in a thread (torch)."""
        chosen, run_path = self.chosen_image(), self.query_one("#explore-run", Select).value
        if chosen is None:
            self.notify("The dataset is not loaded yet.", severity="warning")
            return
        if run_path is Select.NULL or not run_path:
            self.notify("No CNN run to show: train one on the Train tab (1) first.", severity="warning")
            return
        self.query_one("#maps-title", Static).update("computing feature maps…")
        self._maps_worker(Run(Path(str(run_path))), chosen[0], chosen[1])

    @work(thread=True, exclusive=True, group="explore-maps", exit_on_error=False)
    def _maps_worker(self, run: Run, image: np.ndarray, what: str) -> None:
        try:
            layers = list(self.services.feature_maps(run, image))
        except Exception as exc:  # noqa: BLE001 - a damaged run must not take the app down
            message = str(exc) if isinstance(exc, FmnistError) else f"{type(exc).__name__}: {exc}"
            self.app.call_from_thread(self._maps_failed, message)
        else:
            self.app.call_from_thread(self._maps_shown, run.name, what, layers)

    def _maps_failed(self, message: str) -> None:
        self.query_one("#maps-title", Static).update("")
        self.notify(printable(message), title="Feature maps", severity="error", markup=False)

    def _maps_shown(self, run: str, what: str, layers: list[np.ndarray]) -> None:
        """conv1's maps, then conv2's (a one-block CNN has conv1 alone)."""
        parts = [f"conv{i} ({len(m)} maps{', shown 14×14' if i == 1 else ''})" for i, m in enumerate(layers, 1)]
        self.query_one("#maps-title", Static).update(f"{run}, {what}: {', then '.join(parts)}")
        self.query_one("#conv1", Mosaic).set_maps(layers[0] if layers else None)
        self.query_one("#conv2", Mosaic).set_maps(layers[1] if len(layers) > 1 else None)
