"""Shared fixtures: a tiny synthetic Fashion-MNIST in IDX format, the real dataset's location, and the TUI's
screen snapshots."""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import struct
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from syrupy.assertion import SnapshotAssertion

from tests.snapshot_svg import CanonicalSVG, stored_form

ROOT = Path(__file__).resolve().parents[1]


# the tests make their own runs: the lab's shipped results (./results) stay out of them, unless a test points here
os.environ["FMNIST_RESULTS"] = str(ROOT / "tests" / "no-shipped-results")


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    """Write a uint8 array as an IDX file (gzip-compressed when `gz`)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload, mtime=0))
    else:
        path.write_bytes(payload)


def synthetic_images(labels: np.ndarray, seed: int) -> np.ndarray:
    """Learnable 28×28 images: class c lights a bar at a class-specific place, plus noise."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 40, size=(len(labels), 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        r = 2 + 2 * int(c)
        images[i, r : r + 3, 4:24] = 220
    return images


def make_tiny_dataset(folder: Path, per_class_train: int = 30, per_class_test: int = 10, gz: bool = True) -> Path:
    """Write the four IDX files of a small balanced dataset into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, per_class, seed in (("train", per_class_train, 1), ("t10k", per_class_test, 2)):
        labels = np.repeat(np.arange(10), per_class).astype(np.uint8)
        np.random.default_rng(seed).shuffle(labels)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", synthetic_images(labels, seed), gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, gz)
    return folder


@pytest.fixture
def tiny_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A synthetic dataset folder, with hash verification off (its hashes are not Fashion-MNIST's)."""
    monkeypatch.setenv("FMNIST_VERIFY", "0")
    monkeypatch.delenv("FMNIST_DATA", raising=False)
    return make_tiny_dataset(tmp_path / "data")


@pytest.fixture
def cli_env(tiny_data: Path) -> dict[str, str]:
    """Environment for subprocess CLI runs on the synthetic dataset."""
    env = dict(os.environ)
    env.update(
        {
            "FMNIST_VERIFY": "0",
            "FMNIST_DATA": str(tiny_data),
            "PYTHONPATH": str(ROOT),
            "COLUMNS": "200",
            "NO_COLOR": "1",
        }
    )
    return env


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable


@pytest.fixture
def screen_snapshot(snapshot: SnapshotAssertion, request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., None]:
    """`check(app, size, steps=None, press=())`: run `app` at `size`, let `steps(pilot)` act and the keys `press`
    be pressed, and compare its screen with the stored one, tests/__snapshots__/MODULE/TEST.svg (syrupy's
    `snapshot`, in the form of tests/snapshot_svg.py); `pytest --snapshot-update` writes the file instead. A
    mismatch fails the test, naming both files (the new screen is written into the test's tmp_path)."""
    from tests.tui_support import screenshot

    stored = snapshot.use_extension(CanonicalSVG)

    def check(
        app: Any,
        size: tuple[int, int],
        steps: Callable[[Any], Awaitable[None]] | None = None,
        press: Sequence[str] = (),
    ) -> None:
        svg = asyncio.run(screenshot(app, size, steps, press))
        if stored == svg:
            return
        shown = tmp_path / "screen.svg"
        shown.write_text(stored_form(svg), encoding="utf-8")
        kept = request.path.parent / "__snapshots__" / request.path.stem / f"{request.node.name}.svg"
        pytest.fail(
            f"the screen differs from its snapshot: compare {shown} (this run's) with {kept.relative_to(ROOT)};"
            f" if the change is meant: pytest {request.path.relative_to(ROOT)} --snapshot-update",
            pytrace=False,
        )

    return check


def cheapest_shipped_model(folder: Path) -> Path:
    """`folder` holding only the shipped MLP: a report's calibration section in seconds, not minutes."""
    folder.mkdir()
    shutil.copy(ROOT / "export" / "mlp-s0.onnx", folder)
    return folder
