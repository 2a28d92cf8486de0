"""A claim's verdict: the outcome its paired differences point to and that outcome's p, the correction over the
family of every claim the lab states (Holm), the seeds an undecided claim would need, and whether the verdict
replicates under the lab's other recipes (no torch).

The rules, one interval per difference (95%, with the seeds' and the test images' variance), one margin per metric
(`analysis.MARGINS`, the smallest effect of interest), for every kind of claim:

- a difference is *shown* when it is significantly ≠ 0 (two-sided) and its estimate lies beyond the margin: the
  test guards the direction, the margin the relevance, without asking three seeds for an interval wholly beyond
  the margin (a common convention for superiority with a smallest effect of interest);
- a difference is *bounded* when its 95% interval lies below +margin, or inside ±margin for a claim of no
  difference (two one-sided tests at 2.5% each): "not different" (an interval that holds 0) is not "equal".

`beats` (a − b > 0): supported when every difference is shown > 0; contradicted when one is bounded below
+margin (b is better, or a's gain is smaller than the margin: no win of interest). `at most` (a gains less than the
margin: "b is sufficient"): the mirror, supported when every difference is bounded below +margin, contradicted when
one is shown > 0. `equivalent`: supported when every difference is bounded inside ±margin, contradicted when one is
shown ≠ 0. The estimates say which outcome a claim's data point to; that outcome's p (the largest of its
differences' when all must hold, Bonferroni's k × the smallest when one suffices) is the claim's member of the
family, and its verdict needs the Holm-adjusted p below α.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..core.data import CLASSES
from ..core.text import counted
from .analysis import ACCURACY, MARGINS, Comparison, Term, key, p_is, p_text, term
from .results import Group, to_markdown
from .stats import ALPHA, MAX_SEEDS, POWER, Check, Difference, decidable, holm, holm_levels, seeds_needed

#: the family every claim of the lab belongs to, corrected together whichever study states it
FAMILY = "the lab's claims"
METHOD = "holm"
#: what a claim says of each of its differences a − b
BEATS, AT_MOST, EQUIVALENT = "beats", "at most", "equivalent"
#: the outcome a claim's estimates point to
FOR, AGAINST = "for", "against"
SUPPORTED, CONTRADICTED, UNDECIDED, NOT_TESTED, FRAGILE = (
    "supported",
    "contradicted",
    "not supported at this sample size",
    "not tested",
    "fragile",
)
NOT_RUN = "replication: not run"


@dataclass(frozen=True)
class Claim:
    """A claim the notebook makes about differences a − b of `metric` (each side a config or a difference of two:
    `analysis.Term`): that a beats b (`BEATS`), that a gains less than the metric's margin over b (`AT_MOST`: "b is
    sufficient"), or that they do not differ beyond ±margin (`EQUIVALENT`)."""

    text: str
    needed: tuple[tuple[Term, Term], ...]
    metric: str = ACCURACY
    kind: str = BEATS
    source: str = ""  # the notebook's words it comes from

    @property
    def margin(self) -> float:
        """The metric's smallest effect of interest (`analysis.MARGINS`), the same for every claim about it."""
        return MARGINS[self.metric]

    def names(self) -> list[str]:
        return [key(term(a), term(b), self.metric) for a, b in self.needed]


@dataclass
class Judged:
    """A claim's evidence before the family's correction: its differences (none when a config has no runs), the
    outcome their estimates point to, and that outcome's raw p (NaN: not tested, or one seed)."""

    claim: Claim
    study: str
    comparisons: list[Comparison] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    side: str = FOR
    p_raw: float = math.nan

    @property
    def tested(self) -> bool:
        return bool(self.comparisons) and not math.isnan(self.p_raw)


def judge(claim: Claim, found: dict[str, Comparison], study: str) -> Judged:
    """The claim's evidence from the study's differences (`found`, by name)."""
    missing = [name for name in claim.names() if name not in found]
    if missing:
        return Judged(claim, study, missing=missing)
    comps = [found[name] for name in claim.names()]
    side, p = decisive(claim.kind, [c.diff for c in comps], claim.margin)
    return Judged(claim, study, comps, [], side, p)


def _worst(ps: list[float]) -> float:
    return math.nan if any(math.isnan(p) for p in ps) else max(ps)


def _best(ps: list[float]) -> float:
    """Bonferroni's k × the smallest of k p-values (one of them suffices)."""
    return math.nan if any(math.isnan(p) for p in ps) else min(1.0, len(ps) * min(ps))


def _shown(d: Difference) -> float:
    return d.p_equal(0.0)


