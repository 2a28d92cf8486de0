"""A study's analysis: the per-run metrics claims are about, paired differences over seeds with the test images'
sampling variance beside the seeds', and the Markdown of the result (no torch)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core import predictions
from ..core.data import CLASSES, SHAPES, VAL_FRACTION
from ..core.errors import RunError
from ..core.text import counted
from .results import Group, RunRecord
from .stats import Difference, PairedTest, difference, paired_t_test
from .translation import study_grid

#: the values a claim can be about, per run: test accuracy (summary.json) and the generalization gap
#: (metrics.csv's last epoch: train accuracy − validation accuracy), both fractions
ACCURACY, GAP = "test accuracy", "generalization gap"
#: translation (shift.json, the translation study's shifted evaluation): the accuracy drop and the share of
#: predictions changed, each averaged over shifts of 1, 2, 3 and 4 px (fractions)
SHIFT_DROP, SHIFT_CHANGED = "accuracy drop under shift", "predictions changed by shift"
#: the classes the notebook says convolution helps most, and the per-run value its claim is about: the mean recall
#: over them minus the mean recall over the other classes (so that cnn − mlp of it is one contrast: their gain
#: beyond the others' gain, not one test per class)
HARD_CLASSES = ("Shirt", "Coat", "Pullover")
CLASS_CONTRAST = f"recall on {', '.join(HARD_CLASSES)} beyond the other classes"

#: the fixed split (DESIGN.md): 10,000 test images, 10,000 validation images taken from the 60,000 training ones
TEST_IMAGES = SHAPES["t10k-labels-idx1-ubyte"][0]
VAL_IMAGES = SHAPES["train-labels-idx1-ubyte"][0] // VAL_FRACTION


def final_gap(rec: RunRecord) -> float:
    """Train accuracy − validation accuracy at the run's last epoch (metrics.csv): how far the training
    curve ran ahead of the validation curve. The train accuracy is the running accuracy over the epoch's
    augmented batches, as the trainer records it."""
    rows = rec.run.metrics()
    if not rows:
        raise RunError(f"run {rec.run.name!r} has no metrics.csv rows")
    return float(rows[-1]["train_acc"]) - float(rows[-1]["val_acc"])


def _recalls(rec: RunRecord) -> list[float]:
    per_class = rec.summary.get("per_class") or []
    if len(per_class) != len(CLASSES):
        raise RunError(f"run {rec.run.name!r} has no per-class results in summary.json; evaluate it again")
    return [float(c["recall"]) for c in per_class]


def class_contrast(rec: RunRecord) -> float:
    """Mean recall over HARD_CLASSES − mean recall over the other classes."""
    r = _recalls(rec)
    hard = [r[CLASSES.index(c)] for c in HARD_CLASSES]
    rest = [x for c, x in zip(CLASSES, r, strict=True) if c not in HARD_CLASSES]
    return sum(hard) / len(hard) - sum(rest) / len(rest)


METRICS: dict[str, Callable[[RunRecord], float]] = {
    ACCURACY: lambda rec: float(rec.summary["test_accuracy"]),
    GAP: final_gap,
    SHIFT_DROP: lambda rec: study_grid(rec.run).mean_drop(),
    SHIFT_CHANGED: lambda rec: study_grid(rec.run).mean_changed(),
    CLASS_CONTRAST: class_contrast,
}

#: the smallest effect of interest of each metric (a fraction), stated once for the lab and used by every verdict
#: alike: a win must reach it, a tie must stay within it. Every metric here is a share of images in points (an
#: accuracy, a gap between two accuracies, a drop under shift, a share of predictions changed, a difference of
#: class recalls), and each takes half a point, the resolution of the notebook's own readings: it ranks its
#: kernels by ~91 / 90.5 / 90%, steps of half a point (50 of the 10,000 test images)
MARGINS: dict[str, float] = {
    ACCURACY: 0.005,
    GAP: 0.005,
    SHIFT_DROP: 0.005,
    SHIFT_CHANGED: 0.005,
    CLASS_CONTRAST: 0.005,
}


# --- the test images' sampling variance --------------------------------------------------------------------
@dataclass(frozen=True)
class Part:
    """A run's metric as a sum of weighted means over sets of images: `weight` × the mean over `n` images of a
    per-image value bounded by [lo, hi] (a right/wrong 0 or 1 for an accuracy), here `value`."""

    weight: float
    value: float
    lo: float
    hi: float
    n: int


def test_image_count(rec: RunRecord) -> int:
    """The test images a run's summary counts (its confusion matrix's total), else the fixed test set's 10,000."""
    cm = rec.summary.get("confusion_matrix")
    if cm:
        return int(sum(sum(row) for row in cm))
    support = sum(int(c.get("support") or 0) for c in rec.summary.get("per_class") or [])
    return support or TEST_IMAGES


