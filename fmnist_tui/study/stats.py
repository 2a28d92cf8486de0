"""The lab's statistics: summaries over seeds, paired differences with both sources of their uncertainty (the
seeds and the fixed test images), Holm's correction over a family of claims, and the seeds a test would need.

The distributions are scipy's (`scipy.stats.t`, `ttest_rel`), the correction and the power statsmodels'
(`multipletests`, `TTestPower`); both are imported on first use, so that importing the study code (every
command's --help does) stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

CONFIDENCE = 0.95
#: every test of the lab is two-sided at this level (a one-sided test at half of it): one 95% interval per
#: difference decides its verdict, whichever the claim
ALPHA = 1 - CONFIDENCE
#: the power at which `seeds_needed` counts the seeds that would decide an undecided claim
POWER = 0.8
#: the most seeds `seeds_needed` considers
MAX_SEEDS = 100


def _scipy() -> Any:
    """scipy.stats, imported on first use."""
    from scipy import stats  # type: ignore[import-untyped]

    return stats


def _t() -> Any:
    return _scipy().t


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
    half = float(_t().ppf(0.5 + confidence / 2, x.size - 1)) * std / math.sqrt(x.size)
    return Summary(int(x.size), mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class PairedTest:
    """The seeds-only paired comparison a − b (Student's paired t-test): the mean difference, its interval and a
    two-sided p-value, with the seed-to-seed spread as the only source of uncertainty."""

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
    """scipy's `ttest_rel` of mean(a − b) = 0; a[i] and b[i] must come from the same seed."""
    if len(a) != len(b):
        raise ValueError(f"paired samples need equal lengths, got {len(a)} and {len(b)}")
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    s = summarize(d.tolist(), confidence)
    if s.n < 2:
        return PairedTest(s.n, s.mean, math.nan, math.nan, math.nan, math.nan, math.nan)
    if s.std <= 1e-12 * max(1.0, abs(s.mean)):  # identical differences (up to rounding): the sign alone decides
        if abs(s.mean) <= 1e-12:
            return PairedTest(s.n, s.mean, 0.0, s.mean, s.mean, 0.0, 1.0)
        return PairedTest(s.n, s.mean, 0.0, s.mean, s.mean, math.copysign(math.inf, s.mean), 0.0)
    res = _scipy().ttest_rel(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return PairedTest(s.n, s.mean, s.std, s.ci_low, s.ci_high, float(res.statistic), float(res.pvalue))


@dataclass(frozen=True)
class Difference:
    """A difference paired over n seeds with both sources of its uncertainty.

    The mean of the per-seed differences estimates the difference the configs would show on the population of
    images, averaged over seeds. Its variance has two terms (the law of total variance): the seed-to-seed
    variance of the per-seed differences over n (`seed_sd`² / n, which more seeds shrink), and the sampling
    variance of the fixed test images that every seed is evaluated on (`test_sd`², which they do not: see
    `analysis.bounded_sd` for how it is bounded from the stored confusion matrices). The t reference has
    Welch–Satterthwaite degrees of freedom, the test-set term taken as known (a binomial-type variance of
    thousands of images): n − 1 with no test-set term (then this is exactly the paired t-test), towards the
    normal as the test-set term dominates. With one seed no spread is known and nothing is tested (NaN)."""

    n: int
    estimate: float
    seed_sd: float
    test_sd: float = 0.0

    @property
    def se(self) -> float:
        if self.n < 2:
            return math.nan
        return math.sqrt(self.seed_sd**2 / self.n + self.test_sd**2)

    @property
    def df(self) -> float:
        if self.n < 2:
            return math.nan
        seed_var = self.seed_sd**2 / self.n
        if seed_var == 0.0:
            return math.inf
        return (seed_var + self.test_sd**2) ** 2 / (seed_var**2 / (self.n - 1))

    def interval(self, confidence: float = CONFIDENCE) -> tuple[float, float]:
        """The two-sided `confidence` interval of the difference."""
        if self.n < 2:
            return math.nan, math.nan
        if self.se == 0.0:
            return self.estimate, self.estimate
        half = float(_t().ppf(0.5 + confidence / 2, self.df)) * self.se
        return self.estimate - half, self.estimate + half

    def p_equal(self, value: float = 0.0) -> float:
        """Two-sided p of H0: difference = `value`."""
        if self.n < 2:
            return math.nan
        if self.se == 0.0:
            return 0.0 if self.estimate != value else 1.0
        return min(1.0, 2.0 * float(_t().sf(abs(self.estimate - value) / self.se, self.df)))

    def p_below(self, bound: float) -> float:
        """One-sided p of H0: difference ≥ `bound` (small when the difference is shown below it)."""
        if self.n < 2:
            return math.nan
        if self.se == 0.0:
            return 0.0 if self.estimate < bound else 1.0
        return float(_t().cdf((self.estimate - bound) / self.se, self.df))

    def p_above(self, bound: float) -> float:
        """One-sided p of H0: difference ≤ `bound` (small when the difference is shown above it)."""
        if self.n < 2:
            return math.nan
        if self.se == 0.0:
            return 0.0 if self.estimate > bound else 1.0
        return float(_t().sf((self.estimate - bound) / self.se, self.df))

    def to_dict(self) -> dict[str, Any]:
        low, high = self.interval()
        return {
            "n": self.n,
            "estimate": self.estimate,
            "ci_low": _none(low),
            "ci_high": _none(high),
            "seed_sd": _none(self.seed_sd),
            "test_sd": self.test_sd,
            "se": _none(self.se),
            "df": None if math.isnan(self.df) or math.isinf(self.df) else self.df,
        }


def _none(x: float) -> float | None:
    return None if math.isnan(x) else x


def difference(per_seed: Sequence[float], test_sd: float = 0.0) -> Difference:
    """The `Difference` of per-seed differences `per_seed` (already a − b, seed by seed) with a test-set term."""
    s = summarize(per_seed)
    return Difference(s.n, s.mean, s.std, test_sd)


def holm(p_values: Sequence[float], alpha: float = ALPHA) -> list[float]:
    """Holm's step-down adjusted p-values of a family (statsmodels' `multipletests`, method "holm"); a member
    without a p-value (NaN: not tested) counts as p = 1, so it can reject nothing and still counts in the family."""
    if not p_values:
        return []
    from statsmodels.stats.multitest import multipletests  # type: ignore[import-untyped]

    p = np.nan_to_num(np.asarray(p_values, dtype=np.float64), nan=1.0)
    return [float(x) for x in multipletests(p, alpha=alpha, method="holm")[1]]


def holm_levels(p_values: Sequence[float], alpha: float = ALPHA) -> list[float]:
    """The level Holm's procedure tests each member at, α / (m − rank + 1) by its rank among the family's p-values
    (the smallest first): what a member's raw p must reach, once the members ranked before it have."""
    p = np.nan_to_num(np.asarray(p_values, dtype=np.float64), nan=1.0)
    ranks = np.empty(len(p), dtype=np.int64)
    ranks[np.argsort(p, kind="stable")] = np.arange(1, len(p) + 1)
    return [alpha / (len(p) - int(r) + 1) for r in ranks]


@dataclass(frozen=True)
class Check:
    """One test a decision needs: shift `delta` (> 0 in the direction the test must show) at `alpha`, of a
    difference with per-seed spread `seed_sd` and test-set term `test_sd`; `one_sided` or two-sided."""

    delta: float
    seed_sd: float
    test_sd: float
    alpha: float
    one_sided: bool


def power(test: Check, n: int) -> float:
    """statsmodels' `TTestPower` of `test` at n seeds: a one-sample t-test of the per-seed differences, whose
    mean's variance seed_sd²/n + test_sd² is that of n draws with sd √(seed_sd² + n·test_sd²)."""
    from statsmodels.stats.power import TTestPower  # type: ignore[import-untyped]

    if test.delta <= 0:
        return 0.0
    sd = math.sqrt(test.seed_sd**2 + n * test.test_sd**2)
    if sd == 0.0:
        return 1.0
    alternative = "larger" if test.one_sided else "two-sided"
    return float(TTestPower().power(effect_size=test.delta / sd, nobs=n, alpha=test.alpha, alternative=alternative))


def limit_power(test: Check) -> float:
    """The power with infinitely many seeds: the seed term vanishes and the test-set term alone is left
    (a normal test of delta / test_sd); 1 without a test-set term."""
    if test.delta <= 0:
        return 0.0
    if test.test_sd == 0.0:
        return 1.0
    norm = _scipy().norm
    z = norm.isf(test.alpha if test.one_sided else test.alpha / 2)
    return float(norm.cdf(test.delta / test.test_sd - z))


def seeds_needed(tests: Sequence[Check], power_wanted: float = POWER, limit: int = MAX_SEEDS) -> int | None:
    """The fewest seeds (2 to `limit`) at which every test of `tests` rejects together with probability at least
    `power_wanted`, bounded below by Σ powerᵢ − (k − 1) (Bonferroni's inequality, exact for one test); None where no
    number of seeds up to `limit` reaches it (`limit_power` says whether any number could)."""
    if not tests:
        return None
    for n in range(2, limit + 1):
        if sum(power(t, n) for t in tests) - (len(tests) - 1) >= power_wanted:
            return n
    return None


def decidable(tests: Sequence[Check], power_wanted: float = POWER) -> bool:
    """Whether some number of seeds reaches `power_wanted` for `tests` together (with the test-set term fixed)."""
    return bool(tests) and sum(limit_power(t) for t in tests) - (len(tests) - 1) >= power_wanted
