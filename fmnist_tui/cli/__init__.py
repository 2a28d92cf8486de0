"""The `fmnist` command: a Typer app; each command lives in its own module.

Commands are imported when used: `fmnist predict` loads the predict module alone (no torch, no
Textual), so a one-image classification starts in a fraction of a second. `app` (the whole CLI,
for --help and for tests) is built on first access."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.errors import EXIT_INTERRUPTED

if TYPE_CHECKING:
    import typer

    from ..core.extras import MissingExtraError

#: name → (module under fmnist_tui.cli, function, help panel), in the order --help lists them
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("train_cmd", "command", "Train"),
    "evaluate": ("evaluate_cmd", "evaluate", "Train"),
    "data": ("data_cmd", "data", "Data"),
    "export": ("export_cmd", "export", "Use"),
    "predict": ("predict_cmd", "predict", "Use"),
    "study": ("study_cmd", "study", "Study"),
    "experiment": ("study_cmd", "experiment", "Study"),
    "results": ("results_cmd", "results", "Study"),
    "report": ("report_cmd", "report", "Study"),
    "featuremaps": ("report_cmd", "featuremaps", "Study"),
    "serve": ("serve_cmd", "serve", "Use"),
    "tui": ("tui_cmd", "tui", "View"),
}

HELP = (
    "A terminal lab for Fashion-MNIST: train an MLP and CNNs (3×3, 5×5, 7×7), compare them, look inside, "
    "export to ONNX, classify images."
)


def _version(value: bool) -> None:
    if value:
        import typer

        from .. import __version__

        typer.echo(f"fmnist {__version__}")
        raise typer.Exit()


def build_app(only: str | None = None) -> typer.Typer:
    """The Typer app with every command, or with the command `only` alone (what `main` runs)."""
    import typer

    app = typer.Typer(
        name="fmnist", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, help=HELP
    )
    for name, (module, attr, panel) in COMMANDS.items():
        if only is None or name == only:
            func, settings = _command(name, module, attr)
            app.command(name, rich_help_panel=panel, context_settings=settings)(func)

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ) -> None:
        """fmnist: see each command's --help."""

    return app


def _command(name: str, module: str, attr: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The command's function and its click settings. A module that needs the [train] extra to import,
    in the base install, gives a stand-in that says so: --help and a mistyped command still work there."""
    try:
        func = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    except ModuleNotFoundError as exc:
        from ..core.extras import missing_extra

        missing = missing_extra(exc, f"fmnist {name}")
        if missing is None:
            raise
        return _needs_extra(missing), {"allow_extra_args": True, "ignore_unknown_options": True}
    if getattr(func, "is_factory", False):  # built from the registry each time (train's options)
        func = func()
    return func, getattr(func, "context_settings", {})


def _needs_extra(missing: MissingExtraError) -> Callable[[], None]:
    """A command that takes any arguments and fails with `missing`'s one line (exit 1)."""
    from rich.markup import escape

    from ..core.extras import INSTALL_TRAIN
    from .common import handle_errors

    def command() -> None:
        raise missing

    command.__doc__ = f"Needs the train extra: {escape(INSTALL_TRAIN)}"  # --help reads Rich markup
    return handle_errors(command)


def __getattr__(name: str) -> Any:
    if name == "app":
        app = build_app()
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Console-script entry point: builds only the command named on the line (all of them for --help)."""
    first = sys.argv[1] if len(sys.argv) > 1 else None
    try:
        _run(first)
    except ModuleNotFoundError as exc:  # the base install has no torch: say which extra, not a traceback
        from ..core.extras import missing_extra

        missing = missing_extra(exc, f"fmnist {first}" if first in COMMANDS else "this command")
        if missing is None:
            raise
        from .common import fail

        fail(str(missing))
        sys.exit(1)
    except SystemExit as stop:
        if stop.code == EXIT_INTERRUPTED:
            _leave_interrupted()
        raise
    except KeyboardInterrupt:  # Ctrl-C while the command was still loading, before its own handler was set
        import shlex
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the message or the exit
        again = shlex.join(["fmnist", *sys.argv[1:]])
        sys.stderr.write(f"interrupted while starting; nothing was saved; run the same command again: {again}\n")
        _leave_interrupted()


def _leave_interrupted() -> None:
    """End an interrupted command with exit 130, whatever caught the Ctrl-C.

    A KeyboardInterrupt raised inside code CPython runs from a string (`exec`, as dataclasses and
    namedtuple do while torch imports) marks the interpreter "interrupted" even when we catch it, and
    `python -m fmnist_tui` (what a study's trainings and torchrun run) then ends by killing itself with
    SIGINT, status -2, instead of the documented 130. So the threads are joined and the exit handlers run
    here, as the interpreter's own exit would, and the process leaves with 130."""
    import atexit
    import threading

    shutdown = getattr(threading, "_shutdown", None)  # joins the non-daemon threads, as interpreter exit does
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BrokenPipeError, ValueError):  # a reader that went away, or a closed stream
            stream.flush()
    os._exit(EXIT_INTERRUPTED)


def _run(first: str | None) -> None:
    app = build_app(only=first if first in COMMANDS else None)
    if first != "predict":
        app()
        return
    # `fmnist predict` is run once per image by scripts, so its start and end count: everything it
    # prints is flushed and its helpers are joined when it returns, and onnxruntime's teardown at
    # interpreter exit would only add time to each call (bench/predict_speed.py times one). So it leaves at once.
    try:
        app()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if isinstance(stop.code, str):
            sys.stderr.write(stop.code + "\n")
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # a reader that went away (`| head`), or a closed stream
        code = code or 1
    os._exit(code)
