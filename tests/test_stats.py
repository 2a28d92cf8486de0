"""The lab's statistics: scipy's t against published tables, the paired t-test by hand, the difference with a
test-set term (it is the paired t-test without one; on a toy population with a known difference its interval
covers, the seeds-only one does not), Holm's correction and the power calculation against statsmodels."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from fmnist_tui.study.analysis import Part, sampling_variance
from fmnist_tui.study.stats import (
    Check,
    Difference,
    decidable,
    difference,
    holm,
    holm_levels,
    limit_power,
    paired_t_test,
    power,
    seeds_needed,
    summarize,
)

# two-sided 95% critical values t_{0.975, df} from standard tables (NIST/SEMATECH e-Handbook 1.3.6.7.2)
T975 = {1: 12.706204736, 2: 4.302652730, 3: 3.182446305, 5: 2.570581836, 30: 2.042272456}


@pytest.mark.parametrize("df,expected", sorted(T975.items()))
def test_summarize_uses_the_t_quantile_of_the_tables(df: int, expected: float) -> None:
    values = [0.0] * df + [1.0]  # n = df + 1
    s = summarize(values)
    assert s.half_width == pytest.approx(expected * s.std / math.sqrt(df + 1), rel=1e-8)


def test_summarize_mean_std_ci() -> None:
    s = summarize([0.90, 0.91, 0.92])
    assert s.n == 3 and s.mean == pytest.approx(0.91) and s.std == pytest.approx(0.01)  # ddof 1
    one = summarize([0.5])
    assert one.mean == 0.5 and math.isnan(one.std) and math.isnan(one.ci_low)
    with pytest.raises(ValueError):
        summarize([])


def test_paired_t_test_hand_computed() -> None:
    # differences 1, 2, 3: mean 2, sd 1, t = 2·√3, df 2, and Student t with 2 df has cdf(t) = 1/2 + t / (2 √(t² + 2))
    res = paired_t_test([11, 12, 13], [10, 10, 10])
    t = 2 * math.sqrt(3)
    assert res.t == pytest.approx(t)
    assert res.p_value == pytest.approx(2 * (0.5 - t / (2 * math.sqrt(2 + t * t))), rel=1e-9)
    assert not res.significant and res.ci_low < 0 < res.ci_high
    base = np.array([0.80, 0.90, 0.85, 0.88])  # a large spread between seeds, a steady gain within each
    assert paired_t_test(base + np.array([0.01, 0.011, 0.009, 0.01]), base).significant


def test_paired_t_test_degenerate() -> None:
    assert paired_t_test([1, 2], [0, 1]).p_value == 0.0  # identical positive differences
    assert paired_t_test([1, 2], [1, 2]).p_value == 1.0
    assert math.isnan(paired_t_test([1], [0]).p_value)  # one seed: no test possible
    with pytest.raises(ValueError):
        paired_t_test([1, 2], [1])


def test_a_difference_without_a_test_set_term_is_the_paired_t_test() -> None:
    a, b = [0.915, 0.921, 0.913, 0.92], [0.91, 0.912, 0.909, 0.915]
    d, t = difference(np.subtract(a, b).tolist()), paired_t_test(a, b)
    assert d.df == 3 and d.p_equal(0.0) == pytest.approx(t.p_value, rel=1e-12)
    assert d.interval() == pytest.approx((t.ci_low, t.ci_high), rel=1e-12)


def test_the_test_set_term_widens_the_interval_and_satterthwaite_counts_its_df() -> None:
    d = Difference(3, 0.004, 0.001, 0.002)
    seed_var = 0.001**2 / 3
    assert d.se == pytest.approx(math.sqrt(seed_var + 0.002**2))
    assert d.df == pytest.approx((seed_var + 0.002**2) ** 2 / (seed_var**2 / 2))  # Welch–Satterthwaite
    low, high = d.interval()
    assert high - low > Difference(3, 0.004, 0.001).interval()[1] - Difference(3, 0.004, 0.001).interval()[0]
    assert Difference(3, 0.004, 0.0, 0.002).df == math.inf  # no seed spread: the normal reference
    one = Difference(1, 0.004, math.nan, 0.002)
    assert math.isnan(one.p_equal(0.0)) and math.isnan(one.interval()[0])


def test_one_sided_tests_mirror_each_other() -> None:
    d = Difference(3, 0.002, 0.001, 0.001)
    assert d.p_below(0.005) + d.p_above(0.005) == pytest.approx(1.0)
    assert d.p_below(0.005) < 0.05 < d.p_above(0.005)


@dataclass
class Run:
    """A toy run: its accuracy on a test set of n images."""

    accuracy: float
    n: int


def parts(run: Run) -> list[Part]:
    return [Part(1.0, run.accuracy, 0.0, 1.0, run.n)]


def test_the_sampling_bound_is_the_binomial_variance_when_every_seed_agrees_on_every_image() -> None:
    """Bhatia–Davis at equality: right/wrong values that every run shares give exactly p(1 − p)/n."""
    runs = [Run(0.9, 10_000)] * 3
    assert sampling_variance(runs, parts) == pytest.approx(0.9 * 0.1 / 10_000)
    # runs that differ: the bound is taken at their mean accuracy
    assert sampling_variance([Run(0.8, 100), Run(0.9, 100)], parts) == pytest.approx(0.85 * 0.15 / 100)
    signed = [Part(-0.5, 0.3, -1.0, 1.0, 50)]  # a weighted part on a [-1, 1] scale: w² (1 − μ)(μ + 1) / n
    assert sampling_variance([None], lambda _: signed) == pytest.approx(0.25 * 0.7 * 1.3 / 50)


def test_on_a_toy_population_the_interval_covers_the_known_difference_and_seeds_alone_do_not() -> None:
    """Images with a difficulty each, two configs that get an image right with a probability set by it: the true
    difference is the population's, each study draws one test set of 2,000 images and three seeds on it. The
    interval with the test-set term (its bound, as if the configs' errors were uncorrelated) covers the truth at
    least 95% of the time; the seeds-only interval, blind to which test set was drawn, far less often."""
    rng = np.random.default_rng(7)

    def probabilities(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shared = z[:, 0]  # what makes an image hard for both
        return 1 / (1 + np.exp(-(8 * shared + 5))), 1 / (1 + np.exp(-(8 * (0.6 * shared + 0.8 * z[:, 1]) + 4.6)))

    qa, qb = probabilities(rng.standard_normal((2_000_000, 2)))
    truth = float(qa.mean() - qb.mean())
    covered = covered_seeds = 0
    sims, n = 400, 2_000
    for _ in range(sims):
        pa, pb = probabilities(rng.standard_normal((n, 2)))
        acc_a = (rng.random((3, n)) < pa).mean(axis=1)
        acc_b = (rng.random((3, n)) < pb).mean(axis=1)
        tau = math.sqrt(
            sampling_variance([Run(float(x), n) for x in acc_a], parts)
            + sampling_variance([Run(float(x), n) for x in acc_b], parts)
        )
        low, high = difference((acc_a - acc_b).tolist(), tau).interval()
        covered += low <= truth <= high
        seeds_only = paired_t_test(acc_a.tolist(), acc_b.tolist())
        covered_seeds += seeds_only.ci_low <= truth <= seeds_only.ci_high
    assert covered / sims >= 0.95
    assert covered_seeds / sims < 0.8


def test_holm_on_fixed_numbers_and_an_untested_member_counts_as_one() -> None:
    # m = 4: 0.01·4 = 0.04; 0.03·3 = 0.09; 0.04·2 = 0.08 → 0.09 (monotone); NaN → 1
    assert holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.04, 0.09, 0.09, 1.0])
    assert holm_levels([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.05 / 4, 0.05 / 2, 0.05 / 3, 0.05])
    assert holm([]) == []


def test_power_and_seeds_needed_against_statsmodels() -> None:
    from statsmodels.stats.power import TTestPower

    plain = Check(delta=1.0, seed_sd=1.0, test_sd=0.0, alpha=0.05, one_sided=False)
    assert power(plain, 10) == pytest.approx(TTestPower().power(effect_size=1.0, nobs=10, alpha=0.05))
    assert seeds_needed([plain]) == math.ceil(TTestPower().solve_power(effect_size=1.0, alpha=0.05, power=0.8))
    # a test-set term needs more seeds, and one too wide for the effect cannot be decided by any number of them
    assert seeds_needed([Check(1.0, 1.0, 0.2, 0.05, False)]) > seeds_needed([plain])
    wide = Check(1.0, 1.0, 0.6, 0.05, False)
    assert seeds_needed([wide]) is None and not decidable([wide])
    assert limit_power(wide) == pytest.approx(0.5 * math.erfc(-(1.0 / 0.6 - 1.959964) / math.sqrt(2)), rel=1e-5)
    # two tests that must both reject need at least as many seeds as either
    assert seeds_needed([plain, plain]) >= seeds_needed([plain])
    assert power(Check(-1.0, 1.0, 0.0, 0.05, True), 10) == 0.0
