"""Verdicts on fixed numbers: each kind of claim (beats, at most, equivalent) read against the one margin, a
verdict that falls after Holm's correction over the family, a fragile one, and the seeds an undecided one needs."""

from __future__ import annotations

import pytest

from fmnist_tui.study.analysis import ACCURACY, GAP, MARGINS, Comparison, key
from fmnist_tui.study.stats import difference, paired_t_test
from fmnist_tui.study.verdicts import (
    AT_MOST,
    BEATS,
    CONTRADICTED,
    EQUIVALENT,
    FOR,
    FRAGILE,
    NOT_RUN,
    NOT_TESTED,
    SUPPORTED,
    Claim,
    Judged,
    correct,
    judge,
    replicate,
)

UNDECIDED3 = "not supported at this sample size (3 seeds)"


def comparison(per_seed: list[float], test_sd: float = 0.0, metric: str = ACCURACY) -> dict[str, Comparison]:
    """`x − y` with these per-seed differences and a test-set sd, keyed as claims look it up."""
    zeros = [0.0] * len(per_seed)
    c = Comparison("x", "y", list(range(len(per_seed))), paired_t_test(per_seed, zeros), difference(per_seed, test_sd))
    c = Comparison(c.a, c.b, c.seeds, c.test, c.diff, metric)
    return {key("x", "y", metric): c}


def verdict_of(kind: str, per_seed: list[float], test_sd: float = 0.0, metric: str = ACCURACY) -> dict:
    claim = Claim("x vs y", (("x", "y"),), metric, kind)
    (v,), _ = correct([judge(claim, comparison(per_seed, test_sd, metric), "s")])
    return v


def test_the_margin_is_one_per_metric() -> None:
    assert MARGINS[ACCURACY] == 0.005  # half a point
    assert Claim("a", (("x", "y"),)).margin == Claim("b", (("x", "y"),), kind=AT_MOST).margin == MARGINS[ACCURACY]
    assert Claim("c", (("x", "y"),), GAP, EQUIVALENT).margin == MARGINS[GAP]


@pytest.mark.parametrize(
    "kind,per_seed,test_sd,word,why",
    [
        # a beats b: shown > 0 beyond the margin; contradicted by an interval below +margin (worse, or too small)
        (BEATS, [0.010, 0.011, 0.012], 0.001, SUPPORTED, "significantly > 0 and beyond +0.50"),
        (BEATS, [-0.010, -0.011, -0.012], 0.001, CONTRADICTED, "below 0: the other side is better"),
        (BEATS, [0.001, 0.0012, 0.0008], 0.0005, CONTRADICTED, "smaller than the margin"),
        (BEATS, [0.002, 0.004, 0.006], 0.001, UNDECIDED3, "a gain of interest is neither shown nor excluded"),
        (BEATS, [0.010, 0.011, 0.012], 0.006, UNDECIDED3, "intervals still hold 0"),  # the test images' term
        (BEATS, [0.010], 0.001, "not supported at this sample size (1 seed)", "a second seed"),
        # b is sufficient: a gains less than the margin
        (AT_MOST, [0.001, 0.002, 0.0015], 0.0005, SUPPORTED, "below +0.50"),
        (AT_MOST, [-0.010, -0.011, -0.012], 0.0005, SUPPORTED, "below +0.50"),  # worse is also "no gain"
        (AT_MOST, [0.020, 0.021, 0.019], 0.001, CONTRADICTED, "significantly ≠ 0 and beyond +0.50"),
        (AT_MOST, [0.003, 0.004, 0.005], 0.002, UNDECIDED3, "crosses +0.50"),
        # no difference beyond ±margin: two one-sided tests, the 95% interval inside the margin
        (EQUIVALENT, [0.0005, -0.0005, 0.0], 0.0005, SUPPORTED, "inside ±0.50"),
        (EQUIVALENT, [0.010, 0.011, 0.009], 0.001, CONTRADICTED, "beyond ±0.50"),
        (EQUIVALENT, [0.002, -0.003, 0.004], 0.003, UNDECIDED3, "crosses ±0.50"),
    ],
)
def test_verdicts_on_fixed_numbers(kind: str, per_seed: list[float], test_sd: float, word: str, why: str) -> None:
    v = verdict_of(kind, per_seed, test_sd)
    assert v["verdict"] == word, v["detail"]
    assert why in v["detail"]
    assert (
        v["detail"].startswith("x − y = ") and ("margin ±0.50" if kind == EQUIVALENT else "margin +0.50") in v["detail"]
    )
    assert v["family"] == {"name": "the lab's claims", "size": 1, "tested": int(len(per_seed) > 1)}
    if len(per_seed) > 1:
        (d,) = v["differences"]
        assert d["estimate"] == pytest.approx(sum(per_seed) / len(per_seed)) and d["test_sd"] == test_sd
        assert d["ci_low"] < d["estimate"] < d["ci_high"] or d["ci_low"] == d["ci_high"]
        assert v["p_raw"] == v["p_adjusted"]  # a family of one: nothing to correct


def test_not_different_is_not_equal() -> None:
    """A noisy difference: the t-test finds nothing, and that supports neither a win nor a tie."""
    noisy = [0.002, -0.003, 0.004]
    assert verdict_of(BEATS, noisy, 0.003)["verdict"] == UNDECIDED3
    assert verdict_of(EQUIVALENT, noisy, 0.003)["verdict"] == UNDECIDED3
    assert paired_t_test(noisy, [0.0] * 3).p_value > 0.5


