"""Results across runs: read every finished run's summary and group runs that share a config (no torch)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .errors import RunError
from .runs import Run, list_runs

#: the config fields that define a group: the whole recipe except the seed and where/how the run ran
RECIPE_KEYS = tuple(f.name for f in fields(TrainConfig)
                    if f.name not in {"seed", "name", "out", "data_dir", "device", "threads", "precision"})


@dataclass
class RunRecord:
    """One finished run: its folder, config and summary."""

    run: Run
    config: dict[str, Any]
    summary: dict[str, Any]


@dataclass
class Group:
    """Runs that differ only by seed."""

    arch: str
    kernel: int | None
    records: list[RunRecord] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.arch}-k{self.kernel}" if self.kernel else self.arch

    @property
    def accuracies(self) -> list[float]:
        return [r.summary["test_accuracy"] for r in self.records]

    def row(self) -> dict[str, Any]:
        """A JSON-ready table row: accuracy mean ± sample std over seeds, mean training time."""
        accs = self.accuracies
        first = self.records[0].summary
        return {
            "config": self.label, "arch": self.arch, "kernel": self.kernel,
            "seeds": sorted(r.config.get("seed", 0) for r in self.records), "n": len(accs),
            "params": first.get("params"), "macs": first.get("macs"),
            "test_acc_mean": statistics.fmean(accs), "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "train_seconds_mean": statistics.fmean(r.summary.get("train_seconds", 0.0) for r in self.records),
            "runs": [r.run.name for r in self.records],
        }


def load_records(root: Path) -> tuple[list[RunRecord], list[str]]:
    """Finished runs under `root`, and one warning per run folder that could not be read."""
    records, warnings = [], []
    for run in list_runs(root):
        try:
            config, summary = run.config(), run.summary()
            if not summary.get("finished"):
                continue
            summary["test_accuracy"] = float(summary["test_accuracy"])
        except RunError as exc:
            if run.file("summary.json").exists() or "config" in str(exc):
                warnings.append(f"skipped {run.name}: {exc}")
            continue
        except (KeyError, TypeError, ValueError) as exc:
            warnings.append(f"skipped {run.name}: summary.json lacks a valid {exc}")
            continue
        records.append(RunRecord(run, config, summary))
    return records, warnings


def group_records(records: list[RunRecord]) -> list[Group]:
    """Group runs whose configs match except for the seed; ordered mlp first, then by kernel."""
    groups: dict[tuple, Group] = {}
    for rec in records:
        key = tuple((k, str(rec.config.get(k))) for k in RECIPE_KEYS)
        groups.setdefault(key, Group(rec.config.get("arch", "?"), rec.config.get("kernel"))).records.append(rec)
    return sorted(groups.values(), key=lambda g: (g.arch != "mlp", g.arch, g.kernel or 0, g.label))
