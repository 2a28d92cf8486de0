"""fmnist: a terminal lab for Fashion-MNIST (train, compare, look inside, export, classify)."""

from __future__ import annotations

__version__ = "0.1.0"
