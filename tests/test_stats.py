"""Student-t distribution and paired tests against closed forms and published table values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fmnist_tui.study.stats import betainc, paired_t_test, summarize, t_cdf, t_ppf

# two-sided 95% critical values t_{0.975, df} from standard tables (NIST/SEMATECH e-Handbook 1.3.6.7.2)
T975 = {
    1: 12.706204736,
    2: 4.302652730,
    3: 3.182446305,
    4: 2.776445105,
    5: 2.570581836,
    10: 2.228138852,
    30: 2.042272456,
    100: 1.983971519,
}


@pytest.mark.parametrize("df,expected", sorted(T975.items()))
def test_t_ppf_matches_tables(df: int, expected: float) -> None:
    assert t_ppf(0.975, df) == pytest.approx(expected, abs=1e-7)
    assert t_ppf(0.025, df) == pytest.approx(-expected, abs=1e-7)


def test_t_ppf_tends_to_normal() -> None:
    assert t_ppf(0.975, 1e7) == pytest.approx(1.959963985, abs=1e-5)


@pytest.mark.parametrize("t", [-30.0, -3.0, -0.7, 0.0, 0.25, 1.0, 4.2, 50.0])
def test_t_cdf_closed_forms(t: float) -> None:
    assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)  # Cauchy
    assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)


def test_t_cdf_inverts_ppf() -> None:
    for df in (1, 2, 3, 7, 29):
        for p in (0.001, 0.1, 0.5, 0.9, 0.999):
            assert t_cdf(t_ppf(p, df), df) == pytest.approx(p, abs=1e-10)


def test_betainc_symmetry_and_uniform() -> None:
    assert betainc(1.0, 1.0, 0.3) == pytest.approx(0.3)
    assert betainc(2.5, 0.5, 0.8) == pytest.approx(1 - betainc(0.5, 2.5, 0.2), abs=1e-12)
    assert betainc(3, 4, 0) == 0.0 and betainc(3, 4, 1) == 1.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        t_ppf(1.0, 3)
    with pytest.raises(ValueError):
        t_cdf(1.0, 0)
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        paired_t_test([1, 2], [1])


def test_summarize_mean_std_ci() -> None:
    s = summarize([0.90, 0.91, 0.92])
    assert s.n == 3 and s.mean == pytest.approx(0.91)
    assert s.std == pytest.approx(0.01)  # sample std (ddof 1), not population
    assert s.half_width == pytest.approx(T975[2] * 0.01 / math.sqrt(3), rel=1e-9)
    one = summarize([0.5])
    assert one.mean == 0.5 and math.isnan(one.std) and math.isnan(one.ci_low)


def test_paired_t_test_hand_computed() -> None:
    # differences 1, 2, 3: mean 2, sd 1, t = 2·√3, df 2 → p from the df-2 closed form
    res = paired_t_test([11, 12, 13], [10, 10, 10])
    t = 2 * math.sqrt(3)
    assert res.t == pytest.approx(t)
    assert res.p_value == pytest.approx(2 * (0.5 - t / (2 * math.sqrt(2 + t * t))), rel=1e-9)
    assert res.p_value == pytest.approx(0.0742, abs=1e-4)
    assert not res.significant and res.ci_low < 0 < res.ci_high


def test_paired_t_test_uses_pairing() -> None:
    # a large spread between seeds but a constant-ish gain within each seed: pairing finds it
    base = np.array([0.80, 0.90, 0.85, 0.88])
    res = paired_t_test(base + np.array([0.01, 0.011, 0.009, 0.01]), base)
    assert res.significant and res.p_value < 1e-3 and res.ci_low > 0


def test_paired_t_test_degenerate() -> None:
    assert paired_t_test([1, 2], [0, 1]).p_value == 0.0  # identical positive differences
    assert paired_t_test([1, 2], [1, 2]).p_value == 1.0
    assert math.isnan(paired_t_test([1], [0]).p_value)  # one seed: no test possible
