"""The Results tab: finished runs grouped by config in a sortable table, all of them or one study's (its table,
its figure as bars, its verdicts); details of the selected group."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Select, Static
from textual.worker import Worker, get_current_worker

from ..core.data import CLASSES
from ..core.errors import FmnistError
from ..core.runs import Run
from ..core.text import printable
from ..study import forest, lab
from ..study.results import SHIPPED, Group, group_records, row_order
from ..study.studies import STUDIES, analyse_lab
from ..study.verdicts import Study, family_sentence
from .services import Settings
from .widgets import CurvesPlot, bar, bars, heatmap, mean_rows

#: the study picker's values for "every run, no study" and for "every claim of every study" (the forest)
ALL, CLAIMS = "all", "claims"

#: column key → (header, sort key of a Group.row() dict)
COLUMNS: dict[str, tuple[str, Any]] = {
    "config": ("config", row_order),
    "seeds": ("seeds", lambda r: r["n"]),
    "params": ("params", lambda r: r["params"] or 0),
    "acc": ("test acc %", lambda r: r["test_acc_mean"]),
    "time": ("time s", lambda r: r["train_seconds_mean"]),
}

#: (summary.json path, mtime in ns) of every run folder: what decides whether a reload has anything new
Signature = tuple[tuple[str, int], ...]


def _metrics(run: Run) -> list[dict[str, float]]:
    """A run's metrics rows; a damaged metrics.csv shows as no curve rather than an error."""
    try:
        return run.metrics()
    except (FmnistError, OSError, KeyError, TypeError, ValueError):
        return []


def _signature(roots: list[Path]) -> Signature:
    """Run folders and their summary times: cheap to read, changes whenever a run finishes."""
    summaries = sorted(p for root in roots if root.is_dir() for p in root.glob("*/summary.json"))
    return tuple((str(p), p.stat().st_mtime_ns) for p in summaries)


@dataclass(frozen=True)
class Loaded:
    """What a load worker hands the UI thread: the grouped runs and what to say about them."""

    signature: Signature
    runs: int
    groups: list[Group]
    warnings: list[str]
    studies: dict[str, Study]  # each study over the runs that belong to it (those with none left out)


def analyse_studies(groups: list[Group]) -> dict[str, Study]:
    """Every study over `groups`, its verdicts corrected over the lab's family (`studies.analyse_lab`), the ones
    without runs included (their claims are in the family, untested); none where the runs cannot be read."""
    try:
        return analyse_lab(groups)
    except (FmnistError, OSError, KeyError, TypeError, ValueError):
        return {}


def claims_text(studies: dict[str, Study]) -> Text:
    """Every claim of every study as a forest in text (`study.forest.text`), after the family's sentence."""
    text = Text()
    verdicts = [v for s in studies.values() for v in s.verdicts]
    text.append("Every claim of the lab: effect, 95% interval, margin, verdict\n", style="bold")
    if studies:
        text.append(family_sentence(next(iter(studies.values())).family) + "\n", style="dim")
    for line, style in forest.text(forest.rows(verdicts)):
        text.append(line + "\n", style=style)
    text.rstrip()
    return text


def study_text(name: str, study: Study) -> Text:
    """A study as the terminal shows it: its figure as bars (test accuracy, or the gap it is about, mean over
    seeds, scaled between the lowest and the highest), then each claim's verdict and its numbers."""
    spec = STUDIES[name]
    gap = any("gap_mean" in r for r in study.rows)
    key, what = ("gap_mean", "train − val accuracy gap (points)") if gap else ("test_acc_mean", "test accuracy")
    values: list[tuple[str, float]] = [(r["config"], float(r[key])) for r in study.rows if r.get(key) is not None]
    text = Text()
    text.append(f"{spec.title}: {spec.question}\n", style="bold")
    text.append(f"{what}, mean over seeds (bars from lowest to highest)\n", style="dim")
    lo, hi = min((v for _, v in values), default=0.0), max((v for _, v in values), default=1.0)
    width = max((len(label) for label, _ in values), default=0)  # fits 80 columns: 17 + 9 + 8
    for label, value in values:
        share = 1.0 if hi == lo else 0.15 + 0.85 * (value - lo) / (hi - lo)
        text.append(f"{label:<{width}} ")
        text.append(bar(share, 8), style="cyan")
        text.append(f" {100 * value:.2f}%\n" if not gap else f" {100 * value:+.2f}\n")
    for line, style in forest.text(forest.rows(study.verdicts))[1:]:
        text.append(line + "\n", style=style)
    for v in study.verdicts:
        text.append(f"{v['claim']}: ", style=forest.style(v["verdict"]))
        text.append(f"{v['detail']}\n", style="dim")
    text.rstrip()
    return text


