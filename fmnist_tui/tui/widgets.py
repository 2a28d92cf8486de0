"""Small widgets and renderables shared by the screens: half-block images, mosaics, bars, heatmaps, curves."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from PIL import Image
from rich.console import RenderableType
from rich.style import Style
from rich.text import Text
from rich_pixels import HalfcellRenderer, Pixels
from textual.widget import Widget
from textual_plotext import PlotextPlot

#: four-letter class names for matrix headers (CLASSES order)
SHORT = ("T-sh", "Trou", "Pull", "Dres", "Coat", "Sand", "Shir", "Snea", "Bag", "Boot")
#: three-letter names for the confusion matrix's column headers (cells are four wide)
SHORT3 = ("Tsh", "Tro", "Pul", "Dre", "Coa", "San", "Shi", "Sne", "Bag", "Boo")
EIGHTHS = " ▏▎▍▌▋▊▉█"


def to_uint8(array: np.ndarray, normalise: bool = False) -> np.ndarray:
    """A gray image as uint8 0–255: floats in [0,1] are scaled; `normalise` stretches min..max instead."""
    a = np.asarray(array, dtype=np.float32)
    if normalise:
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        return (a * 255).round().astype(np.uint8)
    if np.asarray(array).dtype == np.uint8:
        return np.asarray(array)
    return (np.clip(a, 0, 1) * 255).round().astype(np.uint8)


def pixels(image: np.ndarray | Image.Image, size: tuple[int, int] | None = None) -> Pixels:
    """Half-block rendering: one cell shows two pixels stacked, so 28×28 takes 28 columns × 14 rows."""
    img = image if isinstance(image, Image.Image) else Image.fromarray(to_uint8(image))
    return Pixels.from_image(img, resize=size, renderer=HalfcellRenderer())


def fit_size(width: int, height: int, max_cols: int, max_rows: int) -> tuple[int, int]:
    """Pixel size that keeps the aspect ratio and fits max_cols × max_rows cells (2 pixels per row)."""
    scale = min(max_cols / width, 2 * max_rows / height)
    return max(1, int(width * scale)), max(2, int(height * scale))


def tile(maps: np.ndarray, per_row: int, size: int, gap: int = 1, normalise: bool = True) -> np.ndarray:
    """Lay maps [K,H,W] out as one uint8 mosaic, each resized to size×size and scaled to its own range."""
    k = len(maps)
    rows = math.ceil(k / per_row)
    mosaic = np.full((rows * (size + gap) - gap, per_row * (size + gap) - gap), 40, dtype=np.uint8)
    for i, m in enumerate(maps):
        img = Image.fromarray(to_uint8(m, normalise=normalise))
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BOX)
        r, c = divmod(i, per_row)
        mosaic[r * (size + gap) : r * (size + gap) + size, c * (size + gap) : c * (size + gap) + size] = np.asarray(img)
    return mosaic


class Mosaic(Widget):
    """A grid of gray maps that fits as many per row as the widget's width allows."""

    DEFAULT_CSS = "Mosaic { height: auto; width: 1fr; }"

    def __init__(self, size: int = 14, normalise: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tile_size, self.normalise = size, normalise
        self.maps: np.ndarray | None = None

    def set_maps(self, maps: np.ndarray | None) -> None:
        self.maps = maps
        self.refresh(layout=True)

    def _per_row(self, width: int) -> int:
        return max(1, (width + 1) // (self.tile_size + 1))

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        if self.maps is None or not len(self.maps):
            return 1
        rows = math.ceil(len(self.maps) / min(self._per_row(width), len(self.maps)))
        return math.ceil((rows * (self.tile_size + 1) - 1) / 2)

    def render(self) -> RenderableType:
        if self.maps is None or not len(self.maps):
            return Text("")
        per_row = min(self._per_row(self.content_size.width), len(self.maps))
        return pixels(tile(self.maps, per_row, self.tile_size, normalise=self.normalise))


def bar(fraction: float, width: int) -> str:
    """A horizontal bar of `width` cells filled to `fraction`, in eighths of a cell."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (EIGHTHS[part] if part else "")).ljust(width)


def bars(items: Iterable[tuple[str, float]], width: int = 20, label_width: int = 12, style: str = "green") -> Text:
    """Labelled bars with percentages, one per line: probabilities, per-class accuracies."""
    text = Text()
    for label, value in items:
        text.append(f"{label[:label_width]:<{label_width}} ")
        text.append(bar(value, width), style=style)
        text.append(f" {value:6.1%}\n")
    text.rstrip()
    return text


def heatmap(cm: Sequence[Sequence[int]]) -> Text:
    """A confusion matrix as coloured cells with counts (45 columns); rows are the true class, shaded by row share."""
    matrix = np.asarray(cm, dtype=np.int64)
    text = Text("true " + "".join(f"{s:>4}" for s in SHORT3[: len(matrix)]) + "\n", style="bold")
    for i, row in enumerate(matrix):
        total = max(int(row.sum()), 1)
        text.append(f"{SHORT[i]:<5}", style="bold")
        for j, count in enumerate(row):
            share = count / total
            base = (40, 170, 90) if i == j else (210, 60, 60)
            bg = tuple(int(20 + (c - 20) * min(1.0, share * (1 if i == j else 4))) for c in base)
            fg = "black" if sum(bg) > 380 else "white"
            cell = f"{int(count):>4}" if count < 1000 else f"{count / 1000:>3.0f}k"  # 4 columns keep a gap
            text.append(cell, style=Style.parse(f"{fg} on rgb({bg[0]},{bg[1]},{bg[2]})"))
        text.append("\n")
    text.rstrip()
    return text


def mean_rows(histories: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Per-epoch means over several runs' metrics rows, for the epochs they all have."""
    histories = [h for h in histories if h]
    if not histories:
        return []
    n = min(len(h) for h in histories)
    keys = ("train_loss", "val_loss", "train_acc", "val_acc")
    return [
        {"epoch": histories[0][e]["epoch"], **{k: float(np.mean([h[e][k] for h in histories])) for k in keys}}
        for e in range(n)
    ]


class CurvesPlot(PlotextPlot):
    """Train and validation curves of one metric ('loss' or 'acc') over epochs."""

    def __init__(self, metric: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metric = metric
        self.rows: list[dict[str, float]] = []
        self._version = 0
        self._cache: tuple[Any, Any] | None = None  # (key, what plotext rendered)

    def render(self) -> Any:  # the parent's renderable, whatever Textual's version calls it
        """plotext rebuilds the whole chart on every render; reuse it until the data, size or theme change."""
        key = (self._version, self.size, self.app.theme)
        if self._cache is None or self._cache[0] != key:
            self._draw()
            self._cache = (key, super().render())
        return self._cache[1]

    def on_mount(self) -> None:
        super().on_mount()  # registers the app's theme with plotext
        self.show(self.rows)

    def show(self, rows: list[dict[str, float]]) -> None:
        self.rows, self._version = list(rows), self._version + 1
        self.refresh()

    def _draw(self) -> None:
        """The chart of `rows`, in the app's theme: plotext gives each line its colour when it is plotted, from
        the theme set then, so the theme is set first (plotted before the first render, the lines took
        plotext's default palette; after it, the theme's: the colours depended on timing)."""
        plt = self.plt
        plt.clear_data()
        plt.theme(self._get_plotext_theme_name(self.app.theme))
        plt.title("loss" if self.metric == "loss" else "accuracy")
        if self.rows:
            epochs = [int(r["epoch"]) for r in self.rows]
            plt.plot(epochs, [r[f"train_{self.metric}"] for r in self.rows], label="train", marker="braille")
            plt.plot(epochs, [r[f"val_{self.metric}"] for r in self.rows], label="val", marker="braille")
            plt.xticks([float(e) for e in sorted(set(epochs))[:: max(1, len(epochs) // 5)]])