def _below(d: Difference, margin: float) -> float:
    """The 95% interval below +margin, as a two-sided-scale p (2 × the one-sided p at 2.5%)."""
    return min(1.0, 2.0 * d.p_below(margin))


def _inside(d: Difference, margin: float) -> float:
    """The 95% interval inside ±margin: two one-sided tests at 2.5%, as a two-sided-scale p."""
    return min(1.0, 2.0 * max(d.p_above(-margin), d.p_below(margin)))


def decisive(kind: str, diffs: list[Difference], margin: float) -> tuple[str, float]:
    """The outcome the estimates point to (FOR or AGAINST the claim) and its p (module docstring)."""
    est = [d.estimate for d in diffs]
    if kind == BEATS:
        if all(e >= margin for e in est):
            return FOR, _worst([_shown(d) for d in diffs])
        return AGAINST, _best([_below(d, margin) for d in diffs if d.estimate < margin])
    if kind == AT_MOST:
        if all(e < margin for e in est):
            return FOR, _worst([_below(d, margin) for d in diffs])
        return AGAINST, _best([_shown(d) for d in diffs if d.estimate >= margin])
    if kind == EQUIVALENT:
        if all(abs(e) < margin for e in est):
            return FOR, _worst([_inside(d, margin) for d in diffs])
        return AGAINST, _best([_shown(d) for d in diffs if abs(d.estimate) >= margin])
    raise ValueError(f"claim kind {kind!r} is unknown; valid: {BEATS}, {AT_MOST}, {EQUIVALENT}")


def _tests(j: Judged, level: float) -> tuple[list[Check], bool]:
    """The tests the outcome j's estimates point to needs at Holm's `level`, and whether all of them must reject
    (else one suffices, each then at level / k)."""
    m, diffs = j.claim.margin, [c.diff for c in j.comparisons]
    kind, side = j.claim.kind, j.side

    def shown(d: Difference, alpha: float) -> Check:
        return Check(abs(d.estimate), d.seed_sd, d.test_sd, alpha, one_sided=False)

    def bound(d: Difference, gap: float, alpha: float) -> Check:
        return Check(gap, d.seed_sd, d.test_sd, alpha / 2, one_sided=True)

    if side == FOR:
        if kind == BEATS:
            return [shown(d, level) for d in diffs], True
        if kind == AT_MOST:
            return [bound(d, m - d.estimate, level) for d in diffs], True
        return [t for d in diffs for t in (bound(d, d.estimate + m, level), bound(d, m - d.estimate, level))], True
    if kind == BEATS:
        pointing = [d for d in diffs if d.estimate < m]
        return [bound(d, m - d.estimate, level / len(pointing)) for d in pointing], False
    pointing = [d for d in diffs if (d.estimate >= m if kind == AT_MOST else abs(d.estimate) >= m)]
    return [shown(d, level / len(pointing)) for d in pointing], False


def seeds_text(j: Judged, level: float) -> tuple[int | None, str]:
    """How many seeds would decide an undecided claim at 80% power, with its observed effects and spreads, at the
    level Holm's procedure would test it at (`stats.seeds_needed`); the number and the sentence."""
    n = min(c.diff.n for c in j.comparisons)
    if n < 2:
        return None, "a second seed would give its spread"
    tests, every = _tests(j, level)
    groups = [tests] if every else [[t] for t in tests]
    found = [seeds_needed(g, POWER, MAX_SEEDS) for g in groups]
    found = [f if f is None else max(f, n + 1) for f in found]
    best = min((f for f in found if f is not None), default=None)
    if best is not None:
        return best, f"{best} seeds would decide it at {POWER:.0%} power (its observed effect and spread)"
    if any(decidable(g, POWER) for g in groups):
        return None, f"more than {MAX_SEEDS} seeds would be needed at {POWER:.0%} power"
    bounded = not all(c.per_image for c in j.comparisons)
    return None, (
        "no number of seeds decides it at the observed effect: the test images' own sampling variance, which "
        "seeds do not shrink, is too wide for it"
        + (
            " (bounded from the aggregates; per-image predictions would give the tighter paired term)"
            if bounded
            else ""
        )
    )


def outcome(kind: str, side: str, margin: float) -> str:
    """What the test of the outcome a claim's estimates point to shows when it rejects, in words."""
    m = 100 * margin
    if side == FOR:
        return {
            BEATS: "that it is > 0",
            AT_MOST: f"that it lies below +{m:.2f}",
            EQUIVALENT: f"that it lies inside ±{m:.2f}",
        }[kind]
    return f"that it lies below +{m:.2f}" if kind == BEATS else "that it is ≠ 0"