def _cells(row: dict[str, Any]) -> tuple[str, ...]:
    seeds = ",".join(str(s) for s in row["seeds"])
    acc = f"{row['test_acc_mean']:.2%}" + (f" ± {row['test_acc_std']:.2%}" if row["n"] > 1 else "")
    params = f"{row['params']:,}" if row["params"] is not None else "?"
    config = row["config"] + (" ·lab" if row.get("source") == SHIPPED else "")  # the shipped runs, marked
    return config, seeds, params, acc, f"{row['train_seconds_mean']:.0f}"


def _key(group: Group) -> str:
    """A table row's key: the config, its source and its runs (yours and the shipped runs of one config differ)."""
    return f"{group.label}|{group.source}|{','.join(group.row()['runs'])}"


class ResultsPane(Vertical):
    """Left: groups of runs (click a header or press o to sort). Right: per-class bars, matrix, curves."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.groups: list[Group] = []
        self.sort_key, self.reverse = "config", False
        self.shown: Loaded | None = None  # the load on screen
        self.study = ALL  # the study picked (ALL: every run)

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="results-left"):
                yield Select(
                    [("all runs", ALL), ("every claim", CLAIMS), *((f"{name} study", name) for name in STUDIES)],
                    value=ALL,
                    allow_blank=False,
                    compact=True,
                    id="study-pick",
                )
                yield DataTable(id="results-table", cursor_type="row", zebra_stripes=True)
                yield Static(f"loading… (reading {self.settings.runs}/)", id="results-hint")
            with VerticalScroll(id="results-detail"):
                yield Static("", id="study-verdicts")
                yield Static("", id="detail-title")
                yield Static("", id="per-class")
                yield Static("", id="confusion")
                with Horizontal(id="results-curves"):
                    yield CurvesPlot("loss", id="results-loss")
                    yield CurvesPlot("acc", id="results-acc")

    def on_mount(self) -> None:
        table = self.query_one("#results-table", DataTable)
        for key, (header, _) in COLUMNS.items():
            table.add_column(header, key=key)
        table.loading = True
        self.reload()

    def reload(self, force: bool = True) -> None:
        """Re-read the run folders in a thread; with force=False only if a summary appeared or changed since
        the last load. A newer reload cancels an older one still reading, so the older never paints."""
        seen = None if force or self.shown is None else self.shown.signature
        self._load_worker(Path(self.settings.runs), seen)

    @work(thread=True, exclusive=True, group="results-load", exit_on_error=False)
    def _load_worker(self, root: Path, seen: Signature | None) -> None:
        """Read and group the runs off the UI thread: hundreds of run folders (or a slow disk) take seconds."""
        worker = get_current_worker()
        try:
            folders = lab.sources(root)  # yours, and the lab's shipped results beside them
            signature = _signature([f for f, _ in folders])
            if signature == seen:
                self.app.call_from_thread(self._loaded, worker, None)  # nothing new: end a loading state
                return
            self.app.call_from_thread(self._loading, worker)
            records, warnings = lab.load(folders)
            groups = group_records(records)
            loaded = Loaded(signature, len(records), groups, warnings, analyse_studies(groups))
        except OSError as exc:  # an unreadable folder is a message, not a table stuck in "loading…"
            loaded = Loaded((), 0, [], [f"cannot read {root}: {exc}"], {})
        if not worker.is_cancelled:  # a newer load is under way: spare the UI thread a stale repaint
            self.app.call_from_thread(self._loaded, worker, loaded)

    def _loading(self, worker: Worker[None]) -> None:
        if not worker.is_cancelled:
            self.query_one("#results-table", DataTable).loading = True
            self.query_one("#results-hint", Static).update(f"loading… (reading {self.settings.runs}/)")

    def _loaded(self, worker: Worker[None], loaded: Loaded | None) -> None:
        """Paint a finished load (None: the one on screen is still current), unless a newer load was started
        meanwhile. This runs on the UI thread, where reloads cancel workers, so the check cannot race."""
        if worker.is_cancelled:
            return
        self.query_one("#results-table", DataTable).loading = False
        if loaded is not None:
            self.shown, self.groups = loaded, loaded.groups
            if loaded.warnings:
                self.notify(
                    "\n".join(map(printable, loaded.warnings)),
                    title="Some runs were skipped",
                    severity="warning",
                    markup=False,
                )
            self._fill()
        self._update_hint()

    def _update_hint(self) -> None:
        hint = self.query_one("#results-hint", Static)
        if not self.groups:
            hint.update(
                f"No finished runs in {self.settings.runs}/ (nor shipped results) yet.\nTrain one on the Train "
                f"tab (1) or with `fmnist train`."
            )
        elif self.study == CLAIMS:
            hint.update(
                f"every claim of {len(STUDIES)} studies, corrected as one family · verdicts on the right · o: sort"
            )
        elif self.study != ALL and self._study() is None:
            hint.update(f"No runs of the {self.study} study in {self.settings.runs}/ yet.\nfmnist study {self.study}")
        elif self.study != ALL:
            shown = self.table_groups()
            runs = sum(len(g.records) for g in shown)
            whose = "the lab's shipped results" if shown and shown[0].source == SHIPPED else "your runs"
            hint.update(f"{self.study}: {runs} runs in {len(shown)} configs, {whose} · verdicts on the right · o: sort")
        else:
            runs = self.shown.runs if self.shown else 0
            hint.update(f"{runs} runs in {len(self.groups)} groups (·lab: shipped) · Enter/click: details · o: sort")

    def _study(self) -> Study | None:
        """The picked study's analysis (None: every run, every claim, or a study without runs)."""
        study = self.shown.studies.get(self.study) if self.shown and self.study not in (ALL, CLAIMS) else None
        return study if study is not None and study.rows else None

    def table_groups(self) -> list[Group]:
        """The groups the table shows: every one, or the picked study's (its recipe, its configs)."""
        if self.study in (ALL, CLAIMS):
            return self.groups
        study = self._study()
        return list(study.groups.values()) if study else []

    def pick_study(self, name: str) -> None:
        """Show study `name` (or ALL, or CLAIMS): its configs in the table, its figure and verdicts on the right."""
        self.query_one("#study-pick", Select).value = name

    @on(Select.Changed, "#study-pick")
    def _study_picked(self, event: Select.Changed) -> None:
        self.study = str(event.value)
        self._fill()
        self._update_hint()

    def _show_study(self) -> None:
        widget = self.query_one("#study-verdicts", Static)
        if self.study == CLAIMS:
            widget.display = True
            widget.update(claims_text(self.shown.studies if self.shown else {}))
            return
        study = self._study()
        widget.display = study is not None
        widget.update(study_text(self.study, study) if study else "")

    def sort_by(self, key: str) -> None:
        """Sort by column `key`; the same key again reverses the order."""
        self.reverse = not self.reverse if key == self.sort_key else False
        self.sort_key = key
        self._fill()

    def cycle_sort(self) -> None:
        keys = list(COLUMNS)
        self.sort_by(keys[(keys.index(self.sort_key) + 1) % len(keys)])

    def _fill(self) -> None:
        table = self.query_one("#results-table", DataTable)
        table.clear()
        self._show_study()
        order = sorted(self.table_groups(), key=lambda g: COLUMNS[self.sort_key][1](g.row()), reverse=self.reverse)
        for group in order:
            table.add_row(*_cells(group.row()), key=_key(group))
        self._show(order[0] if order else None)

    @on(DataTable.HeaderSelected, "#results-table")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        self.sort_by(str(event.column_key.value))

    @on(DataTable.RowHighlighted, "#results-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        self._show(next((g for g in self.table_groups() if _key(g) == key), None))

    def _show(self, group: Group | None) -> None:
        """Per-class accuracy (mean over seeds), summed confusion matrix and mean curves of a group."""
        title, per_class, confusion = self.query("#detail-title, #per-class, #confusion").results(Static)
        if group is None:
            for widget in (title, per_class, confusion):
                widget.update("")
            rows: list[dict[str, float]] = []
        else:
            row = group.row()
            title.update(f"[b]{row['config']}[/b] · runs {', '.join(row['runs'])}")
            recalls = [[c.get("recall", 0.0) for c in r.summary.get("per_class", [])] for r in group.records]
            recalls = [r for r in recalls if len(r) == len(CLASSES)]
            per_class.update(
                bars(zip(CLASSES, np.mean(recalls, axis=0), strict=False), width=16) if recalls else "no per-class data"
            )
            matrices = [r.summary["confusion_matrix"] for r in group.records if "confusion_matrix" in r.summary]
            # the mean count per seed keeps cells on the 0–1,000 scale of one test set
            confusion.update(heatmap(np.rint(np.mean(matrices, axis=0)).astype(int)) if matrices else "")
            rows = mean_rows([_metrics(r.run) for r in group.records])
        self.query_one("#results-loss", CurvesPlot).show(rows)
        self.query_one("#results-acc", CurvesPlot).show(rows)
