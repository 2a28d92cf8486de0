"""Shared CLI pieces: consoles, error handling, option types reused by several commands."""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer

from ..core.config import COMPILES, DEVICES
from ..core.errors import EXIT_USAGE, FmnistError
from ..core.fsutil import dumps
from ..core.text import printable

if TYPE_CHECKING:
    from rich.console import Console


#: the width of a console that writes to a file or a pipe (unless $COLUMNS says otherwise): room for tables
#: that need it; tables that need less stay as narrow as their content
PIPE_WIDTH = 240


class LazyConsole:
    """A rich Console made on first use: commands that print no rich output (predict --format csv,
    the JSON modes) do not pay for importing rich at start-up."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def get(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = for_pipes(Console(**self._options))
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


def for_pipes(console: Console) -> Console:
    """Fit a console that does not write to a terminal (a log file, a pipe) for line-based reading: rich
    would guess 80 columns there and break long lines mid-way; instead every print stays one line
    (soft wrap) and tables get PIPE_WIDTH columns. Colours are already off there (rich sends no ANSI
    codes to a non-terminal)."""
    if not console.is_terminal:
        console.soft_wrap = True
        if not os.environ.get("COLUMNS", "").isdigit():  # an explicit $COLUMNS still wins, as in rich
            console.width = PIPE_WIDTH
    return console


console = LazyConsole()
err_console = LazyConsole(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Folder with the Fashion-MNIST IDX files (else $FMNIST_DATA, the Debian package, ~/.cache/fmnist).",
        file_okay=False,
    ),
]
RunsDirOpt = Annotated[Path, typer.Option("--runs", help="Folder holding the run folders.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


#: `--device` of every command: the config's devices (auto: CUDA when present, else the CPU)
# (mypy wants an Enum's members spelled out; these come from the config's DEVICES, their one home)
Device = Enum("Device", {name: name for name in DEVICES}, type=str)  # type: ignore[misc]
#: `--compile` of train, study and experiment: the training step's torch.compile mode (config's COMPILES)
Compile = Enum("Compile", {name: name for name in COMPILES}, type=str)  # type: ignore[misc]
#: help of a study's or experiment's `--compile` (placement: not part of any run's recipe)
COMPILE_HELP = (
    "torch.compile every training's step (see fmnist train --compile; graphs pays on a GPU for the ResNet). "
    "A setting of where runs train, not of their recipe: finished runs are reused whatever it is."
)

#: settings whose command-line flag is not `--<setting>`
FLAGS = {"hflip": "--no-augment"}


def flag(setting: str) -> str:
    """How the CLI names a setting an error refers to: `batch_size` → `--batch-size`."""
    return FLAGS.get(setting) or "--" + setting.replace("_", "-")


def shown(value: object) -> str:
    """A user-supplied path or name for a line printed with rich markup: control characters spelled
    out (`printable`), and brackets escaped so that `a[bold].png` or `x[/]` prints as written."""
    from rich.markup import escape

    return escape(printable(str(value)))


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line on stderr and return the Exit to raise."""
    # a message is text (`fmnist-tui[train]` or a path `a[1].png` is no markup) and one line (a path or
    # a model's metadata in it may hold a newline or an escape sequence)
    err_console.print(f"[bold red]error:[/] {shown(message)}", markup=True, highlight=False)
    if code == EXIT_USAGE:
        err_console.print("Try the command with --help for the valid options.")
    return typer.Exit(code)


def handle_errors(func: F) -> F:
    """Turn a user's mistake (FmnistError) into one line on stderr and its exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except FmnistError as exc:
            raise fail(exc.render(flag), exc.exit_code) from None

    return cast(F, wrapper)


@contextmanager
def progress_bar(what: str, total: int, quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A transient progress bar on stderr, in a terminal only (nothing in a pipe, a log file or when `quiet`);
    yields `advance(done, total)`."""
    console = err_console.get()
    if quiet or not console.is_terminal:
        yield lambda done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console, transient=True
    ) as progress:
        task = progress.add_task(what, total=total)
        yield lambda done, total: progress.update(task, completed=done, total=total)


def print_json(obj: Any) -> None:
    """Write JSON to stdout without rich's wrapping or colour."""
    sys.stdout.write(dumps(obj) + "\n")
    sys.stdout.flush()


def write_exact(text: str) -> None:
    """Write machine-readable text (CSV) to stdout with file names exact: a name's bytes that are not
    UTF-8 (held as lone surrogates) go out as those bytes, whatever the locale's error handler."""
    out = getattr(sys.stdout, "buffer", None)
    if out is None:
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    out.write(text.encode(sys.stdout.encoding or "utf-8", "surrogateescape"))
    out.flush()


class StopFlag:
    """The first Ctrl-C sets the flag and says `message` (the work stops at its next safe point); a second
    one raises KeyboardInterrupt at once. Call the flag to read it (the trainer's `should_stop`)."""

    def __init__(self, message: str, quiet: bool = False) -> None:
        self.stop = False
        self.message = message
        self.quiet = quiet  # DDP ranks other than 0 stop silently
        self._previous: Any = None

    def __enter__(self) -> StopFlag:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True
        if not self.quiet:
            err_console.print(self.message)

    def __call__(self) -> bool:
        return self.stop
