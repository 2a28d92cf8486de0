"""A study's figure and its section of report.md: drawn by `fmnist study NAME` into its folder, and by
`fmnist report` for every study that has runs (no torch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import RunError
from . import figures, ladder, translation
from .studies import MLP, StudySpec
from .verdicts import Study, study_markdown


@dataclass
class Section:
    """One figure's part of report.md: a title, the PNG and the findings computed for it."""

    title: str
    png: Path
    text: str
    data: Any = None


class NoRuns(RunError):
    """A study none of whose configs has a finished run (the report lists it, without failing)."""


def analyse_or_explain(spec: StudySpec, study: Study) -> Study:
    """`study`, or NoRuns naming the command that trains it."""
    if not study.rows:
        raise NoRuns(
            f"no finished runs of the {spec.name} study's configs ({', '.join(spec.labels())}); "
            f"train them with `fmnist study {spec.name}`"
        )
    return study


def draw(spec: StudySpec, study: Study, png: Path) -> Any:
    """The study's one figure (PNG); returns the data it drew."""
    if spec.figure == "kernel":
        return figures.kernel_study(study.rows, png, baseline=MLP)
    if spec.figure == "option":
        return figures.accuracy_by_option(study.rows, spec.x, png, spec.title, _XLABELS.get(spec.x, spec.x))
    if spec.figure == "bars":
        return figures.accuracy_bars(study.rows, spec.x, spec.series, png, spec.title)
    if spec.figure == "configs":
        return figures.accuracy_by_config(study.rows, png, spec.title)
    if spec.figure == "size":
        return figures.accuracy_by_size(study.rows, png, spec.title)
    if spec.figure == "gap":
        histories = {label: [r.run.metrics() for r in g.records] for label, g in study.groups.items()}
        return figures.gap_curves(histories, png, f"{spec.title}: generalization gap")
    if spec.figure == "ladder":
        return figures.ladder(ladder.ladder(list(study.groups.values())), png)
    if spec.figure == "translation":
        return figures.translation_study(translation.figure_data(list(study.groups.values())), png, spec.title)
    raise ValueError(f"study {spec.name}: no figure kind {spec.figure!r}")


_XLABELS = {"depth": "conv blocks", "kernel": "kernel size"}


def section(spec: StudySpec, study: Study, png: Path) -> Section:
    """Draw the study's figure and write its findings: question, recipe, runs, tables, verdicts."""
    analyse_or_explain(spec, study)
    drawn = draw(spec, study, png)
    recipes = sorted(
        {
            f"{r['epochs']} epochs"
            + (f" on a {r['subset']:,}-image subset" if r.get("subset") else "")
            + (f" at peak lr {lr:g}" if (lr := g.records[0].config.get("lr")) else "")
            for r, g in zip(study.rows, study.groups.values(), strict=False)
        }
    )
    runs = ", ".join(name for g in study.groups.values() for name in g.row()["runs"])
    text = (
        f"{spec.question} Recipe: {'; '.join(recipes)}. Runs: {runs}. Error bars are Student-t 95% "
        f"confidence intervals of the mean over seeds; differences are paired by seed, and their intervals add "
        f"the test images' sampling variance to the seeds'.\n\n" + study_markdown(study).replace("## ", "### ")
    )
    return Section(spec.title, png, text, drawn)


def section_markdown(s: Section) -> str:
    """A section as report.md has it: title, embedded figure, findings."""
    return f"## {s.title}\n\n![{s.title}]({s.png.name})\n\n{s.text.rstrip()}\n"