def class_images(rec: RunRecord) -> list[int]:
    """Each class's test images (the confusion matrix's rows), else an even share of the test set."""
    cm = rec.summary.get("confusion_matrix")
    if cm and len(cm) == len(CLASSES):
        return [int(sum(row)) for row in cm]
    supports = [int(c.get("support") or 0) for c in rec.summary.get("per_class") or []]
    return supports if len(supports) == len(CLASSES) and all(supports) else [TEST_IMAGES // len(CLASSES)] * 10


def val_images(config: dict[str, Any]) -> int:
    """The validation images a run's last-epoch val_acc was read on: the split's, or `--subset`'s first N."""
    subset = config.get("subset")
    return min(int(subset), VAL_IMAGES) if subset else VAL_IMAGES


def _class_parts(rec: RunRecord) -> list[Part]:
    r, n = _recalls(rec), class_images(rec)
    hard = sum(c in HARD_CLASSES for c in CLASSES)
    return [
        Part(1 / hard if c in HARD_CLASSES else -1 / (len(CLASSES) - hard), x, 0.0, 1.0, k)
        for c, x, k in zip(CLASSES, r, n, strict=True)
    ]


#: each metric's parts: the generalization gap's sampling term is its validation accuracy's (the train accuracy is
#: the model's on its own training images, not a sample of the images it is meant for)
PARTS: dict[str, Callable[[RunRecord], list[Part]]] = {
    ACCURACY: lambda rec: [Part(1.0, METRICS[ACCURACY](rec), 0.0, 1.0, test_image_count(rec))],
    GAP: lambda rec: [Part(-1.0, float(rec.run.metrics()[-1]["val_acc"]), 0.0, 1.0, val_images(rec.config))],
    SHIFT_DROP: lambda rec: [Part(1.0, METRICS[SHIFT_DROP](rec), -1.0, 1.0, study_grid(rec.run).n)],
    SHIFT_CHANGED: lambda rec: [Part(1.0, METRICS[SHIFT_CHANGED](rec), 0.0, 1.0, study_grid(rec.run).n)],
    CLASS_CONTRAST: _class_parts,
}


def sampling_variance(records: list[RunRecord], parts: Callable[[RunRecord], list[Part]]) -> float:
    """An upper bound on the sampling variance, over the images it was read on, of a config's metric averaged over
    its runs (seeds): Σ weight² · (hi − μ)(μ − lo) / n over its parts, μ the part's mean over the runs.

    Per image, the runs' mean value q(x) lies in [lo, hi] with mean μ, so its variance over images is at most
    (hi − μ)(μ − lo) (Bhatia–Davis; for right/wrong values μ(1 − μ), the binomial variance): equality when every
    run gets an image alike, which seeds of one config nearly do. Parts on disjoint images (classes) add."""
    split = [parts(r) for r in records]
    total = 0.0
    for column in zip(*split, strict=True):
        mu = sum(p.value for p in column) / len(column)
        first = column[0]
        total += first.weight**2 * max(0.0, (first.hi - mu) * (mu - first.lo)) / first.n
    return total


def bounded_sd(
    groups: dict[str, Group], coefficients: dict[str, int], seeds: list[int], parts: Callable[[RunRecord], list[Part]]
) -> float:
    """The sd that the fixed test images add to a difference Σ cᵢ · metric(configᵢ) averaged over `seeds`
    (`coefficients`: each config's net sign, ±1 for a − b, four of them for a contrast (a − b) − (c − d)).

    The method, from the aggregates the runs store (summary.json's accuracy, confusion matrix and per-class
    recall; shift.json's counts), without per-image predictions: each config's sampling variance is bounded by
    `sampling_variance`, and the configs' terms are added as if their per-image values were uncorrelated. Two
    networks trained on the same images get the same test images right and wrong far more often than chance, a
    positive correlation that this leaves out, so the term is conservative: it overstates the variance of a
    paired difference (the closer the two networks, the more), and it never understates it unless the networks'
    errors were anti-correlated. It does not shrink with seeds: more seeds cannot decide a difference smaller
    than the test images alone resolve. Where the runs carry per-image predictions, `paired_sd` gives the
    paired term instead (accuracy and class recalls)."""
    var = 0.0
    for label, c in coefficients.items():
        if c:
            by_seed = groups[label].by_seed()
            var += c * c * sampling_variance([by_seed[s] for s in seeds], parts)
    return math.sqrt(var)


def _recall_parts(cls: int) -> Callable[[RunRecord], list[Part]]:
    return lambda rec: [Part(1.0, _recalls(rec)[cls], 0.0, 1.0, class_images(rec)[cls])]


#: the metrics that are weighted means of per-image right/wrong, by their weight on each class's mean (given the
#: test images of each class): what `paired_sd` needs to take the test-set term from per-image predictions
CLASS_WEIGHTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    ACCURACY: lambda counts: counts / counts.sum(),
    CLASS_CONTRAST: lambda counts: np.array(
        [1 / len(HARD_CLASSES) if c in HARD_CLASSES else -1 / (len(CLASSES) - len(HARD_CLASSES)) for c in CLASSES]
    ),
}


