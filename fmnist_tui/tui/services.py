"""What the TUI calls into the library for, gathered in one object so tests can inject fakes.

Each default imports its module lazily: torch and onnxruntime load when a screen first needs them,
not when the app starts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.config import TrainConfig, resume_config
from ..core.data import Dataset
from ..core.events import Callback
from ..core.extras import needs_train_extra
from ..core.runs import Run
from ..inference.session import Classifier, OnnxClassifier  # light: onnxruntime loads with the first model


@needs_train_extra("Training")
def _train(cfg: TrainConfig, on_event: Callback, should_stop: Callable[[], bool], resume: bool) -> Any:
    from ..training.trainer import train  # torch loads here, in the worker thread

    return train(cfg, on_event, should_stop, resume=resume)


def _resume_config(
    run_dir: Path, epochs: int | None, threads: int | None, device: str | None = None, compile: str | None = None
) -> TrainConfig:
    return resume_config(run_dir, epochs=epochs, threads=threads, device=device, compile=compile)


def _load_dataset(data_dir: Path | None) -> Dataset:
    from ..core.data import load_dataset

    return load_dataset(data_dir)


@needs_train_extra("Computing feature maps")
def _feature_maps(run: Run, image: np.ndarray) -> Sequence[np.ndarray]:
    from ..study.featuremaps import run_feature_maps

    return run_feature_maps(run, image)


def _classifier(model: Path) -> Classifier:
    return OnnxClassifier(model)


@dataclass
class Settings:
    """Where the TUI reads and writes: run folders, exported models, images to classify, the dataset."""

    runs: Path = Path("checkpoints")
    export: Path = Path("export")
    images: Path = Path(".")
    data_dir: Path | None = None
    timings: bool = True  # False hides measured times (reproducible screenshots)


@dataclass
class Services:
    """The library calls the screens make; every field can be replaced by a fake in tests."""

    train: Callable[[TrainConfig, Callback, Callable[[], bool], bool], Any] = field(default=_train)
    resume_config: Callable[..., TrainConfig] = field(default=_resume_config)
    load_dataset: Callable[[Path | None], Dataset] = field(default=_load_dataset)
    feature_maps: Callable[[Run, np.ndarray], Sequence[np.ndarray]] = field(default=_feature_maps)
    #: a model file → its classifier (the Classify tab keeps one per file)
    classifier: Callable[[Path], Classifier] = field(default=_classifier)
