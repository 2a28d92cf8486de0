"""The fmnist terminal UI (Textual): train, compare results, classify images, explore the data."""

from __future__ import annotations

from .app import FmnistApp, create_app

__all__ = ["FmnistApp", "create_app"]
