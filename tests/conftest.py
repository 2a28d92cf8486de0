"""Shared fixtures: a tiny synthetic Fashion-MNIST in IDX format, and the real dataset's location."""

from __future__ import annotations

import gzip
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import pytest_textual_snapshot

from tests.snapshot_svg import canonical

ROOT = Path(__file__).resolve().parents[1]

# the TUI snapshots are stored and compared in one SVG form per picture (tests/snapshot_svg.py); the plugin
# calls its normalize_svg on every stored and every new screenshot
_strip_id = pytest_textual_snapshot.normalize_svg
pytest_textual_snapshot.normalize_svg = lambda svg: canonical(_strip_id(svg))


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
