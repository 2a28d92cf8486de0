"""A study's analysis: paired differences over seeds, a verdict per claim, the Markdown of the result (no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.data import CLASSES
from .results import Group, to_markdown
from .stats import PairedTest, paired_t_test


@dataclass(frozen=True)
class Comparison:
    """accuracy(a) − accuracy(b), paired over the seeds both configs have."""

    a: str
    b: str
    seeds: list[int]
    test: PairedTest

    @property
    def name(self) -> str:
        return f"{self.a} − {self.b}"

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
            **self.test.to_dict(),
            "significant": self.test.significant,
        }


def _p(p: float) -> str:
    return "n/a" if p != p else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def compare(ga: Group, gb: Group, values: str = "test_accuracy", cls: int | None = None) -> Comparison | None:
    """Paired test of a − b over common seeds (per-class recall when `cls` is given); None without one."""
    a, b = ga.by_seed(), gb.by_seed()
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None

    def value(rec: Any) -> float:
        return float(rec.summary["per_class"][cls]["recall"]) if cls is not None else float(rec.summary[values])

    test = paired_t_test([value(a[s]) for s in seeds], [value(b[s]) for s in seeds])
    return Comparison(ga.label, gb.label, seeds, test)


def verdict(claim: str, needed: tuple[tuple[str, str], ...], found: dict[str, Comparison]) -> dict[str, Any]:
    """supported (every difference significantly > 0), contradicted (one significantly < 0), else not supported."""
    missing = [f"{a} − {b}" for a, b in needed if f"{a} − {b}" not in found]
    if missing:
        return {
            "claim": claim,
            "verdict": "not tested",
            "detail": f"needs {', '.join(missing)} (runs with shared seeds)",
        }
    comps = [found[f"{a} − {b}"] for a, b in needed]
    worse = [c for c in comps if c.test.significant and c.test.mean_diff < 0]
    if worse:
        word = "contradicted"
    elif all(c.test.significant and c.test.mean_diff > 0 for c in comps):
        word = "supported"
    else:
        n = min(c.test.n for c in comps)
        word = f"not supported at this sample size ({n} seed{'s' if n != 1 else ''})"
    return {"claim": claim, "verdict": word, "detail": "; ".join(c.describe() for c in comps)}


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
        }


def study_markdown(study: Study) -> str:
    """The study as Markdown: table, paired differences, per-class differences, verdicts."""
    out = ["## Results by config\n", to_markdown(study.rows)]
    if study.comparisons:
        out += [
            "\n## Paired differences (test accuracy, points)\n",
            "| difference | mean | 95% CI | p | seeds |",
            "|---|---:|---:|---:|---:|",
        ]
        out += [_diff_row(c.name, c) for c in study.comparisons]
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
    out += ["\n## Verdicts on the seed's claims\n"]
    out += [f"- **{v['claim']}**: {v['verdict']}. {v['detail']}" for v in study.verdicts]
    return "\n".join(out) + "\n"


def _diff_row(label: str, c: Comparison) -> str:
    t = c.test
    ci = "—" if t.n < 2 else f"[{100 * t.ci_low:+.2f}, {100 * t.ci_high:+.2f}]"
    return f"| {label} | {100 * t.mean_diff:+.2f} | {ci} | {_p(t.p_value)} | {t.n} |"
