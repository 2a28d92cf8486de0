"""`fmnist data`: where the dataset was found, whether it verified, and class counts per split."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from ..core.data import CLASSES, SHA256, class_counts, load_dataset
from ..core.errors import phrase
from .common import DataDirOpt, JsonOpt, console, flag, handle_errors, print_json, shown


@handle_errors
def data(
    data_dir: DataDirOpt = None,
    json_out: JsonOpt = False,
    download: Annotated[
        bool,
        typer.Option(
            "--download", help="If not found locally, download with torchvision into ~/.cache/fmnist (needs internet)."
        ),
    ] = False,
) -> None:
    """Find and verify Fashion-MNIST, and count the images of each class in train / val / test."""
    ds = load_dataset(data_dir, download=download)
    counts = {split: class_counts(ds.split(split)[1]) for split in ("train", "val", "test")}
    files: dict[str, dict[str, Any]] = {
        name: {"path": str(path), "sha256": ds.sha256[name], "verified": ds.sha256[name] == SHA256[name]}
        for name, path in ds.source.files.items()
    }
    if json_out:
        print_json(
            {
                "folder": str(ds.source.folder),
                "via": phrase(ds.source.via, flag),
                "files": files,
                "classes": list(CLASSES),
                "counts": counts,
            }
        )
        return
    console.print(
        f"dataset: [bold]{shown(ds.source.folder)}[/] (found via {phrase(ds.source.via, flag)})", highlight=False
    )
    for name, f in files.items():
        # a hash that does not match only loads with FMNIST_VERIFY=0: then it was not checked, not verified
        mark = "[green]✓[/] " if f["verified"] else "  "
        state = "verified" if f["verified"] else "not checked (FMNIST_VERIFY=0)"
        console.print(f"  {mark}{name:<24} sha256 {f['sha256'][:16]}… {state}  {shown(f['path'])}", highlight=False)
    table = Table("class", "train", "val", "test", "total", title="images per class", title_justify="left")
    for i, cls in enumerate(CLASSES):
        row = [counts[s][i] for s in ("train", "val", "test")]
        table.add_row(cls, *[f"{v:,}" for v in row], f"{sum(row):,}")
    table.add_row(
        "[bold]all",
        *[f"[bold]{sum(counts[s]):,}" for s in ("train", "val", "test")],
        f"[bold]{sum(map(sum, counts.values())):,}",
    )
    console.print(table)
