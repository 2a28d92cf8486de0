"""Helpers for the TUI tests: screen text, notifications, waiting for workers, and synthetic run folders."""

from __future__ import annotations

import asyncio
import functools
import html
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.cells import cell_len
from textual.app import App
from textual.notifications import Notification
from textual.widgets import OptionList, Select

from fmnist_tui.core.config import TrainConfig
from fmnist_tui.core.fsutil import write_json
from fmnist_tui.core.metrics import per_class
from fmnist_tui.core.runs import write_metrics
from tests.snapshot_svg import CELL

#: a run of text in rich's export_svg: its left edge in px, its screen row (its clip path), its escaped text
_SVG_TEXT = re.compile(r'<text [^>]*?x="([\d.]+)"[^>]*?clip-path="url\(#[\w-]+-line-(\d+)\)">(.*?)</text>', re.S)


def screen_text(app: App[Any]) -> str:
    """The visible screen as plain text (what a user reads), one line per row, each as wide as the screen: the
    text runs of the app's public SVG screenshot (`App.export_screenshot`) put back on their rows and columns."""
    width, height = app.size
    rows = [[" "] * width for _ in range(height)]
    for x, line, content in _SVG_TEXT.findall(app.export_screenshot()):
        row, column = rows[int(line)], round(float(x) / CELL)
        for char in html.unescape(content).replace("\xa0", " "):  # export_svg writes a space as &#160;
            cells = cell_len(char)
            if char == "\n" or column + cells > width:  # each row's segments end in a newline past its end
                break
            if cells:
                row[column : column + cells] = [char] + [""] * (cells - 1)  # a wide character fills two cells
            elif column:
                row[column - 1] += char  # a combining mark, on the character before it
            column += cells
    return "\n".join("".join(row) for row in rows)


def record_notifications(app: App[Any]) -> list[Notification]:
    """The notifications `app` raises from now on, in order (call it before the app runs). The app's public
    `notify`, which every widget's `notify` calls too, is wrapped on this one instance: it records each one,
    then shows it as before."""
    seen: list[Notification] = []
    show = app.notify

    def notify(message: str, **options: Any) -> None:
        seen.append(Notification(message, options.get("title", ""), options.get("severity", "information")))
        show(message, **options)

    app.notify = notify  # type: ignore[method-assign]  # this instance's only: the class stays as it is
    return seen


def choices(select: Select[Any]) -> list[str]:
    """The options a Select offers, as a user reads them in its drop-down (its public OptionList's prompts)."""
    return [str(option.prompt) for option in select.query_one(OptionList).options]


async def screenshot(
    app: App[Any],
    size: tuple[int, int],
    steps: Callable[[Any], Awaitable[None]] | None = None,
    press: Sequence[str] = (),
) -> str:
    """An SVG screenshot of `app` run at `size` after `steps(pilot)` and the keys `press`, with tooltips and
    notifications on, taken once the screen has settled (its scheduled animations done) by the public
    `App.export_screenshot`."""
    async with app.run_test(size=size, tooltips=True, notifications=True) as pilot:
        if steps is not None:
            await steps(pilot)
        await pilot.pause()
        await pilot.press(*press)
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        return app.export_screenshot(simplify=True)


async def wait_workers(app: Any, timeout: float = 60.0) -> None:
    """Wait for the app's own workers (not DirectoryTree's endless loader) to finish."""
    workers = [w for w in app.workers if w.group != "_loader"]
    if workers:
        await asyncio.wait_for(asyncio.gather(*(w.wait() for w in workers), return_exceptions=True), timeout)


async def wait_until(pilot: Any, condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    """Pause the pilot until `condition()` holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.05)


def fake_run(
    root: Path,
    arch: str,
    kernel: int | None,
    seed: int,
    accuracy: float,
    epochs: int = 3,
    seconds: float = 12.0,
    **options: Any,
) -> Path:
    """A finished run folder with deterministic config, metrics and summary (no training, no torch); `options`
    are further architecture options (depth=3)."""
    cfg = TrainConfig.create(arch=arch, kernel=kernel, seed=seed, epochs=epochs, out=str(root), **options)
    run = cfg.run_dir
    run.mkdir(parents=True)
    write_json(run / "config.json", {**cfg.to_dict(), "run": run.name, "params": 1000 + 10 * (kernel or 0)})
    rows = [
        {
            "epoch": e,
            "train_loss": 1.0 / e,
            "train_acc": accuracy - 0.1 / e,
            "val_loss": 1.1 / e,
            "val_acc": accuracy - 0.12 / e,
            "lr": 1e-3,
            "seconds": 4.0,
            "images_per_s": 1000.0,
        }
        for e in range(1, epochs + 1)
    ]
    write_metrics(run / "metrics.csv", rows)
    cm = np.full((10, 10), 2, dtype=np.int64)
    np.fill_diagonal(cm, round(accuracy * 100) + np.arange(10))
    write_json(
        run / "summary.json",
        {
            "test_accuracy": accuracy,
            "per_class": per_class(cm),
            "confusion_matrix": cm.tolist(),
            "params": 1000 + 10 * (kernel or 0),
            "macs": 5000,
            "train_seconds": seconds,
            "finished": True,
            "run": run.name,
            "arch": arch,
            "kernel": kernel,
            "seed": seed,
            "epochs": epochs,
        },
    )
    return run


def sync(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run an async test with asyncio.run (no pytest async plugin needed); fixtures pass through."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


def tiny_onnx(path: Path, seed: int = 0, metadata: dict[str, str] | None = None) -> Path:
    """A small linear Fashion-MNIST-shaped ONNX classifier with the export metadata (built without torch);
    `metadata` replaces some of its entries."""
    import json

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from fmnist_tui.core.data import CLASSES

    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array(rng.normal(0, 0.05, (784, 10)).astype(np.float32), "W")
    bias = numpy_helper.from_array(np.linspace(-0.5, 0.5, 10, dtype=np.float32), "B")
    shape = numpy_helper.from_array(np.array([-1, 784], dtype=np.int64), "shape")
    nodes = [
        helper.make_node("Reshape", ["input", "shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "W", "B"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=[weight, bias, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in {
        "classes": json.dumps(list(CLASSES)),
        "arch": "linear",
        "kernel": "",
        "params": "7850",
        "test_accuracy": "0.5",
        "run": path.stem,
        **(metadata or {}),
    }.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def garment_png(path: Path) -> Path:
    """A 56×56 PNG of a light 'trouser' shape on black, like a Fashion-MNIST image."""
    from PIL import Image

    img = np.zeros((56, 56), dtype=np.uint8)
    img[6:50, 16:26] = 210
    img[6:50, 30:40] = 210
    img[6:12, 16:40] = 230
    Image.fromarray(img).save(path)
    return path
