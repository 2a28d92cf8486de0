"""Feature maps: the post-ReLU activations of conv1 and conv2 for one image."""

from __future__ import annotations

import numpy as np
import torch

from ..training.checkpoints import model_from_run
from ..core.errors import UsageError
from ..training.models import CNN
from ..core.runs import Run


def feature_maps(model: torch.nn.Module, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """conv1 [32,28,28] and conv2 [64,14,14] activations for a 28×28 image (uint8 0–255 or float 0–1)."""
    if not isinstance(model, CNN):
        raise UsageError("feature maps need a CNN run; this model has no convolution layers (e.g. the mlp)")
    x = np.asarray(image, dtype=np.float32)
    if image.dtype == np.uint8:
        x = x / 255.0
    if x.shape != (28, 28):
        raise UsageError(f"feature maps need a 28×28 image, got shape {x.shape}")
    with torch.no_grad():
        a1, a2 = model.eval().features(torch.from_numpy(x)[None, None])
    return a1[0].numpy(), a2[0].numpy()


def run_feature_maps(run: Run, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Feature maps of a run's best weights; a UsageError for runs without convolutions."""
    if run.config().get("arch") == "mlp":
        raise UsageError(f"run {run.name!r} is an mlp: it has no conv layers, so no feature maps; pick a cnn run")
    return feature_maps(model_from_run(run), image)
