"""The registry and the models it builds: the notebook's architectures exactly, the CNN and MLP families around
them, sizes and receptive fields computed, and every spec checked against the model it builds."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch

from fmnist_tui.core import registry
from fmnist_tui.core.errors import ConfigError
from fmnist_tui.training.models import CNN, MaxBlurPool, count_macs, count_params, create_model


def conv(c_in: int, c_out: int, k: int) -> int:
    """Parameters of a k×k convolution with bias."""
    return c_in * c_out * k * k + c_out


def fc(n_in: int, n_out: int) -> int:
    """Parameters of a fully connected layer with bias."""
    return n_in * n_out + n_out


#: hand-computed parameter counts: the notebook's four, then members of the families
PARAMS: list[tuple[str, dict[str, Any], int]] = [
    ("mlp", {}, 235_146),
    ("cnn", {"kernel": 3}, 421_642),
    ("cnn", {"kernel": 5}, 454_922),
    ("cnn", {"kernel": 7}, 504_842),
    # the notebook's numbers, spelled out
    ("mlp", {"hidden": (256, 128)}, fc(784, 256) + fc(256, 128) + fc(128, 10)),
    ("cnn", {}, conv(1, 32, 3) + conv(32, 64, 3) + fc(64 * 7 * 7, 128) + fc(128, 10)),
    # one block: 28 → 14, flatten 32·14·14
    ("cnn", {"depth": 1}, conv(1, 32, 3) + fc(32 * 14 * 14, 128) + fc(128, 10)),  # 804,554
    # three and four blocks: 28 → 14 → 7 → 4 → 2 (an odd map rounds up)
    ("cnn", {"depth": 3}, conv(1, 32, 3) + conv(32, 64, 3) + conv(64, 128, 3) + fc(128 * 4 * 4, 128) + fc(128, 10)),
    (
        "cnn",
        {"depth": 4, "kernel": 5},
        conv(1, 32, 5) + conv(32, 64, 5) + conv(64, 128, 5) + conv(128, 128, 5) + fc(128 * 2 * 2, 128) + fc(128, 10),
    ),
    # global average pooling: the 64 channels straight into FC 10
    ("cnn", {"head": "gap"}, conv(1, 32, 3) + conv(32, 64, 3) + fc(64, 10)),  # 19,466
    (
        "cnn",
        {"pool": "none", "head": "gap", "depth": 3},
        conv(1, 32, 3) + conv(32, 64, 3) + conv(64, 128, 3) + fc(128, 10),
    ),
    # batch norm: the convs lose their biases, each BN has a scale and a shift per channel
    (
        "cnn",
        {"norm": "batch"},
        conv(1, 32, 3) - 32 + conv(32, 64, 3) - 64 + 2 * (32 + 64) + fc(3136, 128) + fc(128, 10),
    ),
    (
        "cnn",
        {"norm": "batch", "depth": 3, "head": "gap"},
        conv(1, 32, 3) + conv(32, 64, 3) + conv(64, 128, 3) + (32 + 64 + 128) + fc(128, 10),
    ),
    # avg-pool, the stride-2 conv and MaxBlurPool (a fixed filter) change no parameter count
    ("cnn", {"pool": "avg"}, 421_642),
    ("cnn", {"pool": "stride"}, 421_642),
    ("cnn", {"pool": "blur"}, 421_642),
    # the all-convolutional net: a learned 3×3 conv at stride 2 with the block's channels replaces each pool
    (
        "cnn",
        {"pool": "allconv"},
        conv(1, 32, 3) + conv(32, 32, 3) + conv(32, 64, 3) + conv(64, 64, 3) + fc(3136, 128) + fc(128, 10),
    ),  # 467,818
    # the GAP head as large as the flatten head: 64 → 5,371 → 10 against 3,136 → 128 → 10 (402,835 vs 402,826)
    ("cnn", {"head": "gapfc"}, conv(1, 32, 3) + conv(32, 64, 3) + fc(64, 5371) + fc(5371, 10)),
    ("mlp", {"hidden": (512,)}, fc(784, 512) + fc(512, 10)),  # 407,050
    ("mlp", {"hidden": "128,64,32"}, fc(784, 128) + fc(128, 64) + fc(64, 32) + fc(32, 10)),
]


@pytest.mark.parametrize("arch,options,params", PARAMS)
def test_parameter_counts_match_hand_computed(arch: str, options: dict[str, Any], params: int) -> None:
    model = create_model(arch, options)
    assert count_params(model) == params
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def conv_macs(c_in: int, c_out: int, k: int, size: int) -> int:
    """Multiply-accumulates of a k×k convolution producing size×size maps."""
    return size * size * c_out * c_in * k * k


@pytest.mark.parametrize(
    "options,macs",
    [
        *(
            ({"kernel": k}, conv_macs(1, 32, k, 28) + conv_macs(32, 64, k, 14) + 3136 * 128 + 128 * 10)
            for k in (3, 5, 7)
        ),
        ({"depth": 1}, conv_macs(1, 32, 3, 28) + 32 * 14 * 14 * 128 + 128 * 10),
        (
            {"depth": 3},
            conv_macs(1, 32, 3, 28) + conv_macs(32, 64, 3, 14) + conv_macs(64, 128, 3, 7) + 2048 * 128 + 1280,
        ),
        # the stride-2 conv computes every other position only: 14×14 and 7×7 outputs
        ({"pool": "stride"}, conv_macs(1, 32, 3, 14) + conv_macs(32, 64, 3, 7) + 3136 * 128 + 1280),
        ({"head": "gap"}, conv_macs(1, 32, 3, 28) + conv_macs(32, 64, 3, 14) + 64 * 10),
    ],
)
def test_macs(options: dict[str, Any], macs: int) -> None:
    assert count_macs(create_model("cnn", options)) == macs


@pytest.mark.parametrize(
    "options,shapes",
    [
        ({"kernel": 5}, [(32, 28, 28), (64, 14, 14)]),  # the notebook's conv1 and conv2
        ({"depth": 1}, [(32, 28, 28)]),
        ({"depth": 4}, [(32, 28, 28), (64, 14, 14), (128, 7, 7), (128, 4, 4)]),
        ({"pool": "stride", "depth": 3}, [(32, 14, 14), (64, 7, 7), (128, 4, 4)]),
        ({"pool": "none", "head": "gap"}, [(32, 28, 28), (64, 28, 28)]),
        ({"pool": "blur", "depth": 4}, [(32, 28, 28), (64, 14, 14), (128, 7, 7), (128, 4, 4)]),
        ({"pool": "allconv", "depth": 4}, [(32, 28, 28), (64, 14, 14), (128, 7, 7), (128, 4, 4)]),
    ],
)
def test_feature_shapes(options: dict[str, Any], shapes: list[tuple[int, int, int]]) -> None:
    maps = create_model("cnn", options).features(torch.rand(2, 1, 28, 28))
    assert [tuple(m.shape) for m in maps] == [(2, *s) for s in shapes]


def test_the_gapfc_head_matches_the_flatten_heads_size() -> None:
    """At every depth, the gapfc head's parameters are within one hidden unit's worth of the flatten head's."""
    for depth in (1, 2, 3, 4):
        flatten, gapfc = (create_model("cnn", {"depth": depth, "head": h}).head for h in ("flatten", "gapfc"))
        channels = registry.CNN_CHANNELS[depth - 1]
        assert abs(count_params(gapfc) - count_params(flatten)) <= (channels + 11) / 2
    assert registry.gapfc_hidden(64, 64 * 7 * 7) == 5371


