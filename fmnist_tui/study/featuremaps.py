"""Feature maps: the post-ReLU activations of the first conv blocks for one image (torch loads on first use)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import numpy as np

from ..core import registry
from ..core.errors import UsageError
from ..core.runs import Run

if TYPE_CHECKING:
    from torch import nn


def require_convs(run: Run) -> None:
    """A UsageError unless the run's architecture has convolution layers (checked before any work)."""
    arch = str(run.config().get("arch"))
    if not registry.has_convs(arch):
        raise UsageError(
            f"run {run.name!r} is an {arch}: it has no conv layers, so no feature maps; "
            f"pick a run of {', '.join(n for n, s in registry.REGISTRY.items() if s.has_convs)}"
        )


#: blocks whose maps are shown: conv1 and conv2 (the notebook's two; a one-block CNN shows conv1 alone)
SHOWN_BLOCKS = 2


def feature_maps(model: nn.Module, image: np.ndarray) -> list[np.ndarray]:
    """The first SHOWN_BLOCKS blocks' activations for a 28×28 image (uint8 0–255 or float 0–1): the notebook's
    conv1 [32,28,28] and conv2 [64,14,14]."""
    import torch

    if not callable(getattr(model, "features", None)):
        raise UsageError("feature maps need a model with convolution layers (this one has none, e.g. the mlp)")
    x = np.asarray(image, dtype=np.float32)
    if image.dtype == np.uint8:
        x = x / 255.0
    if x.shape != (28, 28):
        raise UsageError(f"feature maps need a 28×28 image, got shape {x.shape}")
    # nn.Module's __getattr__ is typed Tensor | Module: say what `features` is
    extract = cast("Callable[[torch.Tensor], tuple[torch.Tensor, ...]]", model.eval().features)
    with torch.no_grad():
        maps = extract(torch.from_numpy(x)[None, None])
    return [m[0].numpy() for m in maps[:SHOWN_BLOCKS]]


def run_feature_maps(run: Run, image: np.ndarray) -> list[np.ndarray]:
    """Feature maps of a run's best weights; a UsageError for runs without convolutions."""
    from ..training.checkpoints import model_from_run

    require_convs(run)
    return feature_maps(model_from_run(run), image)
