"""`fmnist report`: draw every figure of the study and write report.md, whose findings are computed from the data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..core import registry
from ..core.data import CLASSES, Dataset, load_dataset
from ..core.errors import ConfigError, FmnistError, RunError, UsageError
from ..core.fsutil import write_text
from ..core.metrics import most_confused
from ..core.runs import BEST, Run, resolve_run
from . import figures, forest, lab
from .results import Group, group_records
from .sections import NoRuns, Section, section
from .studies import STUDIES, analyse_lab, networks, pending, prepare
from .verdicts import Study, family_sentence

#: figure name → (file name, the study it shows or ""), in report order: one section per study
REPORT: dict[str, tuple[str, str]] = {
    "distribution": ("class_distribution.png", ""),
    "samples": ("samples.png", ""),
    "means": ("mean_images.png", ""),
    "kernels": ("kernel_study.png", "kernel"),
    **{name: (f"{name}_study.png", name) for name in STUDIES if name != "kernel"},
    "claims": ("claims_forest.png", ""),
    "per-class": ("per_class_accuracy.png", ""),
    "curves": ("training_curves.png", ""),
    "confusion": ("confusion_matrix.png", ""),
    "featuremaps": ("feature_maps.png", ""),
    "calibration": ("reliability.png", ""),
}
FIGURES: dict[str, str] = {name: file for name, (file, _) in REPORT.items()}

__all__ = ["FIGURES", "Report", "ReportBuilder", "Section"]


@dataclass
class Report:
    """What `build` produced: drawn sections, skipped figures with the reason, studies without runs (named,
    not a failure), warnings, report.md."""

    sections: dict[str, Section] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    markdown: Path | None = None


class ReportBuilder:
    """Loads data and runs lazily, so a figure that needs neither (or only one) stays cheap."""

    def __init__(
        self,
        out: Path,
        runs_root: Path = Path("checkpoints"),
        data_dir: Path | None = None,
        run_refs: list[str] | None = None,
        test_index: int = 0,
        onnx_dir: Path | None = None,
        shipped: bool = True,
    ) -> None:
        self.out, self.runs_root, self.data_dir = Path(out), Path(runs_root), data_dir
        self.shipped = shipped
        self.onnx_dir = onnx_dir
        self.run_refs, self.test_index = run_refs or [], test_index
        self.warnings: list[str] = []
        self._lab: dict[str, Study] | None = None

    # --- lazily loaded inputs -------------------------------------------------------------------
    @cached_property
    def ds(self) -> Dataset:
        return load_dataset(self.data_dir)

    @cached_property
    def groups(self) -> list[Group]:
        records, warnings = lab.load(lab.sources(self.runs_root, self.shipped))
        self.warnings += warnings
        return group_records(records)

    @cached_property
    def latency(self) -> dict[str, float | None]:
        if not self.groups:
            raise RunError(f"{self.runs_root} holds no finished runs; train some with `fmnist study kernel`")
        measured: dict[str, float | None] = {}
        if self.onnx_dir and Path(self.onnx_dir).is_dir():
            from .latency import latencies

            measured, warnings = latencies(self.groups, Path(self.onnx_dir))
            self.warnings += warnings
        return measured

    @property
    def lab(self) -> dict[str, Study]:
        """Every study over the runs, its verdicts corrected over the lab's family (`studies.analyse_lab`); made
        again after a study's work has added to what the runs hold."""
        if self._lab is None:
            self._lab = analyse_lab(self.groups, self.latency)
        return self._lab

    @cached_property
    def study(self) -> Study:
        """The kernel study's configs (the notebook's networks) where they have runs, else every config: the
        runs the per-class, curve, confusion and feature-map figures show."""
        return networks(self.groups, self.latency, self.lab)

    def studied(self, name: str) -> Study:
        """Study `name` over the runs that belong to it, after the study's work on any of them that lacks it (the
        translation study's shifted evaluation: minutes of CPU for a CNN run, once; then cached)."""
        if pending(STUDIES[name], self.groups):
            self.warnings += prepare(STUDIES[name], self.groups, self.data_dir, "cpu")
            self._lab = None  # the family's p-values include this study's, which its work has just made testable
        return self.lab[name]

    @cached_property
    def chosen_runs(self) -> list[Run]:
        """--run arguments, else the lowest-seed run of each config in the study."""
        if self.run_refs:
            return [resolve_run(ref, self.runs_root) for ref in self.run_refs]
        return [min(g.records, key=lambda r: r.config.get("seed", 0)).run for g in self.study.groups.values()]

    # --- the report -----------------------------------------------------------------------------
    def build(self, which: list[str] | None = None) -> Report:
        """Draw the requested figures (all by default); a figure that cannot be drawn is skipped with its reason."""
        unknown = [w for w in which or [] if w not in FIGURES]
        if unknown:
            raise ConfigError("figure", f"{', '.join(unknown)} is unknown", f"valid: {', '.join(FIGURES)}")
        self.out.mkdir(parents=True, exist_ok=True)
        report = Report()
        for name in which or list(FIGURES):
            try:
                report.sections[name] = self.draw(name)
            except UsageError:
                raise
            except NoRuns as exc:
                report.absent[name] = str(exc)
            except FmnistError as exc:
                report.skipped[name] = str(exc)
        report.warnings = self.warnings
        if not which:
            report.markdown = self.out / "report.md"
            write_text(report.markdown, render_markdown(report))
        return report

    def draw(self, name: str) -> Section:
        study = REPORT[name][1]
        if study:
            return section(STUDIES[study], self.studied(study), self.out / FIGURES[name])
        drawers: dict[str, Callable[[Path], Section]] = {
            "distribution": self._distribution,
            "samples": self._samples,
            "means": self._means,
            "claims": self._claims,
            "per-class": self._per_class,
            "curves": self._curves,
            "confusion": self._confusion,
            "featuremaps": self._featuremaps,
            "calibration": self._calibration,
        }
        return drawers[name](self.out / FIGURES[name])

    def _calibration(self, png: Path) -> Section:
        """The shipped (or --onnx-dir's) models' calibration on the test set: a reliability diagram."""
        from ..inference.session import models_folder
        from .reliability import section as calibration_section

        return calibration_section(
            self.onnx_dir if self.onnx_dir and self.onnx_dir.is_dir() else models_folder(), self.ds, png
        )

    def _distribution(self, png: Path) -> Section:
        labels = {s: self.ds.split(s)[1] for s in figures.SPLITS}
        counts = figures.class_distribution(labels, png)
        combined = np.add(counts["train"], counts["val"])
        per = (
            f"every class has exactly {combined[0]:,}"
            if len(set(combined)) == 1
            else f"classes range from {combined.min():,} to {combined.max():,}"
        )
        test = (
            f"every class has {counts['test'][0]:,}"
            if len(set(counts["test"])) == 1
            else f"{min(counts['test']):,}–{max(counts['test']):,} per class"
        )
        text = (
            f"{sum(counts['train']):,} training, {sum(counts['val']):,} validation and {sum(counts['test']):,} test "
            f"images. In train + validation {per} images; in the test set {test}. The validation split takes "
            f"{_span(counts['val'])} images per class, stratified by class with a fixed seed."
        )
        return Section("Class distribution", png, text, counts)

    def _samples(self, png: Path) -> Section:
        picks = figures.sample_grid(self.ds.train_images, self.ds.train_labels, png)
        return Section(
            "Sample images", png, f"{picks.shape[1]} training images per class, drawn at random (seed 0).", picks
        )

    def _means(self, png: Path) -> Section:
        images = np.concatenate([self.ds.train_images, self.ds.val_images])
        labels = np.concatenate([self.ds.train_labels, self.ds.val_labels])
        means = figures.mean_images(images, labels, png)
        dist = np.sqrt(((means[:, None] - means[None]) ** 2).mean(axis=(2, 3)))  # RMS pixel difference
        iu = np.triu_indices(len(CLASSES), 1)
        order = np.argsort(dist[iu])
        near = [(CLASSES[iu[0][k]], CLASSES[iu[1][k]], dist[iu][k]) for k in order[:3]]
        far = (CLASSES[iu[0][order[-1]]], CLASSES[iu[1][order[-1]]], dist[iu][order[-1]])
        text = (
            f"Mean of all {len(labels):,} training images (train + validation) per class. The most similar mean "
            "images (RMS pixel difference, 0–255): "
            + "; ".join(f"{a} ↔ {b} {d:.1f}" for a, b, d in near)
            + f". The most different: {far[0]} ↔ {far[1]} {far[2]:.1f}."
        )
        return Section("Mean image per class", png, text, means)

    def _claims(self, png: Path) -> Section:
        verdicts = [v for study in self.lab.values() for v in study.verdicts]
        if not any(v.get("differences") for v in verdicts):
            raise NoRuns("no claim of any study has the runs to test it")
        drawn = figures.forest(verdicts, png, "The notebook's claims: effects, 95% intervals, margins, verdicts")
        family = next(iter(self.lab.values())).family
        counts = {
            w: sum(v["verdict"].startswith(w) for v in verdicts) for w in ("supported", "contradicted", "fragile")
        }
        text = (
            f"Every claim of every study, one row per difference it rests on: the estimate and its 95% interval "
            f"(seeds and test images), the grey band its metric's margin, its verdict and adjusted p. "
            f"{family_sentence(family)} Of the {len(verdicts)} claims, {counts['supported']} supported, "
            f"{counts['contradicted']} contradicted, {counts['fragile']} fragile.\n\n" + forest.markdown(drawn)
        )
        return Section("The notebook's claims, every study", png, text, drawn)

    def _per_class(self, png: Path) -> Section:
        recalls = {
            label: np.array(list(g.per_class_recall().values()))
            for label, g in self.study.groups.items()
            if all(len(v) == len(CLASSES) for v in g.per_class_recall().values())
        }
        if not recalls:
            raise RunError("no run summary has per-class results")
        means = figures.per_class_accuracy(recalls, png)
        lines = [
            f"- {label}: hardest {CLASSES[int(m.argmin())]} ({100 * m.min():.1f}%), easiest "
            f"{CLASSES[int(m.argmax())]} ({100 * m.max():.1f}%)"
            for label, m in means.items()
        ]
        if len(means) > 1:
            spread = np.ptp(np.stack(list(means.values())), axis=0)
            k = int(spread.argmax())
            lines.append(
                f"- the configs differ most on {CLASSES[k]}: {100 * spread[k]:.1f} points between best and worst"
            )
        return Section("Per-class accuracy by architecture", png, "\n".join(lines), means)

    def _curves(self, png: Path) -> Section:
        histories = {run.name: run.metrics() for run in self.chosen_runs}
        histories = {k: v for k, v in histories.items() if v}
        if not histories:
            raise RunError("the chosen runs have no metrics.csv rows")
        figures.training_curves(histories, png)
        lines = []
        for name, rows in histories.items():
            best = max(rows, key=lambda r: r["val_acc"])
            last = rows[-1]
            lines.append(
                f"- {name}: best validation accuracy {100 * best['val_acc']:.2f}% at epoch {best['epoch']} of "
                f"{last['epoch']}; last epoch train {100 * last['train_acc']:.2f}% vs validation "
                f"{100 * last['val_acc']:.2f}% (gap {100 * (last['train_acc'] - last['val_acc']):+.2f} points)"
            )
        return Section("Training curves", png, "\n".join(lines), histories)

    def _confusion(self, png: Path) -> Section:
        run = self.chosen_runs[0] if self.run_refs else self._best_run()
        summary = run.summary()
        if "confusion_matrix" not in summary:
            raise RunError(f"run {run.name!r} has no confusion matrix in summary.json; evaluate it again")
        counts, norm = figures.confusion(summary["confusion_matrix"], png, f"Confusion matrix of {run.name} (test set)")
        pairs = most_confused(counts)
        worst = int(np.diag(norm).argmin())
        text = (
            f"{run.name}: {counts.trace():,} of {counts.sum():,} test images right "
            f"({100 * counts.trace() / counts.sum():.2f}%); each row sums to its class's test images "
            f"({', '.join(sorted({f'{v:,}' for v in counts.sum(axis=1)}))}). Most confused pairs: "
            + "; ".join(f"{p['a']} ↔ {p['b']} {p['total']} ({p['a_as_b']} + {p['b_as_a']})" for p in pairs)
            + f". Weakest class: {CLASSES[worst]} ({100 * norm[worst, worst]:.1f}% recall)."
        )
        return Section("Confusion matrix", png, text, (counts, norm))

    def _best_run(self) -> Run:
        best = max(self.study.groups.values(), key=lambda g: float(np.mean(g.accuracies)))
        return min(best.records, key=lambda r: r.config.get("seed", 0)).run

    def _featuremaps(self, png: Path) -> Section:
        cnn = [r for r in self.chosen_runs if registry.has_convs(r.config().get("arch"))]
        if not cnn:
            raise RunError("no run with conv layers among the chosen runs (e.g. the mlp has none)")
        weighed = [r for r in cnn if r.file(BEST).exists()] or [
            r.run for g in self.groups for r in g.records if registry.has_convs(g.arch) and r.run.file(BEST).exists()
        ]
        if not weighed:  # the shipped runs carry no weights
            raise NoRuns("no CNN run with weights: train one (`make run`), then `fmnist report` draws its feature maps")
        cnn = weighed
        image, label = pick_test_image(self.ds, self.test_index)
        return draw_feature_maps(cnn[0], image, png, f"test image #{self.test_index} ({label})")


