"""A tiny calibrated ONNX model for the tests: tui_support.tiny_onnx's linear classifier, calibrated on the synthetic
dataset by the project's own path (deploy/calibrate.py), in a second or two and without torch."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import make_tiny_dataset
from tests.tui_support import tiny_onnx


def calibrated_onnx(folder: Path, seed: int = 0) -> Path:
    """folder/tiny-calibrated.onnx: calibrated on a synthetic dataset made in folder/data."""
    import onnx

    from fmnist_tui.core.data import load_dataset
    from fmnist_tui.deploy.calibrate import calibrate

    data = make_tiny_dataset(folder / "data")
    raw = tiny_onnx(folder / "tiny-raw.onnx", seed=seed)
    old = os.environ.get("FMNIST_VERIFY")
    os.environ["FMNIST_VERIFY"] = "0"
    try:
        model, _, _ = calibrate(onnx.load(str(raw)), load_dataset(data))
    finally:
        os.environ.pop("FMNIST_VERIFY") if old is None else os.environ.__setitem__("FMNIST_VERIFY", old)
    path = folder / "tiny-calibrated.onnx"
    onnx.save(model, str(path))
    return path
