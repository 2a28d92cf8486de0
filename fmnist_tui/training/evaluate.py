"""Batched inference on in-memory uint8 images, and the test-set evaluation of a run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.data import load_dataset
from ..core.metrics import classification_report
from ..core.runs import Run
from .checkpoints import model_from_run
from .device import resolve_device


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N,28,28] → float32 [N,1,28,28] in [0,1], the model's (and the ONNX file's) input."""
    return images.unsqueeze(1).float().div_(255.0)


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 1000, bf16: bool = False) -> torch.Tensor:
    """Logits [N,10] (float32, on the images' device) for uint8 images [N,28,28]."""
    model.eval()
    device = images.device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    out = []
    with autocast:
        for start in range(0, len(images), batch_size):
            out.append(model(to_input(images[start : start + batch_size])).float())
    return torch.cat(out) if out else torch.zeros(0, 10, device=device)


@contextmanager
def strict_fp32() -> Iterator[None]:
    """Full fp32 on CUDA too: cuDNN convolutions use TF32 by default (10-bit mantissa), which moves
    logits by ~1e-3 and can flip a borderline test image against the CPU and the ONNX file."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def predict_classes(model: nn.Module, images: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """The class a model predicts for each image, in full precision (as the test set is evaluated)."""
    model = model.to(device)
    with strict_fp32():
        logits = predict_logits(model, torch.from_numpy(np.ascontiguousarray(images)).to(device))
    return logits.argmax(1).cpu().numpy()


def evaluate_model(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """Full-precision test metrics (accuracy, per-class, confusion matrix) for a model."""
    return classification_report(labels, predict_classes(model, images, device))


def evaluate_run(run: Run, data_dir: Path | None = None, device: str = "cpu") -> dict[str, Any]:
    """Re-evaluate a run's best weights on the test set (on `device`: cpu, cuda or auto)."""
    where = resolve_device(device)  # a missing GPU is one clear error, before any work
    model = model_from_run(run, "best")
    ds = load_dataset(data_dir)
    return evaluate_model(model, ds.test_images, ds.test_labels, where)
