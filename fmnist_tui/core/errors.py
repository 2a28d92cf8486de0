"""Errors a user can cause, each carrying the exit code the CLI returns for it."""

from __future__ import annotations

#: Exit codes shared by every command (see README, "Exit codes").
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class FmnistError(Exception):
    """A problem the user can fix; the CLI prints `str(err)` as one line and exits with `exit_code`."""

    exit_code: int = EXIT_FAILED


class UsageError(FmnistError):
    """An invalid option value or combination (exit 2, like Typer's own usage errors)."""

    exit_code = EXIT_USAGE


class DataError(FmnistError):
    """The dataset is missing, truncated or fails its hash."""


class RunError(FmnistError):
    """A run folder is unknown, unfinished, corrupted or would be overwritten."""