def _recall_weights(cls: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda counts: np.eye(len(CLASSES))[cls]


def paired_sd(
    groups: dict[str, Group],
    coefficients: dict[str, int],
    seeds: list[int],
    class_weights: Callable[[np.ndarray], np.ndarray],
) -> float | None:
    """The test-set term of a difference from per-image predictions (`predictions.json`), where every run it
    involves has them for the same test images; None where one lacks them (then `bounded_sd` bounds it).

    Per image x, D(x) = Σ cᵢ · (the share of configᵢ's seeds that get x right): the difference the configs make on
    that image. The metric weighs each class's mean of it (`class_weights`), and the test set holds a fixed number
    of images of each class, so its sampling variance is Σ_c W_c² · var(D | class c) / n_c, the correlation between
    the configs included exactly. The per-image shares average few seeds, so their variance also holds a little of
    the seed-to-seed noise that s²/n already counts: slightly conservative, never less."""
    labels: np.ndarray | None = None
    total: np.ndarray | None = None
    for label, c in coefficients.items():
        if not c:
            continue
        by_seed = groups[label].by_seed()
        right = []
        for seed in seeds:
            found = predictions.read(by_seed[seed].run)
            if found is None or (labels is not None and not np.array_equal(found[0], labels)):
                return None
            labels = found[0]
            right.append(found[1] == found[0])
        share = c * np.mean(right, axis=0)
        total = share if total is None else total + share
    if labels is None or total is None:
        return None
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(np.float64)
    weights = class_weights(counts)
    var = 0.0
    for cls in range(len(CLASSES)):
        inside = total[labels == cls]
        if weights[cls] and inside.size > 1:
            var += weights[cls] ** 2 * float(inside.var(ddof=1)) / inside.size
    return math.sqrt(var)


# --- paired differences ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """metric(a) − metric(b), paired over the seeds both configs have: `diff` with the test images' sampling
    variance beside the seeds' (what verdicts read), `test` the seeds-only paired t-test."""

    a: str
    b: str
    seeds: list[int]
    test: PairedTest
    diff: Difference
    metric: str = ACCURACY  # what is compared (METRICS)
    per_image: bool = False  # the test-set term from per-image predictions (else bounded from the aggregates)

    @property
    def name(self) -> str:
        """`cnn-k3 − mlp`; `mlp − cnn-k3 (generalization gap)` for a metric other than test accuracy."""
        return key(self.a, self.b, self.metric)

    def describe(self) -> str:
        """'cnn-k3 − mlp = +3.32 points, 95% CI [+2.52, +4.12] (sd: seeds 0.08, test images 0.40; 3 seeds)'."""
        d = self.diff
        if d.n < 2:
            return f"{self.name} = {100 * d.estimate:+.2f} points ({counted(d.n, 'seed')}: no spread, no interval)"
        low, high = d.interval()
        return (
            f"{self.name} = {100 * d.estimate:+.2f} points, 95% CI [{100 * low:+.2f}, {100 * high:+.2f}] "
            f"(sd: seeds {100 * d.seed_sd:.2f}, test images {100 * d.test_sd:.2f}"
            f"{', paired per image' if self.per_image else ''}; {counted(d.n, 'seed')})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The seeds-only paired t-test's fields (as before), and `with_test_set`: the difference with both
        sources of its uncertainty, its 95% interval and two-sided p of no difference."""
        return {
            "a": self.a,
            "b": self.b,
            "seeds": self.seeds,
            "metric": self.metric,
            **self.test.to_dict(),
            "significant": self.test.significant,
            "with_test_set": {
                **self.diff.to_dict(),
                "p_value": _nan_none(self.diff.p_equal(0.0)),
                "test_term": "paired per image" if self.per_image else "bound from the aggregates",
            },
        }


def _nan_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def p_text(p: float) -> str:
    return "n/a" if p != p else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def p_is(p: float) -> str:
    """'p = 0.106', 'p < 0.001'."""
    text = p_text(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


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


def _signs(t: Term, sign: int) -> list[tuple[str, int]]:
    return [(t, sign)] if isinstance(t, str) else [(t[0], sign), (t[1], -sign)]


def compare_terms(groups: dict[str, Group], a: Term, b: Term, metric: str = ACCURACY) -> Comparison | None:
    """a − b of `metric` paired over the seeds every config of both terms has (a term: a label or a difference
    x − y); None without such a seed or where a config has no runs. A RunError where a run lacks the metric."""
    return _paired(groups, a, b, metric, METRICS[metric], PARTS[metric], CLASS_WEIGHTS.get(metric))


def compare(ga: Group, gb: Group, metric: str = ACCURACY, cls: int | None = None) -> Comparison | None:
    """`compare_terms` of two groups (per-class recall when `cls` is given)."""
    groups = {ga.label: ga, gb.label: gb}
    if cls is None:
        return compare_terms(groups, ga.label, gb.label, metric)
    return _paired(
        groups, ga.label, gb.label, metric, lambda rec: _recalls(rec)[cls], _recall_parts(cls), _recall_weights(cls)
    )


def _paired(
    groups: dict[str, Group],
    a: Term,
    b: Term,
    metric: str,
    value: Callable[[RunRecord], float],
    parts: Callable[[RunRecord], list[Part]],
    class_weights: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Comparison | None:
    signs = [*_signs(a, 1), *_signs(b, -1)]
    if any(label not in groups for label, _ in signs):
        return None
    runs = {label: groups[label].by_seed() for label, _ in signs}
    seeds = sorted(set.intersection(*(set(r) for r in runs.values())))
    if not seeds:
        return None

    def side(t: Term, seed: int) -> float:
        vals = [value(runs[label][seed]) for label in labels_of(t)]
        return vals[0] - vals[1] if len(vals) == 2 else vals[0]

    xa, xb = [side(a, s) for s in seeds], [side(b, s) for s in seeds]
    coefficients: dict[str, int] = {}
    for label, sign in signs:
        coefficients[label] = coefficients.get(label, 0) + sign
    exact = paired_sd(groups, coefficients, seeds, class_weights) if class_weights else None
    tau = bounded_sd(groups, coefficients, seeds, parts) if exact is None else exact
    per_seed = [x - y for x, y in zip(xa, xb, strict=True)]
    diff = difference(per_seed, tau)
    return Comparison(term(a), term(b), seeds, paired_t_test(xa, xb), diff, metric, exact is not None)
