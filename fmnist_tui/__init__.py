"""fmnist: a terminal lab for Fashion-MNIST (train, compare, look inside, export, classify)."""

from __future__ import annotations

import os

__version__ = "0.1.0"


def cpu_count() -> int:
    """Cores this process may use (the affinity mask, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
