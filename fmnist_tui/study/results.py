"""Results across runs: read every finished run's summary and group runs that share a config (no torch)."""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import registry
from ..core.config import TrainConfig, recipe_of
from ..core.errors import RunError
from ..core.fsutil import write_json, write_text
from ..core.runs import RETRAIN, SUMMARY, Run, list_runs
from .stats import summarize

#: where a run comes from: the user's runs folder, or the lab's record shipped in the repository (results/)
YOURS, SHIPPED = "yours", "shipped"


@dataclass
class RunRecord:
    """One finished run: its folder, config and summary, and whose it is (YOURS or SHIPPED)."""

    run: Run
    config: dict[str, Any]
    summary: dict[str, Any]
    source: str = YOURS

    @property
    def numerics(self) -> str:
        """How the run computed: bf16 autocast or fp32 (results move with it, so runs of each are not pooled)."""
        return "bf16" if self.config.get("bf16_autocast") else "fp32"


@dataclass
class Group:
    """Runs that differ only by seed."""

    arch: str
    options: dict[str, Any]
    records: list[RunRecord] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # the data settings that are on (registry.DATA_TAGS)

    @property
    def label(self) -> str:
        """`cnn-k3`, `mlp`, `mlp-perm`, `mlp-shift2`: the registry's name for the config."""
        return registry.label(self.arch, {**self.options, **self.data})

    @property
    def source(self) -> str:
        return self.records[0].source

    @property
    def numerics(self) -> str:
        return self.records[0].numerics

    @property
    def kernel(self) -> int | None:
        value = self.options.get("kernel")
        return None if value is None else int(value)

    @property
    def accuracies(self) -> list[float]:
        return [r.summary["test_accuracy"] for r in self.records]

    @property
    def seeds(self) -> list[int]:
        return [int(r.config.get("seed", 0)) for r in self.records]

    def by_seed(self) -> dict[int, RunRecord]:
        """Records keyed by seed, for comparisons paired over seeds."""
        return {int(r.config.get("seed", 0)): r for r in self.records}

    def row(self) -> dict[str, Any]:
        """A JSON-ready table row: accuracy mean ± sample std over seeds, mean training time."""
        accs = self.accuracies
        first = self.records[0].summary
        return {
            "config": self.label,
            "arch": self.arch,
            **self._option_columns(),
            **{name: self.data.get(name) for name in registry.DATA_TAGS},
            "seeds": sorted(r.config.get("seed", 0) for r in self.records),
            "n": len(accs),
            "params": first.get("params"),
            "macs": first.get("macs"),
            "test_acc_mean": statistics.fmean(accs),
            "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "train_seconds_mean": statistics.fmean(r.summary.get("train_seconds", 0.0) for r in self.records),
            "runs": [r.run.name for r in self.records],
            "source": self.source,
            "numerics": self.numerics,
            **self._extra(),
        }

    def _option_columns(self) -> dict[str, Any]:
        """Every registered option (None where the arch has none), as config.json has them."""
        return {name: self.options.get(name) for name in registry.option_names()}

    def _extra(self) -> dict[str, Any]:
        """Columns added for the kernel-size study: recipe, receptive field, 95% CI of the accuracy."""
        s = summarize(self.accuracies)
        cfg = self.records[0].config
        return {
            "epochs": cfg.get("epochs"),
            "subset": cfg.get("subset"),
            "receptive_field": registry.receptive_field(self.arch, self.options) or 28,
            "test_acc_ci_low": _nan_to_none(s.ci_low),
            "test_acc_ci_high": _nan_to_none(s.ci_high),
            "train_seconds_total": sum(r.summary.get("train_seconds", 0.0) for r in self.records),
        }

    def per_class_recall(self) -> dict[int, list[float]]:
        """Per-class test accuracy (recall) of each seed's run, keyed by seed."""
        return {
            seed: [float(c["recall"]) for c in rec.summary.get("per_class", [])] for seed, rec in self.by_seed().items()
        }


def _nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def load_records(root: Path, source: str = YOURS) -> tuple[list[RunRecord], list[str]]:
    """Finished runs under `root` (marked as `source`'s), and one warning per run folder that could not be read
    or whose numbers are not valid."""
    records, warnings = [], []
    for run in list_runs(root):
        try:
            config, summary = run.config(), run.summary()
            if not summary.get("finished"):
                continue
            summary["test_accuracy"] = _fraction(summary.get("test_accuracy"))
        except RunError as exc:
            if run.file(SUMMARY).exists() or "config" in str(exc):
                warnings.append(f"skipped {run.name}: {exc}")
            else:
                warnings.append(
                    f"skipped {run.name}: unfinished (no {SUMMARY}); finish it with "
                    f"`fmnist train --resume --out {run.path.parent} --name {run.name}`"
                )
            continue
        except ValueError as exc:
            warnings.append(f"skipped {run.name}: {run.file(SUMMARY)} {exc}; {RETRAIN}")
            continue
        records.append(RunRecord(run, config, summary, source))
    return records, warnings