def _why(j: Judged, word: str) -> str:
    """What the verdict rests on, in words."""
    kind, m = j.claim.kind, 100 * j.claim.margin
    if word == UNDECIDED and j.p_raw < ALPHA:
        return "shown at the raw p, not after the family's correction"
    if word == SUPPORTED:
        return {
            BEATS: f"every difference is significantly > 0 and beyond +{m:.2f} points",
            AT_MOST: f"every difference's 95% interval lies below +{m:.2f} points",
            EQUIVALENT: f"every difference's 95% interval lies inside ±{m:.2f} points",
        }[kind]
    if word == CONTRADICTED:
        if kind == BEATS:
            worse = any(c.diff.interval()[1] < 0 for c in j.comparisons)
            return (
                "a difference's 95% interval lies below 0: the other side is better"
                if worse
                else f"a difference's 95% interval lies below +{m:.2f} points: smaller than the margin, no win of "
                "interest (which is not to say no difference)"
            )
        return f"a difference is significantly ≠ 0 and beyond {'±' if kind == EQUIVALENT else '+'}{m:.2f} points"
    if j.side == FOR and kind == BEATS:
        return f"the estimates reach +{m:.2f} points but their intervals still hold 0"
    if kind == BEATS:
        return f"an interval holds +{m:.2f} points: a gain of interest is neither shown nor excluded"
    return f"an interval crosses {'±' if kind == EQUIVALENT else '+'}{m:.2f} points"


def decide(j: Judged, p_adjusted: float, level: float, family: dict[str, Any]) -> dict[str, Any]:
    """The verdict record of a judged claim, given its Holm-adjusted p and the level Holm tests it at."""
    c = j.claim
    record: dict[str, Any] = {
        "claim": c.text,
        "study": j.study,
        "source": c.source,
        "kind": c.kind,
        "metric": c.metric,
        "margin": c.margin,
        "family": {"name": family["name"], "size": family["size"], "tested": family["tested"]},
    }
    if not j.comparisons:
        return {
            **record,
            "verdict": NOT_TESTED,
            "detail": f"needs {', '.join(j.missing)} (runs with shared seeds)",
            "differences": [],
            "p_raw": None,
            "p_adjusted": None,
            "seeds_needed": None,
        }
    n = min(comp.diff.n for comp in j.comparisons)
    if not math.isnan(p_adjusted) and p_adjusted < ALPHA:
        word = SUPPORTED if j.side == FOR else CONTRADICTED
    else:
        word = f"{UNDECIDED} ({counted(n, 'seed')})"
    needed, needs = (None, "") if word in (SUPPORTED, CONTRADICTED) else seeds_text(j, level)
    sign = "±" if c.kind == EQUIVALENT else "+"
    detail = "; ".join(comp.describe() for comp in j.comparisons)
    detail += (
        f"; margin {sign}{100 * c.margin:.2f} points; {p_is(j.p_raw)} (the test {outcome(c.kind, j.side, c.margin)}), "
        f"Holm-adjusted {p_text(p_adjusted)} over {family['name']} ({counted(family['size'], 'claim')}, "
        f"{family['tested']} tested)"
    )
    word_why = SUPPORTED if word == SUPPORTED else CONTRADICTED if word == CONTRADICTED else UNDECIDED
    detail += f"; {_why(j, word_why)}" + (f"; {needs}" if needs else "")
    return {
        **record,
        "verdict": word,
        "detail": detail,
        "differences": [{"name": comp.name, **comp.diff.to_dict()} for comp in j.comparisons],
        "tests": outcome(c.kind, j.side, c.margin),
        "p_raw": None if math.isnan(j.p_raw) else j.p_raw,
        "p_adjusted": None if math.isnan(p_adjusted) else p_adjusted,
        "seeds_needed": needed,
    }


