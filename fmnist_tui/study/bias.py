"""The inductive-bias studies' configs: the parameter-matched MLP (hidden widths computed, not typed), the
locality study's networks on natural and permuted pixels, and the data study's nested training-set sizes."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from ..core import registry

#: nested, stratified training subsets of the data study (`--train-size`), smallest first
SIZES = (500, 1_000, 2_000, 5_000, 10_000, 50_000)


def mlp_params(hidden: Sequence[int]) -> int:
    """Parameters of `mlp --hidden` (784 → hidden → 10, each layer weights + biases)."""
    widths = [784, *hidden, 10]
    return sum(a * b + b for a, b in pairwise(widths))


def cnn_params(kernel: int = 3) -> int:
    """Parameters of the notebook's CNN (conv 1→32, pool, conv 32→64, pool, 3136 → 128 → 10), as models.CNN
    builds it (tests check the two against each other)."""
    conv1 = 32 * kernel * kernel + 32
    conv2 = 64 * 32 * kernel * kernel + 64
    return conv1 + conv2 + 64 * 7 * 7 * 128 + 128 + 128 * 10 + 10


def lcn_params(kernel: int = 3) -> int:
    """Parameters of the LCN: the CNN's layers with a filter and a bias at every output position."""
    layer1 = 28 * 28 * (32 * kernel * kernel + 32)
    layer2 = 14 * 14 * (64 * 32 * kernel * kernel + 64)
    return layer1 + layer2 + 64 * 7 * 7 * 128 + 128 + 128 * 10 + 10


def matched_gap() -> float:
    """How far the matched MLP's parameter count is from the CNN k3's, as a fraction of the latter."""
    return abs(mlp_params(MATCHED) - cnn_params(3)) / cnn_params(3)


def matched_hidden(target: int, ratio: int = 2) -> tuple[int, int]:
    """The notebook's MLP shape (two hidden layers, the first `ratio` × the second) with the parameter count
    nearest to `target`: for the CNN k3's 421,642, (422, 211) with 422,643 (+0.24%)."""
    option = registry.get("mlp").option("hidden")
    limit = int(option.limits[1]) if option and option.limits else 4096
    shapes = [(ratio * h, h) for h in range(1, limit // ratio + 1)]
    return min(shapes, key=lambda s: abs(mlp_params(s) - target))


def mlp(**options: Any) -> str:
    return registry.label("mlp", options)


def cnn(**options: Any) -> str:
    return registry.label("cnn", {"kernel": 3, **options})


def lcn(**options: Any) -> str:
    return registry.label("lcn", {"kernel": 3, **options})


MATCHED = matched_hidden(cnn_params(3))
MLP, MLP_PERM, CNN, CNN_PERM, LCN = mlp(), mlp(permute=True), cnn(), cnn(permute=True), lcn()
MLP_MATCHED = mlp(hidden=MATCHED)
#: the locality study: the notebook's MLP and CNN on natural and permuted pixels, the LCN, the matched MLP
LOCALITY: tuple[tuple[str, dict[str, Any]], ...] = (
    ("mlp", {}),
    ("mlp", {"permute": True}),
    ("cnn", {"kernel": 3}),
    ("cnn", {"kernel": 3, "permute": True}),
    ("lcn", {"kernel": 3}),
    ("mlp", {"hidden": MATCHED}),
)
#: the data study: MLP, CNN k3 and LCN at every size
DATA_ARCHS: tuple[tuple[str, dict[str, Any]], ...] = (("mlp", {}), ("cnn", {"kernel": 3}), ("lcn", {"kernel": 3}))
DATA: tuple[tuple[str, dict[str, Any]], ...] = tuple(
    (arch, {**options, "train_size": n}) for arch, options in DATA_ARCHS for n in SIZES
)


def data_labels(sizes: Sequence[int]) -> tuple[str, ...]:
    """The data study's labels at these sizes (a preset that trains some of them)."""
    return tuple(registry.label(arch, {**options, "train_size": n}) for arch, options in DATA_ARCHS for n in sizes)
