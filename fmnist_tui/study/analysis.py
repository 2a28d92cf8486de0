"""A study's analysis: paired differences over seeds, a verdict per claim, the Markdown of the result (no torch)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.data import CLASSES
from ..core.errors import RunError
from ..core.text import counted
from .results import Group, RunRecord, to_markdown
from .stats import PairedTest, equivalence_test, paired_t_test
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
        return f"{self.name} = {100 * t.mean_diff:+.2f} points{ci} ({counted(t.n, 'seed')})"

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


#: one side of a claimed difference: a config's label, or the difference x − y of two configs (a contrast:
#: "(cnn-k3 − mlp) − (cnn-k3-perm − mlp-perm)", is the CNN's advantage smaller on permuted pixels?)
Term = str | tuple[str, str]


def term(t: Term) -> str:
    """`mlp`, or `(cnn-k3 − mlp)` for a difference."""
    return t if isinstance(t, str) else f"({t[0]} − {t[1]})"


def labels_of(t: Term) -> tuple[str, ...]:
    return (t,) if isinstance(t, str) else t


def compare_terms(groups: dict[str, Group], a: Term, b: Term, metric: str = ACCURACY) -> Comparison | None:
    """`compare` for labels; for differences, (x − y) − (z − w) paired over the seeds all four configs have."""
    if isinstance(a, str) and isinstance(b, str):
        return compare(groups[a], groups[b], metric) if a in groups and b in groups else None
    needed = [*labels_of(a), *labels_of(b)]
    if any(label not in groups for label in needed):
        return None
    runs = {label: groups[label].by_seed() for label in needed}
    seeds = sorted(set.intersection(*(set(r) for r in runs.values())))
    if not seeds:
        return None

    def value(t: Term, seed: int) -> float:
        parts = [METRICS[metric](runs[label][seed]) for label in labels_of(t)]
        return parts[0] - parts[1] if len(parts) == 2 else parts[0]

    test = paired_t_test([value(a, s) for s in seeds], [value(b, s) for s in seeds])
    return Comparison(term(a), term(b), seeds, test, metric)


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
    needed: tuple[tuple[Term, Term], ...],
    found: dict[str, Comparison],
    metric: str = ACCURACY,
    margin: float | None = None,
    equivalence: float | None = None,
) -> dict[str, Any]:
    """The verdict on a claim from paired differences over seeds (95% intervals, as `PairedTest`):

    - a claim that a beats b (`margin` and `equivalence` None): supported when every a − b is significantly
      > 0, contradicted when one is significantly < 0;
    - a claim that a gains at most `margin` over b ("b is sufficient"): supported when every a − b has its
      95% interval below +margin, contradicted when one has its interval above +margin;
    - a claim that a and b do not differ by more than ±`equivalence` ("unaffected"): two one-sided tests at
      5% each (`stats.equivalence_test`, the 90% interval within ±margin): supported when every a − b is
      shown inside the margin, contradicted when one is shown outside it. "Not different" (a t-test that
      finds nothing) is not "equal": only the equivalence test supports such a claim;
    - else "not supported at this sample size", or "not tested" when a difference has no runs."""
    if equivalence is not None:
        return _equivalence_verdict(claim, needed, found, metric, equivalence)
    missing = [key(term(a), term(b), metric) for a, b in needed if key(term(a), term(b), metric) not in found]
    if missing:
        return {
            "claim": claim,
            "verdict": "not tested",
            "detail": f"needs {', '.join(missing)} (runs with shared seeds)",
        }
    comps = [found[key(term(a), term(b), metric)] for a, b in needed]
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
        word = f"not supported at this sample size ({counted(n, 'seed')})"
    detail = "; ".join(c.describe() for c in comps)
    if margin is not None:
        detail += f"; margin +{100 * margin:.2f} points"
    return {"claim": claim, "verdict": word, "detail": detail}


def _equivalence_verdict(
    claim: str, needed: tuple[tuple[Term, Term], ...], found: dict[str, Comparison], metric: str, margin: float
) -> dict[str, Any]:
    """`verdict` for a claim of no difference beyond ±margin (TOST)."""
    names = [key(term(a), term(b), metric) for a, b in needed]
    missing = [name for name in names if name not in found]
    if missing:
        return {
            "claim": claim,
            "verdict": "not tested",
            "detail": f"needs {', '.join(missing)} (runs with shared seeds)",
        }
    tests = [(found[name], equivalence_test(found[name].test, margin)) for name in names]
    if any(e.outside for _, e in tests):
        word = "contradicted"
    elif all(e.equivalent for _, e in tests):
        word = "supported"
    else:
        n = min(e.n for _, e in tests)
        word = f"not supported at this sample size ({counted(n, 'seed')})"
    detail = "; ".join(
        f"{c.name} = {100 * e.mean_diff:+.2f} points"
        + ("" if e.n < 2 else f", 90% CI [{100 * e.ci_low:+.2f}, {100 * e.ci_high:+.2f}]")
        + f", TOST p = {_p(e.p_equivalent)} ({counted(e.n, 'seed')})"
        for c, e in tests
    )
    return {"claim": claim, "verdict": word, "detail": f"{detail}; equivalence margin ±{100 * margin:.2f} points"}


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
    out += ["\n## Verdicts on the notebook's claims\n"]
    out += [f"- **{v['claim']}**: {v['verdict']}. {v['detail']}" for v in study.verdicts]
    return "\n".join(out) + "\n"


def _diff_row(label: str, c: Comparison) -> str:
    t = c.test
    ci = "—" if t.n < 2 else f"[{100 * t.ci_low:+.2f}, {100 * t.ci_high:+.2f}]"
    return f"| {label} | {100 * t.mean_diff:+.2f} | {ci} | {_p(t.p_value)} | {t.n} |"
