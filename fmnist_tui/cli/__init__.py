"""The `fmnist` command: a Typer app; each command lives in its own module."""

from __future__ import annotations

import typer

from .. import __version__
from .data_cmd import data
from .evaluate_cmd import evaluate
from .experiment_cmd import experiment
from .export_cmd import export
from .predict_cmd import predict
from .report_cmd import featuremaps, report
from .results_cmd import results
from .serve_cmd import serve
from .train_cmd import train
from .tui_cmd import tui

app = typer.Typer(
    name="fmnist", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="A terminal lab for Fashion-MNIST: train an MLP and CNNs (3×3, 5×5, 7×7), compare them, look inside, "
         "export to ONNX, classify images.",
)
app.command(rich_help_panel="Train")(train)
app.command(rich_help_panel="Train")(evaluate)
app.command(rich_help_panel="Data")(data)
app.command(rich_help_panel="Use")(export)
app.command(rich_help_panel="Use")(predict)
app.command(rich_help_panel="Study")(experiment)
app.command(rich_help_panel="Study")(results)
app.command(rich_help_panel="Study")(report)
app.command(rich_help_panel="Study")(featuremaps)
app.command(rich_help_panel="Use")(serve)
app.command(rich_help_panel="View")(tui)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fmnist {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """fmnist: see each command's --help."""


def main() -> None:
    """Console-script entry point."""
    app()