def test_max_blur_pool_by_hand() -> None:
    """x = 0..15 on a 4×4 map: the dense 2×2 max (edge repeated) is M[i, j] = 4·min(i+1, 3) + min(j+1, 3), a sum of
    a row and a column term; the [1, 2, 1]/4 blur (reflect padding) of each at positions 0 and 2 gives rows 6, 11
    and columns 1.5, 2.75."""
    out = MaxBlurPool(1)(torch.arange(16.0).reshape(1, 1, 4, 4))
    torch.testing.assert_close(out, torch.tensor([[[[7.5, 8.75], [12.5, 13.75]]]]))
    constant = MaxBlurPool(3)(torch.full((2, 3, 7, 7), 0.25))  # a flat map stays flat; odd sizes round up
    torch.testing.assert_close(constant, torch.full((2, 3, 4, 4), 0.25))
    assert not dict(MaxBlurPool(3).state_dict())  # the filter is not a weight


def test_the_seeds_state_dict_keys_are_kept() -> None:
    """Existing run folders' best.safetensors load into the notebook's configurations."""
    assert sorted(create_model("cnn").state_dict()) == [
        f"{layer}.{p}" for layer in ("conv1", "conv2", "head.1", "head.3") for p in ("bias", "weight")
    ]
    assert sorted(create_model("mlp").state_dict()) == [f"net.{i}.{p}" for i in (1, 3, 5) for p in ("bias", "weight")]