def test_a_supported_verdict_falls_after_holm() -> None:
    """d = +0.6, +0.8, +1.0 points: sd 0.2, t = 6.93 with 2 df, p = 0.0202, supported alone; in a family of five
    (four untested, each counting as p = 1) Holm multiplies it by five: 0.101, not supported."""
    claim = Claim("x beats y", (("x", "y"),))
    alone = judge(claim, comparison([0.006, 0.008, 0.010]), "s")
    assert alone.side == FOR and alone.p_raw == pytest.approx(0.0202, abs=1e-4)
    (v,), family = correct([alone])
    assert v["verdict"] == SUPPORTED and family["size"] == 1
    untested = [Judged(Claim(f"other {i}", (("p", "q"),)), "t") for i in range(4)]
    verdicts, family = correct([alone, *untested])
    assert verdicts[0]["verdict"] == UNDECIDED3 and verdicts[0]["p_adjusted"] == pytest.approx(5 * 0.0202, abs=5e-4)
    assert "shown at the raw p, not after the family's correction" in verdicts[0]["detail"]
    assert "(5 claims, 1 tested)" in verdicts[0]["detail"] and family["size"] == 5 and family["tested"] == 1
    assert [v["verdict"] for v in verdicts[1:]] == [NOT_TESTED] * 4
    assert [m["p_adjusted"] for m in family["members"]][1:] == [None] * 4


def test_holm_steps_down_over_tested_claims() -> None:
    strong = judge(Claim("a", (("x", "y"),)), comparison([0.020, 0.021, 0.022], 0.001), "s")
    weak = judge(Claim("b", (("x", "y"),)), comparison([0.006, 0.008, 0.010]), "s")
    verdicts, _ = correct([strong, weak])
    assert verdicts[0]["p_adjusted"] == pytest.approx(2 * strong.p_raw)
    assert verdicts[1]["p_adjusted"] == pytest.approx(max(weak.p_raw, 2 * strong.p_raw))  # the last step: ×1
    assert verdicts[1]["verdict"] == SUPPORTED


def test_a_claim_with_several_differences_needs_every_one() -> None:
    claim = Claim("x and z beat y", (("x", "y"), ("z", "y")))
    found = {**comparison([0.010, 0.011, 0.012], 0.001)}
    assert judge(claim, found, "s").missing == ["z − y"]
    other = comparison([0.001, 0.0012, 0.0008], 0.0005)["x − y"]
    found["z − y"] = Comparison("z", "y", other.seeds, other.test, other.diff)
    (v,), _ = correct([judge(claim, found, "s")])
    assert v["verdict"] == CONTRADICTED and len(v["differences"]) == 2  # z's gain is below the margin


def test_seeds_needed_for_an_undecided_claim() -> None:
    # decidable: a clear gain whose spread is mostly seeds'
    v = verdict_of(BEATS, [0.004, 0.012, 0.008], 0.001)
    assert v["verdict"] == UNDECIDED3 and isinstance(v["seeds_needed"], int) and v["seeds_needed"] > 3
    assert f"{v['seeds_needed']} seeds would decide it at 80% power" in v["detail"]
    # not decidable: the test images alone (which seeds do not shrink) are too wide for this effect
    v = verdict_of(BEATS, [0.010, 0.011, 0.012], 0.006)
    assert v["seeds_needed"] is None and "no number of seeds decides it" in v["detail"]
    assert verdict_of(BEATS, [0.010, 0.011, 0.012], 0.001)["seeds_needed"] is None  # decided: nothing to add


def test_a_verdict_that_flips_with_the_recipe_is_fragile() -> None:
    claim = Claim("x beats y", (("x", "y"),))
    (here,), _ = correct([judge(claim, comparison([0.010, 0.011, 0.012], 0.001), "s")])
    (there,), _ = correct([judge(claim, comparison([0.010, 0.001, -0.004], 0.004), "s")])
    (worse,), _ = correct([judge(claim, comparison([-0.010, -0.011, -0.012], 0.001), "s")])
    fragile = replicate(here, [("fp32, 3 epochs, yours", there)])
    assert fragile["verdict"] == FRAGILE and fragile["verdict_here"] == SUPPORTED
    assert fragile["replication_text"] == f"fragile: supported here, {UNDECIDED3} under fp32, 3 epochs, yours"
    assert replicate(here, [("fp32", worse)])["verdict"] == FRAGILE
    same = replicate(here, [("fp32", here)])
    assert same["verdict"] == SUPPORTED and same["replication_text"] == "replicates: supported under fp32"
    assert replicate(there, [("fp32", there)])["verdict"] == UNDECIDED3  # undecided twice: not fragile
    alone = replicate(here, [])
    assert alone["verdict"] == SUPPORTED and alone["replication_text"] == NOT_RUN and NOT_RUN in alone["detail"]


def test_an_untested_claim_says_what_it_needs() -> None:
    (v,), family = correct([judge(Claim("x beats z", (("x", "z"),)), comparison([0.01, 0.01]), "s")])
    assert v["verdict"] == NOT_TESTED and "needs x − z" in v["detail"] and v["p_raw"] is None
    assert family["tested"] == 0