def _span(values: list[int]) -> str:
    return f"{min(values):,}" if min(values) == max(values) else f"{min(values):,}–{max(values):,}"


def pick_test_image(ds: Dataset, index: int) -> tuple[np.ndarray, str]:
    """A test image and its class name; a UsageError names the valid range."""
    if not 0 <= index < len(ds.test_labels):
        raise ConfigError("test_index", f"{index} is out of range", f"valid: 0–{len(ds.test_labels) - 1}")
    return ds.test_images[index], CLASSES[int(ds.test_labels[index])]


def draw_feature_maps(run: Run, image: np.ndarray, png: Path, what: str) -> Section:
    """Feature maps of `run` for one 28×28 image (torch loads here only)."""
    from .featuremaps import run_feature_maps

    layers = run_feature_maps(run, image)
    figures.feature_maps(image, layers, png, f"Feature maps of {run.name} for {what}")
    names = [f"conv{i}" for i in range(1, len(layers) + 1)]
    shapes = [f"{name} {'×'.join(map(str, m.shape))}" for name, m in zip(names, layers, strict=True)]
    silent = [
        f"{int((m.reshape(len(m), -1).max(axis=1) <= 0).sum())} {name}" for name, m in zip(names, layers, strict=True)
    ]
    text = (
        f"{run.name} on {what}: activations {', '.join(shapes)} (channels × height × width); "
        f"{' and '.join(silent)} channels are zero everywhere for this image (ReLU)."
    )
    return Section("Feature maps", png, text, tuple(layers))


def render_markdown(report: Report) -> str:
    """report.md: each drawn figure embedded with its computed findings; skipped ones named with the reason."""
    out = [
        "# Fashion-MNIST: the dataset and fmnist's studies\n",
        "Generated by `fmnist report` from the dataset and the runs' files; every number below is computed.\n",
    ]
    for s in report.sections.values():
        out += [f"## {s.title}\n", f"![{s.title}]({s.png.name})\n", s.text.rstrip() + "\n"]
    if report.absent:
        out += ["## Studies without runs\n"] + [
            f"- {REPORT[n][1] or n}: {reason}" for n, reason in report.absent.items()
        ]
        out += [""]
    if report.skipped:
        out += ["## Not drawn\n"] + [f"- {FIGURES[n]}: {reason}" for n, reason in report.skipped.items()] + [""]
    return "\n".join(out)
