"""The optional `[train]` extra: the modules it adds to the base install, and the one line saying how to get it.

The base install (`pip install fmnist-tui`) classifies: predict, serve and the TUI's Classify tab need no
torch. Training, export, studies and feature maps need the extra. Where a view runs such work it turns the
ModuleNotFoundError of an extra's module into that one line (`missing_extra`) instead of a traceback.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from typing import Any, TypeVar, cast

from .errors import FmnistError

#: the top-level modules `pip install 'fmnist-tui[train]'` adds (see pyproject.toml)
TRAIN_MODULES = frozenset({"torch", "torchvision", "onnx", "onnxscript", "safetensors", "matplotlib"})
INSTALL_TRAIN = "pip install 'fmnist-tui[train]'"

F = TypeVar("F", bound=Callable[..., Any])


class MissingExtraError(FmnistError):
    """Work that needs a module of the `[train]` extra, in an install without it."""


def _absent(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def missing_extra(exc: BaseException, what: str) -> MissingExtraError | None:
    """The one-line error for `what` when `exc` says a module of the extra is not installed, else None.

    A module that is installed but fails to import (a broken torch) is not a missing extra: None."""
    name = exc.name if isinstance(exc, ModuleNotFoundError) else None
    top = (name or "").partition(".")[0]
    if top not in TRAIN_MODULES or not _absent(top):
        return None
    return MissingExtraError(
        f"{what} needs {top}, which the base install leaves out; install the extra: {INSTALL_TRAIN}"
    )


def needs_train_extra(what: str) -> Callable[[F], F]:
    """Decorate a function whose work needs the extra: its missing modules become a MissingExtraError."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except ModuleNotFoundError as exc:
                missing = missing_extra(exc, what)
                if missing is None:
                    raise
                raise missing from exc

        return cast(F, wrapper)

    return decorate
