"""The latency column of study tables: onnxruntime's batch-1 latency per config, from an exported run
(exported first when none is, if the caller gives a folder for it)."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import FmnistError
from ..inference.latency import onnx_latency_ms
from .results import Group


def latencies(
    groups: list[Group], onnx_dir: Path, export_dir: Path | None = None, data_dir: Path | None = None
) -> tuple[dict[str, float | None], list[str]]:
    """Latency per config, from `<onnx_dir>/<run>.onnx` of any of its runs (the architecture sets it, not the
    seed); without one, `export_dir` given, the config's lowest-seed run is exported there first."""
    found: dict[str, float | None] = {}
    warnings: list[str] = []
    dataset = None
    for g in groups:
        path = next(
            (
                p
                for r in g.records
                for d in (onnx_dir, export_dir)
                if d
                for p in [Path(d) / f"{r.run.name}.onnx"]
                if p.is_file()
            ),
            None,
        )
        try:
            if path is None and export_dir is not None:
                from ..core.data import load_dataset
                from ..deploy.export import export_run

                dataset = dataset or load_dataset(data_dir)
                run = min(g.records, key=lambda r: r.config.get("seed", 0)).run
                path = Path(export_run(run, Path(export_dir), dataset).path)
            found[g.label] = onnx_latency_ms(path) if path else None
        except FmnistError as exc:
            found[g.label] = None
            warnings.append(f"no latency for {g.label}: {exc}")
    return found, warnings