def correct(judged: list[Judged]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every claim of the family (`judged`, all of the lab's, tested or not) with its verdict after Holm's
    correction over all of them; and the family's description (its members' raw and adjusted p)."""
    raw = [j.p_raw for j in judged]
    adjusted, levels = holm(raw), holm_levels(raw)
    family: dict[str, Any] = {
        "name": FAMILY,
        "method": METHOD,
        "alpha": ALPHA,
        "size": len(judged),
        "tested": sum(j.tested for j in judged),
    }
    verdicts = [decide(j, p, lv, family) for j, p, lv in zip(judged, adjusted, levels, strict=True)]
    family["members"] = [
        {"study": j.study, "claim": j.claim.text, "p_raw": v["p_raw"], "p_adjusted": v["p_adjusted"]}
        for j, v in zip(judged, verdicts, strict=True)
    ]
    return verdicts, family


def decided(word: str) -> bool:
    return word in (SUPPORTED, CONTRADICTED)


def replicate(verdict: dict[str, Any], others: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """`verdict` with its replication under the other recipes (`others`: (the recipe, the claim's verdict there),
    tested ones only): FRAGILE where a decided verdict on either side differs from the other, so a verdict that
    flips with the recipe is never reported as supported."""
    if verdict["verdict"] == NOT_TESTED:
        return {**verdict, "replication": [], "replication_text": NOT_RUN}
    if not others:
        return {**verdict, "replication": [], "replication_text": NOT_RUN, "detail": f"{verdict['detail']}; {NOT_RUN}"}
    here = verdict["verdict"]
    runs = [{"recipe": recipe, "verdict": v["verdict"], "p_adjusted": v["p_adjusted"]} for recipe, v in others]
    words = [here, *(r["verdict"] for r in runs)]
    fragile = any(decided(w) for w in words) and len({w.split(" (")[0] for w in words}) > 1
    text = "; ".join(f"{r['verdict']} under {r['recipe']}" for r in runs)
    lead = "fragile: " + here + " here, " if fragile else "replicates: " if decided(here) else "also "
    text = lead + text
    out = {**verdict, "replication": runs, "replication_text": text, "detail": f"{verdict['detail']}; {text}"}
    if fragile:
        out = {**out, "verdict": FRAGILE, "verdict_here": here}
    return out


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
    judged: list[Judged] = field(default_factory=list)  # each claim's evidence, before the family's correction
    family: dict[str, Any] = field(default_factory=dict)  # the family the verdicts were corrected over

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
            "family": self.family,
            "study": self.name,
        }


def study_markdown(study: Study) -> str:
    """The study as Markdown: table, paired differences, per-class differences, verdicts."""
    out = ["## Results by config\n", to_markdown(study.rows)]
    head = [
        "| difference | mean | 95% CI | p | sd: seeds | sd: test images | seeds | seeds-only 95% CI |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for metric in dict.fromkeys(c.metric for c in study.comparisons):
        out += [f"\n## Paired differences ({metric}, points)\n", *head]
        out += [_diff_row(f"{c.a} − {c.b}", c) for c in study.comparisons if c.metric == metric]
    if study.per_class and study.per_class_pair:
        a, b = study.per_class_pair
        out += [f"\n## Per-class accuracy, {a} − {b} (points)\n", *head]
        out += [
            _diff_row(f"**{CLASSES[i]}**" if CLASSES[i] in study.highlight else CLASSES[i], c)
            for i, c in enumerate(study.per_class)
        ]
    if study.comparisons or study.per_class:
        out += [
            "\nThe 95% intervals and p add the test images' sampling variance to the seeds' (paired per image where "
            "the runs carry their predictions, else a conservative bound from the stored confusion matrices, as if "
            "the networks' errors were uncorrelated); the last column is the seeds-only paired t-test."
        ]
    out += [f"\n{note.rstrip()}\n" for note in study.notes]
    out += ["\n## Verdicts on the notebook's claims\n"]
    if study.family:
        out += [family_sentence(study.family) + "\n"]
    out += [f"- **{v['claim']}**: {v['verdict']}. {v['detail']}" for v in study.verdicts]
    return "\n".join(out) + "\n"


def family_sentence(family: dict[str, Any]) -> str:
    """'Each p is corrected by Holm's method over the family of the lab's claims: 21 claims, 9 of them tested …'."""
    return (
        f"Each p is corrected by Holm's method over the family of {family['name']}: "
        f"{counted(family['size'], 'claim')} across every study, {family['tested']} of them tested on the runs "
        "there are (a claim not tested counts as p = 1). A verdict needs its adjusted p below "
        f"{family['alpha']:g}."
    )


def _diff_row(label: str, c: Comparison) -> str:
    d, t = c.diff, c.test
    if d.n < 2:
        return f"| {label} | {100 * d.estimate:+.2f} | — | — | — | {100 * d.test_sd:.2f} | {d.n} | — |"
    low, high = d.interval()
    return (
        f"| {label} | {100 * d.estimate:+.2f} | [{100 * low:+.2f}, {100 * high:+.2f}] | {p_text(d.p_equal(0.0))} | "
        f"{100 * d.seed_sd:.2f} | {100 * d.test_sd:.2f} | {d.n} | [{100 * t.ci_low:+.2f}, {100 * t.ci_high:+.2f}] |"
    )
