"""`fmnist evaluate`'s calibration part: the run's logits on the validation and test splits, the calibrator fitted on
validation (as the export fits it), and ECE, NLL and Brier score on the test set before and after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.data import load_dataset
from ..core.runs import Run
from ..inference import calibration as cal
from .checkpoints import model_from_run
from .device import resolve_device
from .evaluate import predict_logits, strict_fp32


def evaluate_calibration(run: Run, data_dir: Path | None = None, device: str = "cpu") -> dict[str, Any]:
    """{temperature, knots, images, before, temperature_only, after} on the test set, fitted on validation."""
    where = resolve_device(device)
    model = model_from_run(run, "best").to(where)
    ds = load_dataset(data_dir)

    def logits(images: np.ndarray) -> np.ndarray:
        with strict_fp32():
            out = predict_logits(model, torch.from_numpy(np.ascontiguousarray(images)).to(where))
        return out.cpu().numpy().astype(np.float64)

    calibrator = cal.fit_calibrator(logits(ds.val_images), ds.val_labels)
    measured = cal.before_after(logits(ds.test_images), ds.test_labels, calibrator)
    return {**calibrator.to_dict(), "fitted_on": "validation", **measured}