def _fraction(value: Any) -> float:
    """A test accuracy as summary.json must hold it: a number from 0 to 1; ValueError says what it holds instead."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"has no numeric test_accuracy (found {value!r})")
    if not 0 <= value <= 1:  # NaN and the infinities fail this too
        raise ValueError(f"has test_accuracy {value!r}, not a fraction from 0 to 1")
    return float(value)


def group_records(records: list[RunRecord]) -> list[Group]:
    """Group runs whose recipes match (all but the seed and where they ran) and that computed alike (bf16 or fp32)
    and come from one source (yours, or the shipped results), in registry order, then by options."""
    groups: dict[tuple[tuple[str, str], ...], Group] = {}
    for rec in records:
        recipe = recipe_of(rec.config) or {k: v for k, v in rec.config.items() if k not in ("seed", "run", "name")}
        key = (*sorted((k, str(v)) for k, v in recipe.items()), ("numerics", rec.numerics), ("source", rec.source))
        arch = str(rec.config.get("arch", "?"))
        options = registry.options_from(arch, rec.config) if arch in registry.REGISTRY else {}
        data = {k: rec.config[k] for k in registry.DATA_TAGS if rec.config.get(k) not in (None, False)}
        groups.setdefault(key, Group(arch, options, data=data)).records.append(rec)
    return sorted(groups.values(), key=lambda g: (config_order(g.arch, {**g.options, **g.data}), g.source != YOURS))


def recipe_key(cfg: Mapping[str, Any]) -> str:
    """The recipe of a run's config.json without the architecture, its options and data settings: what must
    match across a study's configs (and the ladder's rungs)."""
    try:
        recipe = TrainConfig.from_dict(cfg).recipe()
    except Exception:  # a config of another version: its raw values  # noqa: BLE001 - any failure means "foreign"
        recipe = dict(cfg)
    skip = {"arch", *registry.option_names(), *registry.DATA_TAGS, "permute_seed"}
    return repr(sorted((k, str(v)) for k, v in recipe.items() if k not in skip))


def config_order(arch: str, options: dict[str, Any]) -> tuple[Any, ...]:
    """Registry order of architectures (the notebook's mlp first), then their option values, then data settings."""
    archs = list(registry.REGISTRY)
    rank = archs.index(arch) if arch in archs else len(archs)
    data = tuple(str(options.get(k) or 0).zfill(8) for k in registry.DATA_TAGS)
    return (rank, arch, tuple(str(v).zfill(8) for k, v in options.items() if k not in registry.DATA_TAGS), data)


def row_order(row: dict[str, Any]) -> tuple[Any, ...]:
    """`config_order` of a table row (`Group.row()`), for views that sort rows."""
    arch = str(row.get("arch"))
    return config_order(arch, registry.options_from(arch, row) if arch in registry.REGISTRY else {})


def study_groups(groups: list[Group]) -> dict[str, Group]:
    """One group per config label: where several recipes share a label, the one with the most seeds."""
    best: dict[str, Group] = {}
    for g in groups:
        if g.label not in best or len(g.records) > len(best[g.label].records):
            best[g.label] = g
    return best


# --- rendering: one set of columns for the terminal, Markdown, CSV and JSON ----------------------
COLUMNS = (
    "config",
    "params",
    "macs",
    "receptive_field",
    "n",
    "test_acc_mean",
    "test_acc_std",
    "test_acc_ci_low",
    "test_acc_ci_high",
    "train_seconds_mean",
    "latency_ms",
    "source",
    "numerics",
)


def format_cells(row: dict[str, Any]) -> dict[str, str]:
    """Human-readable cells of a row (accuracies as percentages; '—' for what was not measured)."""

    def pct(x: float | None) -> str:
        return "—" if x is None else f"{100 * x:.2f}"

    ci = (
        "—"
        if row.get("test_acc_ci_low") is None
        else f"[{pct(row['test_acc_ci_low'])}, {pct(row['test_acc_ci_high'])}]"
    )
    latency = row.get("latency_ms")
    return {
        "config": row["config"],
        "params": f"{row['params']:,}" if row.get("params") else "—",
        "MACs": f"{row['macs'] / 1e6:.2f} M" if row.get("macs") else "—",
        "RF": str(row.get("receptive_field", "—")),
        "seeds": str(row["n"]),
        "test acc %": f"{pct(row['test_acc_mean'])} ± {pct(row['test_acc_std'])}",
        "95% CI %": ci,
        "train s": f"{row['train_seconds_mean']:.1f}",
        "runs": f"{row.get('source', YOURS)}, {row.get('numerics', '?')}",
        "ORT ms/img": "—" if latency is None else f"{latency:.3f}",
    }


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """A GitHub Markdown table of the rows."""
    cells = [format_cells(r) for r in rows]
    if not cells:
        return "_no finished runs_\n"
    head = list(cells[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if h == "config" else "---:" for h in head) + "|"]
    lines += ["| " + " | ".join(c[h] for h in head) + " |" for c in cells]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict[str, Any]]) -> str:
    """CSV with the machine columns (fractions, seconds, milliseconds; empty when not measured)."""
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=(*COLUMNS, "epochs", "subset", "seeds"), lineterminator="\n", extrasaction="ignore"
    )
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {
                **{k: r.get(k) for k in COLUMNS},
                "epochs": r.get("epochs"),
                "subset": r.get("subset"),
                "seeds": " ".join(map(str, r["seeds"])),
            }
        )
    return buf.getvalue()


def write_results(study_doc: dict[str, Any], markdown: str, csv_text: str, out: Path) -> list[Path]:
    """results.md, results.csv and results.json in `out` (atomic writes)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.md", out / "results.csv", out / "results.json"]
    write_text(paths[0], markdown)
    write_text(paths[1], csv_text)
    write_json(paths[2], study_doc)
    return paths
