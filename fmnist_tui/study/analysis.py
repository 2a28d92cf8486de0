"""A study's analysis: paired differences over seeds, a verdict per claim, the Markdown of the result (no torch)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.data import CLASSES
from ..core.errors import RunError
from .results import Group, RunRecord, to_markdown
from .stats import PairedTest, paired_t_test
from .translation import study_grid

#: the values a claim can be about, per run: test accuracy (summary.json) and the generalization gap
#: (metrics.csv's last epoch: train accuracy − validation accuracy), both fractions
ACCURACY, GAP = "test accuracy", "generalization gap"
#: translation (shift.json, the translation study's shifted evaluation): the accuracy drop and the share of
#: predictions changed, each averaged over shifts of 1, 2, 3 and 4 px (fractions)
SHIFT_DROP, SHIFT_CHANGED = "accuracy drop under shift", "predictions changed by shift"


def final_gap(rec: RunRecord) -> float:
    """Train accuracy − validation accuracy at the run's last epoch (metrics.csv): how far the training
    curve ran ahead of the validation curve. The train accuracy is the running accuracy over the epoch's
    augmented batches, as the trainer records it."""
    rows = rec.run.metrics()
    if not rows:
        raise RunError(f"run {rec.run.name!r} has no metrics.csv rows")
    return float(rows[-1]["train_acc"]) - float(rows[-1]["val_acc"])


METRICS: dict[str, Callable[[RunRecord], float]] = {
    ACCURACY: lambda rec: float(rec.summary["test_accuracy"]),
    GAP: final_gap,
    SHIFT_DROP: lambda rec: study_grid(rec.run).mean_drop(),
    SHIFT_CHANGED: lambda rec: study_grid(rec.run).mean_changed(),
}


@dataclass(frozen=True)
class Comparison:
    """accuracy(a) − accuracy(b), paired over the seeds both configs have."""

    a: str
    b: str
    seeds: list[int]
    test: PairedTest
    metric: str = ACCURACY  # what is compared (METRICS)

    @property
    def name(self) -> str:
        """`cnn-k3 − mlp`; `mlp − cnn-k3 (generalization gap)` for a metric other than test accuracy."""
        return key(self.a, self.b, self.metric)

    def describe(self) -> str:
        """'cnn-k3 − mlp = +1.20 points, 95% CI [+0.9, +1.5], p = 0.002 (3 seeds)'."""
        t = self.test
        ci = "" if t.n < 2 else f", 95% CI [{100 * t.ci_low:+.2f}, {100 * t.ci_high:+.2f}], p = {_p(t.p_value)}"
        return f"{self.name} = {100 * t.mean_diff:+.2f} points{ci} ({t.n} seed{'s' if t.n != 1 else ''})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "seeds": self.seeds,
            "metric": self.metric,
            **self.test.to_dict(),
            "significant": self.test.significant,
        }


def _p(p: float) -> str:
    return "n/a" if p != p else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def key(a: str, b: str, metric: str = ACCURACY) -> str:
    """The name of the difference a − b of `metric`, as comparisons and claims refer to it."""
    return f"{a} − {b}" + ("" if metric == ACCURACY else f" ({metric})")


def compare(ga: Group, gb: Group, metric: str = ACCURACY, cls: int | None = None) -> Comparison | None:
    """Paired test of a − b over common seeds (per-class recall when `cls` is given); None without one."""
    a, b = ga.by_seed(), gb.by_seed()
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None

    def value(rec: RunRecord) -> float:
        return float(rec.summary["per_class"][cls]["recall"]) if cls is not None else METRICS[metric](rec)

    test = paired_t_test([value(a[s]) for s in seeds], [value(b[s]) for s in seeds])
    return Comparison(ga.label, gb.label, seeds, test, metric)


def verdict(
    claim: str,
    needed: tuple[tuple[str, str], ...],
    found: dict[str, Comparison],
    metric: str = ACCURACY,
    margin: float | None = None,
) -> dict[str, Any]:
    """The verdict on a claim from paired differences over seeds (95% intervals, as `PairedTest`):

    - a claim that a beats b (`margin` None): supported when every a − b is significantly > 0, contradicted
      when one is significantly < 0;
    - a claim that a gains at most `margin` over b ("b is sufficient"): supported when every a − b has its
      95% interval below +margin, contradicted when one has its interval above +margin;
    - else "not supported at this sample size", or "not tested" when a difference has no runs."""
    missing = [key(a, b, metric) for a, b in needed if key(a, b, metric) not in found]
    if missing:
        return {
            "claim": claim,
            "verdict": "not tested",
            "detail": f"needs {', '.join(missing)} (runs with shared seeds)",
        }
    comps = [found[key(a, b, metric)] for a, b in needed]
    if margin is None:
        against = [c for c in comps if c.test.significant and c.test.mean_diff < 0]
        holds = all(c.test.significant and c.test.mean_diff > 0 for c in comps)
    else:
        against = [c for c in comps if c.test.n >= 2 and c.test.ci_low > margin]
        holds = all(c.test.n >= 2 and c.test.ci_high < margin for c in comps)
    if against:
        word = "contradicted"
    elif holds:
        word = "supported"
    else:
        n = min(c.test.n for c in comps)
        word = f"not supported at this sample size ({n} seed{'s' if n != 1 else ''})"
    detail = "; ".join(c.describe() for c in comps)
    if margin is not None:
        detail += f"; margin +{100 * margin:.2f} points"
    return {"claim": claim, "verdict": word, "detail": detail}


@dataclass
class Study:
    """Everything the experiment's table, report and verdicts are made of."""

    rows: list[dict[str, Any]]
    comparisons: list[Comparison]
    per_class: list[Comparison]  # CNN − MLP recall per class, in class order
    verdicts: list[dict[str, Any]]
    per_class_pair: tuple[str, str] | None = None
    groups: dict[str, Group] = field(default_factory=dict)
    highlight: tuple[str, ...] = ()  # classes the claims are about (bold in the per-class table)
    name: str = "kernel"  # the study (studies.STUDIES)
    notes: list[str] = field(default_factory=list)  # Markdown blocks of the study's own (before the verdicts)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (`--out .../results.json`)."""
        return {
            "table": self.rows,
            "comparisons": [c.to_dict() for c in self.comparisons],
            "per_class": {
                "a": self.per_class_pair[0],
                "b": self.per_class_pair[1],
                "classes": [{"class": CLASSES[i], **c.to_dict()} for i, c in enumerate(self.per_class)],
            }
            if self.per_class_pair
            else None,
            "verdicts": self.verdicts,
            "study": self.name,
        }


