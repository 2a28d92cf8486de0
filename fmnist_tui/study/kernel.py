"""The kernel-size study: mlp and cnn k=3/5/7 over seeds, the notebook's claims about them and their verdicts.

Its configs' labels come from the registry; its claims are the notebook's own words (3×3 beats 5×5, ...).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

from ..core import registry
from ..core.data import CLASSES
from .analysis import Comparison, Study, compare, verdict
from .results import Group, study_groups

#: the study's architectures and the option it varies
ARCHS = ("mlp", "cnn")
KERNELS: tuple[int, ...] = registry.get("cnn").values("kernel")
MLP = registry.label("mlp", {})


def cnn(kernel: int) -> str:
    """The label of the CNN with this kernel (`cnn-k3`)."""
    return registry.label("cnn", {"kernel": kernel})


#: the paired differences the study reports (a − b), in this order: kernels against each other, then each
#: against the MLP
PAIRS: tuple[tuple[str, str], ...] = (
    *((cnn(a), cnn(b)) for a, b in combinations(KERNELS, 2)),
    *((cnn(k), MLP) for k in KERNELS),
)
#: the notebook's claims, each as the differences that must all be positive for it to hold
CLAIMS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("3×3 beats 5×5", ((cnn(3), cnn(5)),)),
    ("5×5 beats 7×7", ((cnn(5), cnn(7)),)),
    ("3×3 beats 7×7", ((cnn(3), cnn(7)),)),
    ("every CNN beats the MLP", tuple((cnn(k), MLP) for k in KERNELS)),
)
#: the classes the notebook says convolution helps
HARD_CLASSES = ("Shirt", "Coat", "Pullover", "T-shirt/top")


def analyse(groups: list[Group], latency_ms: dict[str, float | None] | None = None) -> Study:
    """Table rows, paired comparisons, CNN-vs-MLP per-class differences and the claims' verdicts."""
    chosen = study_groups(groups)
    rows = [{**g.row(), "latency_ms": (latency_ms or {}).get(g.label)} for g in chosen.values()]
    comps = [c for a, b in PAIRS if a in chosen and b in chosen for c in [compare(chosen[a], chosen[b])] if c]
    found = {c.name: c for c in comps}
    verdicts = [verdict(claim, needed, found) for claim, needed in CLAIMS]
    first_cnn = next((cnn(k) for k in KERNELS if cnn(k) in chosen), None)
    pair, per_class = None, []
    if first_cnn and MLP in chosen and _has_per_class(chosen[first_cnn]) and _has_per_class(chosen[MLP]):
        pair = (first_cnn, MLP)
        per_class = [c for i in range(len(CLASSES)) for c in [compare(chosen[first_cnn], chosen[MLP], cls=i)] if c]
        verdicts.append(_per_class_verdict(pair, per_class))
    return Study(rows, comps, per_class, verdicts, pair, chosen, HARD_CLASSES)


def _has_per_class(g: Group) -> bool:
    return all(len(r.summary.get("per_class", [])) == len(CLASSES) for r in g.records)


def _per_class_verdict(pair: tuple[str, str], per_class: list[Comparison]) -> dict[str, Any]:
    """Convolution helps Shirt / Coat / Pullover / T-shirt: each of their recall gains significantly > 0."""
    claim = f"convolution helps {' / '.join(HARD_CLASSES)} ({pair[0]} vs {pair[1]})"
    hard = {CLASSES[i]: c for i, c in enumerate(per_class) if CLASSES[i] in HARD_CLASSES}
    helped = [name for name, c in hard.items() if c.test.significant and c.test.mean_diff > 0]
    hurt = [name for name, c in hard.items() if c.test.significant and c.test.mean_diff < 0]
    if hurt:
        word = f"contradicted for {', '.join(hurt)}"
    elif len(helped) == len(HARD_CLASSES):
        word = "supported"
    elif helped:
        word = f"partly supported (significant for {', '.join(helped)} only)"
    else:
        word = f"not supported at this sample size ({min(c.test.n for c in hard.values())} seeds)"
    ranked = sorted(range(len(per_class)), key=lambda i: -per_class[i].test.mean_diff)
    top = ", ".join(f"{CLASSES[i]} {100 * per_class[i].test.mean_diff:+.1f}" for i in ranked[:4])
    return {"claim": claim, "verdict": word, "detail": f"largest recall gains (points): {top}"}
