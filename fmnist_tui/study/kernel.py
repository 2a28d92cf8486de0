"""The kernel-size study's configs and claims: mlp and cnn k=3/5/7 over seeds, the notebook's claims about them.

Its configs' labels come from the registry; its claims are the notebook's own words (3×3 beats 5×5, ...). The
claim about the classes convolution helps most is one contrast (`analysis.CLASS_CONTRAST`), registered with the
study (studies.py); the per-class table beside it is descriptive.
"""

from __future__ import annotations

from itertools import combinations

from ..core import registry
from ..core.data import CLASSES
from .analysis import HARD_CLASSES

__all__ = ["ARCHS", "CLAIMS", "CLASSES", "HARD_CLASSES", "KERNELS", "MLP", "PAIRS", "cnn"]

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
