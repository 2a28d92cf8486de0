"""onnxruntime latency of an exported model: the median time of one image, on one thread (torch-free)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .session import OnnxClassifier


def onnx_latency_ms(path: Path, repeats: int = 300) -> float:
    """Median onnxruntime latency (ms) of one image through an exported model, on one thread."""
    clf = OnnxClassifier(path, threads=1)  # one thread: batch-1 latency, steady while trainings run alongside
    x = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)
    for _ in range(30):  # warm-up: the first calls allocate buffers and pick kernels
        clf.predict_proba(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        clf.predict_proba(x)
        times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times))
