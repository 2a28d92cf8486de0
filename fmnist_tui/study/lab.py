"""The lab's record, shipped in the repository's `results/` (no torch).

`results/runs/<run>/` holds every run of the lab's default presets: config.json, metrics.csv, summary.json and
the per-run evaluations an analysis reads (shift.json), never weights. `results/<study>/` holds each study's
analysis (results.md, .csv, .json, its figure, section.md) and provenance.json (where and how each run was
computed). Both are written only by the project's commands (`make lab`: `fmnist study NAME --runs results/runs
--out results/NAME`); `results`, `report`, `study` and the TUI read the shipped runs beside the user's own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .. import __version__
from ..core import machine
from ..core.errors import RunError
from ..core.fsutil import write_json
from .results import SHIPPED, YOURS, RunRecord, load_records

#: where the shipped results are: ./results (a checkout's), or $FMNIST_RESULTS
RESULTS_ENV = "FMNIST_RESULTS"
RUNS = "runs"
PROVENANCE = "provenance.json"
#: the layout of results.json and provenance.json; a reader refuses a newer one in one line
SCHEMA = 2


def results_root() -> Path:
    """The folder of the shipped results: $FMNIST_RESULTS, else ./results."""
    return Path(os.environ.get(RESULTS_ENV) or "results")


def shipped_runs(results: Path | None = None) -> Path:
    """The folder of the shipped runs."""
    return (results or results_root()) / RUNS


def same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def sources(runs: Path, shipped: bool = True, results: Path | None = None) -> list[tuple[Path, str]]:
    """The folders whose runs count, each with its source: the user's `runs` (YOURS), and the shipped runs unless
    `shipped` is off. Where `runs` is the shipped folder itself (the lab computing its record) it is SHIPPED."""
    lab = shipped_runs(results)
    if same_folder(runs, lab):
        return [(runs, SHIPPED)]
    return [(runs, YOURS)] + ([(lab, SHIPPED)] if shipped and lab.is_dir() else [])


def load(folders: Iterable[tuple[Path, str]], names: set[str] | None = None) -> tuple[list[RunRecord], list[str]]:
    """The finished runs of every folder (of those `names` only, when given), and a warning per unreadable one."""
    records: list[RunRecord] = []
    warnings: list[str] = []
    for folder, source in folders:
        recs, warns = load_records(folder, source)
        records += [r for r in recs if names is None or r.run.name in names]
        where = "" if source == YOURS else " (shipped)"
        warnings += [f"{w}{where}" for w in warns if names is None or any(w.startswith(f"skipped {n}:") for n in names)]
    return records, warnings


def run_provenance(rec: RunRecord) -> dict[str, Any]:
    """Where and how one run was computed, from its own files."""
    cfg, summary = rec.config, rec.summary
    return {
        "run": rec.run.name,
        "source": rec.source,
        "test_accuracy": summary.get("test_accuracy"),
        "train_seconds": summary.get("train_seconds"),
        "threads": cfg.get("threads"),
        "device": cfg.get("device"),
        "numerics": rec.numerics,
        "machine": cfg.get("machine"),
        "torch": (cfg.get("versions") or {}).get("torch"),
        "fmnist": (cfg.get("versions") or {}).get("fmnist"),
        "commit": cfg.get("commit"),
        "finished_at": summary.get("finished_at"),
    }


def write_provenance(out: Path, study: str, preset: dict[str, Any], records: list[RunRecord]) -> Path:
    """`out`/provenance.json: the study, its preset, and each analysed run's provenance."""
    path = out / PROVENANCE
    write_json(
        path,
        {
            "schema": SCHEMA,
            "study": study,
            "preset": preset,
            "analysed_at": machine.now(),
            "analysed_by": {"fmnist": __version__, "commit": machine.commit()},
            "runs": [run_provenance(r) for r in sorted(records, key=lambda r: r.run.name)],
        },
    )
    return path


def read_provenance(folder: Path) -> dict[str, Any] | None:
    """A study folder's provenance.json (None where there is none); RunError in one line for a damaged file or
    one of a newer layout than this fmnist reads."""
    path = folder / PROVENANCE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise RunError(f"{path} is damaged ({type(exc).__name__}); restore it with `git checkout -- {path}`") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise RunError(f"{path} is damaged (not a provenance record); restore it with `git checkout -- {path}`")
    if int(data.get("schema", 0)) > SCHEMA:
        raise RunError(f"{path} is of a newer layout (schema {data['schema']}) than fmnist {__version__} reads")
    return data


def describe(provenance: dict[str, Any]) -> str:
    """'12 runs, bf16 on AMD EPYC (AVX-512 BF16), torch 2.14.1, 2026-12-07': what a study's shipped runs were
    computed on."""
    runs = provenance["runs"]
    kinds = sorted(
        {
            f"{r.get('numerics')} on {(r.get('machine') or {}).get('gpu') or (r.get('machine') or {}).get('cpu', '?')}"
            + (f" ({(r.get('machine') or {}).get('isa')})" if not (r.get("machine") or {}).get("gpu") else "")
            for r in runs
        }
    )
    torches = sorted({str(r.get("torch")) for r in runs})
    days = sorted({str(r.get("finished_at") or "")[:10] for r in runs} - {""})
    when = days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}" if days else "an unknown date"
    return f"{len(runs)} runs, {'; '.join(kinds)}, torch {', '.join(torches)}, {when}"