def expected_window(layers: list[tuple[int, int]], unit: int) -> int:
    """Rows of a 28-row image that reach `unit` of the last layer of a (kernel, stride) chain: the window
    traced back through each layer (convs are odd-sized with padding k//2, pools 2×2 without), clipped to
    the image. Where it fits, this is the spec's receptive field."""
    low, high = unit, unit
    for kernel, stride in reversed(layers):
        pad = kernel // 2 if kernel % 2 else 0
        low, high = low * stride - pad, high * stride - pad + kernel - 1
    return min(high, 27) - max(low, 0) + 1


def measured_receptive_field(model: torch.nn.Module, images: int = 64) -> tuple[int, int]:
    """Rows of the image that reach the centre unit of the last conv layer, found by backpropagation (over
    many random images: max-pooling passes each image's gradient through one pixel of its window), and
    that unit's row."""
    if not hasattr(model, "features"):
        return 28, 0  # no convolutions: every unit sees the whole image
    x = torch.rand(images, 1, 28, 28, generator=torch.Generator().manual_seed(0), requires_grad=True)
    last = model.eval().features(x)[-1]
    h, w = last.shape[-2:]
    last[:, :, h // 2, w // 2].sum().backward()
    assert x.grad is not None
    rows = torch.nonzero(x.grad.abs().sum((0, 1, 3))).flatten()
    return int(rows.max() - rows.min() + 1), h // 2


def valid_grid(spec: registry.ArchSpec, values: dict[str, tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Every combination of the listed option values that the spec's rules allow."""
    combos = []
    for combo in itertools.product(*values.values()):
        options = dict(zip(values, combo, strict=True))
        try:
            spec.resolve(options)
        except ConfigError:
            continue
        combos.append(options)
    return combos


def check_receptive_field(spec: registry.ArchSpec, options: dict[str, Any]) -> None:
    torch.manual_seed(0)
    model = spec.build(options)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert callable(getattr(model, "features", None)) == spec.has_convs
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        torch.nn.init.ones_(bn.weight)  # a fresh ResNet's blocks start as identities (zero BN scale): not trained ones
    resolved = spec.resolve(options)
    stated = spec.receptive_field(resolved)
    measured, unit = measured_receptive_field(model, 64 if resolved.get("pool") == "max" else 2)
    if spec.name == "cnn":
        assert measured == expected_window(registry.cnn_layers(resolved), unit), options
        assert stated == registry.conv_pool_rf(registry.cnn_layers(resolved))
    if stated <= 26:  # the window fits inside the image: measured exactly (beyond, the image edge clips it)
        assert stated == measured, options


@pytest.mark.parametrize("arch", sorted(registry.REGISTRY))
def test_every_spec_builds_its_model_and_states_its_receptive_field(arch: str) -> None:
    """Each option value on its own (with what the rules require), against backpropagation."""
    spec = registry.get(arch)
    grid: list[dict[str, Any]] = [{}]
    for option in spec.options:
        for value in option.choices:
            options = {option.name: value}
            options.update({r.name: r.values[0] for r in spec.rules if r.when == option.name and r.equals == value})
            grid.append(options)
    for options in grid:
        check_receptive_field(spec, options)


@pytest.mark.slow
def test_receptive_field_over_the_whole_cnn_family() -> None:
    """Every depth × pooling × head at k=3, and every depth × pooling at k=5 and 7 (flatten head)."""
    spec = registry.get("cnn")
    grid = valid_grid(spec, {"depth": (1, 2, 3, 4), "pool": registry.POOLS, "head": ("flatten", "gap")})
    grid += valid_grid(spec, {"kernel": (5, 7), "depth": (1, 2, 3, 4), "pool": ("max", "avg", "stride")})
    for options in grid:
        check_receptive_field(spec, options)


def test_receptive_fields_stated() -> None:
    rf = registry.receptive_field
    assert [rf("cnn", {"kernel": k}) for k in (3, 5, 7)] == [8, 14, 20]  # 3k − 1, the notebook's
    assert rf("cnn", {"depth": 1}) == 3 and rf("cnn", {"depth": 3}) == 18 and rf("cnn", {"depth": 4}) == 38
    assert rf("cnn", {"pool": "stride"}) == 7 and rf("cnn", {"pool": "none", "head": "gap"}) == 5
    assert rf("mlp", {"hidden": (512,)}) == 28


def test_registry_errors_and_names() -> None:
    assert list(registry.REGISTRY)[:2] == ["mlp", "cnn"]
    assert registry.get("cnn").resolve({}) == {
        "kernel": 3,
        "depth": 2,
        "pool": "max",
        "head": "flatten",
        "norm": "none",
    }
    assert registry.get("mlp").resolve({}) == {"hidden": (256, 128)}
    assert isinstance(create_model("cnn"), CNN)
    for arch, options, field, match in (
        ("vit", {}, "arch", "valid: mlp, cnn"),
        ("cnn", {"kernel": 4}, "kernel", "valid: 3, 5, 7"),
        ("cnn", {"depth": 5}, "depth", "valid: 1, 2, 3, 4"),
        ("cnn", {"pool": "min"}, "pool", "valid: max, avg, stride, blur, allconv, none"),
        ("cnn", {"pool": "none"}, "head", "head flatten does not work with pool none .*valid with pool none: gap"),
        ("mlp", {"kernel": 3}, "kernel", "does not apply"),
        ("mlp", {"depth": 3}, "depth", "does not apply"),
        ("mlp", {"hidden": "256,x"}, "hidden", "'x' is not an integer; give 1 to 4 comma-separated integers 1–4096"),
        ("mlp", {"hidden": "0"}, "hidden", "0 is out of range"),
        ("mlp", {"hidden": "1,2,3,4,5"}, "hidden", "not a list of 1 to 4 values"),
    ):
        with pytest.raises(ConfigError, match=match) as caught:
            registry.get(arch).resolve(options)
        assert caught.value.field == field
    assert registry.run_name("cnn", {"kernel": 5}, 2) == "cnn-k5-s2" and registry.run_name("mlp", {}, 0) == "mlp-s0"
    assert (
        registry.label("cnn", {"kernel": 3}) == "cnn-k3" and registry.has_convs("cnn") and not registry.has_convs("mlp")
    )


def test_run_names_leave_defaults_out() -> None:
    name = registry.run_name
    assert name("cnn", {"kernel": 3, "depth": 2, "pool": "max", "head": "flatten"}, 0) == "cnn-k3-s0"
    assert name("cnn", {"kernel": 3, "depth": 3, "pool": "avg"}, 0) == "cnn-k3-d3-avg-s0"
    assert name("cnn", {"pool": "none", "head": "gap"}, 1) == "cnn-k3-none-gap-s1"
    assert name("cnn", {"kernel": 7, "pool": "stride"}, 2) == "cnn-k7-stride-s2"
    assert name("mlp", {"hidden": [256, 128]}, 0) == "mlp-s0"  # a list from config.json is the default tuple
    assert name("mlp", {"hidden": "512"}, 0) == "mlp-h512-s0" and name("mlp", {"hidden": (512, 256)}, 0) == (
        "mlp-h512x256-s0"
    )
    hidden = registry.get("mlp").option("hidden")
    assert hidden is not None and hidden.text((512, 256)) == "512,256" and hidden.check(" 64 , 32", "mlp") == (64, 32)
