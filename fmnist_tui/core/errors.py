"""Errors a user can cause, each carrying the exit code the CLI returns for it.

The library speaks no CLI: a message names a setting as a reference, `ref("epochs")`, and each view
phrases the reference in its own words when it shows the error — the CLI as a flag (`--epochs`), the
TUI as a form field or a button, SageMaker as a hyperparameter key. `str(error)` gives the plain name.
"""

from __future__ import annotations

import re
from collections.abc import Callable

#: Exit codes shared by every command (docs/reliability.md, "Exit codes").
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_REF = re.compile(r"«([a-z_]+)»")


def ref(name: str) -> str:
    """A reference to a setting or an action (`epochs`, `resume`) inside an error message."""
    return f"«{name}»"


def phrase(message: str, name: Callable[[str], str]) -> str:
    """The message with each reference replaced by `name(reference)`."""
    return _REF.sub(lambda m: name(m.group(1)), message)


class FmnistError(Exception):
    """A problem the user can fix; a view shows `render(...)` as one line, the CLI exits with `exit_code`."""

    exit_code: int = EXIT_FAILED

    def render(self, name: Callable[[str], str]) -> str:
        """The message with its setting references in a view's words."""
        return phrase(super().__str__(), name)

    def __str__(self) -> str:
        return self.render(lambda setting: setting)


class UsageError(FmnistError):
    """An invalid option value or combination (exit 2, like Typer's own usage errors)."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """One setting has a bad value: `field` names it, `problem` says what is wrong, `fix` what to do."""

    def __init__(self, field: str, problem: str, fix: str = "") -> None:
        self.field, self.problem, self.fix = field, problem, fix
        super().__init__(f"{ref(field)} {problem}" + (f"; {fix}" if fix else ""))


class DataError(FmnistError):
    """The dataset is missing, truncated or fails its hash."""


class RunError(FmnistError):
    """A run folder is unknown, unfinished, corrupted or would be overwritten."""


class Interrupted(FmnistError):
    """The user stopped the work (Ctrl-C) at a safe point; the message says what was kept (exit 130)."""

    exit_code = EXIT_INTERRUPTED
