"""`fmnist tui`: the terminal UI (train, compare results, classify images, explore the data)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import DataDirOpt, handle_errors


@handle_errors
def tui(
    runs: Annotated[
        Path, typer.Option("--runs", help="Folder holding the run folders (read and written).", file_okay=False)
    ] = Path("checkpoints"),
    export_dir: Annotated[
        Path | None,
        typer.Option(
            "--export-dir",
            help="Folder with the exported .onnx models (default ./export, else the models shipped with fmnist).",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    images: Annotated[
        Path,
        typer.Option("--images", help="Folder the Classify tab's file tree starts in.", exists=True, file_okay=False),
    ] = Path("."),
    data_dir: DataDirOpt = None,
) -> None:
    """Open the terminal UI: Train, Results, Classify and Explore tabs (q quits, ? helps)."""
    from ..tui import create_app  # Textual loads only for this command

    create_app(runs=runs, export=export_dir, images=images, data_dir=data_dir).run()  # None: models_folder()