def study_markdown(study: Study) -> str:
    """The study as Markdown: table, paired differences, per-class differences, verdicts."""
    out = ["## Results by config\n", to_markdown(study.rows)]
    for metric in dict.fromkeys(c.metric for c in study.comparisons):
        out += [
            f"\n## Paired differences ({metric}, points)\n",
            "| difference | mean | 95% CI | p | seeds |",
            "|---|---:|---:|---:|---:|",
        ]
        out += [_diff_row(f"{c.a} − {c.b}", c) for c in study.comparisons if c.metric == metric]
    if study.per_class and study.per_class_pair:
        a, b = study.per_class_pair
        out += [
            f"\n## Per-class accuracy, {a} − {b} (points)\n",
            "| class | mean | 95% CI | p | seeds |",
            "|---|---:|---:|---:|---:|",
        ]
        out += [
            _diff_row(f"**{CLASSES[i]}**" if CLASSES[i] in study.highlight else CLASSES[i], c)
            for i, c in enumerate(study.per_class)
        ]
    out += [f"\n{note.rstrip()}\n" for note in study.notes]
    out += ["\n## Verdicts on the seed's claims\n"]
    out += [f"- **{v['claim']}**: {v['verdict']}. {v['detail']}" for v in study.verdicts]
    return "\n".join(out) + "\n"


def _diff_row(label: str, c: Comparison) -> str:
    t = c.test
    ci = "—" if t.n < 2 else f"[{100 * t.ci_low:+.2f}, {100 * t.ci_high:+.2f}]"
    return f"| {label} | {100 * t.mean_diff:+.2f} | {ci} | {_p(t.p_value)} | {t.n} |"
