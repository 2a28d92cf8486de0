"""Small-sample statistics over seeds: mean, sample std, Student-t 95% intervals and paired t-tests (numpy only).

scipy is not a dependency, so the Student t CDF is computed from the regularized incomplete beta
function (Lentz's continued fraction, Numerical Recipes §6.4) and its quantile by bisection on the
CDF; tests check both against closed forms (df = 1, 2) and published table values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

CONFIDENCE = 0.95


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz); converges for x < (a+1)/(a+b+2)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) for a, b > 0 and 0 ≤ x ≤ 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b  # symmetry keeps the fraction convergent


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with `df` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))  # P(T > |t|)
    return 1.0 - tail if t > 0 else tail


def t_ppf(p: float, df: float) -> float:
    """The quantile t with P(T ≤ t) = p, by bisection on `t_cdf` (monotone, so bisection cannot fail)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability must lie in (0, 1), got {p}")
    if p < 0.5:
        return -t_ppf(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (ddof 1) and a Student-t confidence interval of the mean."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """Summary of `values`; with one value the std and interval are NaN (a spread needs two seeds)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("cannot summarize an empty sample")
    mean = float(x.mean())
    if x.size < 2:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    std = float(x.std(ddof=1))
    half = t_ppf(0.5 + confidence / 2, x.size - 1) * std / math.sqrt(x.size)
    return Summary(int(x.size), mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class PairedTest:
    """A paired comparison a − b over matched seeds: the mean difference, its interval and a two-sided p-value."""

    n: int
    mean_diff: float
    std_diff: float
    ci_low: float
    ci_high: float
    t: float
    p_value: float

    @property
    def significant(self) -> bool:
        """The interval excludes zero (equivalently p < 1 − confidence)."""
        return not math.isnan(self.p_value) and self.p_value < 1 - CONFIDENCE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_t_test(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> PairedTest:
    """Student's paired t-test of mean(a − b) = 0; a[i] and b[i] must come from the same seed."""
    if len(a) != len(b):
        raise ValueError(f"paired samples need equal lengths, got {len(a)} and {len(b)}")
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    s = summarize(d.tolist(), confidence)
    if s.n < 2:
        return PairedTest(s.n, s.mean, math.nan, math.nan, math.nan, math.nan, math.nan)
    if s.std == 0.0:  # identical differences: no spread, the sign alone decides
        t = math.copysign(math.inf, s.mean) if s.mean else 0.0
        return PairedTest(s.n, s.mean, 0.0, s.mean, s.mean, t, 0.0 if s.mean else 1.0)
    t = s.mean / (s.std / math.sqrt(s.n))
    p = 2.0 * (1.0 - t_cdf(abs(t), s.n - 1))
    return PairedTest(s.n, s.mean, s.std, s.ci_low, s.ci_high, t, min(1.0, p))


@dataclass(frozen=True)
class Equivalence:
    """Two one-sided tests (TOST) of a paired difference against ±margin: is it inside the margin (equivalent),
    or outside it, each side tested at `alpha` (so the (1 − 2·alpha) interval is the one to read)."""

    n: int
    mean_diff: float
    margin: float
    ci_low: float  # the (1 − 2·alpha) interval: 90% for alpha 0.05
    ci_high: float
    p_equivalent: float  # max of the two one-sided p-values: H0 "d ≤ −margin" and H0 "d ≥ +margin"
    p_outside: float  # one-sided p of H0 "|d| ≤ margin" on the side the mean lies: is it beyond the margin?
    alpha: float

    @property
    def equivalent(self) -> bool:
        return self.p_equivalent < self.alpha

    @property
    def outside(self) -> bool:
        return self.p_outside < self.alpha

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def equivalence_test(test: PairedTest, margin: float, alpha: float = 1 - CONFIDENCE) -> Equivalence:
    """TOST on a paired test's mean and spread: equivalent when both one-sided tests reject at `alpha` (the
    (1 − 2·alpha) interval lies within ±margin); outside when the difference is significantly beyond the
    margin on the side of its mean. With one seed nothing is decided (p NaN)."""
    n, mean = test.n, test.mean_diff
    if n < 2:
        return Equivalence(n, mean, margin, math.nan, math.nan, math.nan, math.nan, alpha)
    if test.std_diff == 0.0:  # no spread: where the mean lies decides
        inside = -margin < mean < margin
        return Equivalence(n, mean, margin, mean, mean, 0.0 if inside else 1.0, 1.0 if inside else 0.0, alpha)
    se, df = test.std_diff / math.sqrt(n), n - 1
    p_low = 1.0 - t_cdf((mean + margin) / se, df)  # H0: d ≤ −margin
    p_high = t_cdf((mean - margin) / se, df)  # H0: d ≥ +margin
    p_outside = 1.0 - p_high if mean >= 0 else 1.0 - p_low  # H0: d ≤ +margin (or ≥ −margin)
    half = t_ppf(1.0 - alpha, df) * se
    return Equivalence(n, mean, margin, mean - half, mean + half, max(p_low, p_high), p_outside, alpha)
