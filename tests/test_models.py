"""The registry and the models it builds: the seed's architectures exactly, sizes and receptive fields
computed, and every spec checked against the model it builds."""

from __future__ import annotations

import pytest
import torch

from fmnist_tui.core import registry
from fmnist_tui.core.errors import ConfigError
from fmnist_tui.training.models import CNN, count_macs, count_params, create_model


@pytest.mark.parametrize(
    "arch,kernel,params", [("mlp", None, 235_146), ("cnn", 3, 421_642), ("cnn", 5, 454_922), ("cnn", 7, 504_842)]
)
def test_parameter_counts_match_the_seed(arch: str, kernel: int | None, params: int) -> None:
    model = create_model(arch, {"kernel": kernel})
    assert count_params(model) == params
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("k", [3, 5, 7])
def test_macs_and_feature_shapes(k: int) -> None:
    model = create_model("cnn", {"kernel": k})
    expected = 28 * 28 * 32 * k * k + 14 * 14 * 64 * 32 * k * k + 3136 * 128 + 128 * 10
    assert count_macs(model) == expected
    a1, a2 = model.features(torch.rand(2, 1, 28, 28))
    assert a1.shape == (2, 32, 28, 28) and a2.shape == (2, 64, 14, 14)
    assert registry.receptive_field("cnn", {"kernel": k}) == 3 * k - 1


def measured_receptive_field(model: torch.nn.Module) -> int:
    """Pixels per side that reach the centre unit of the last conv layer, found by backpropagation (over
    many random images: max-pooling passes each image's gradient through one pixel of its window)."""
    if not hasattr(model, "features"):
        return 28  # no convolutions: every unit sees the whole image
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0), requires_grad=True)
    _, last = model.eval().features(x)
    h, w = last.shape[-2:]
    last[:, :, h // 2, w // 2].sum().backward()
    rows = torch.nonzero(x.grad.abs().sum((0, 1, 3))).flatten()
    return int(rows.max() - rows.min() + 1)


@pytest.mark.parametrize("arch", sorted(registry.REGISTRY))
def test_every_spec_builds_its_model_and_states_its_receptive_field(arch: str) -> None:
    spec = registry.get(arch)
    grids = [{}] + [{o.name: v} for o in spec.options for v in o.choices]
    for options in grids:
        torch.manual_seed(0)
        model = spec.build(options)
        assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
        assert isinstance(model, CNN) == spec.has_convs
        assert spec.receptive_field(spec.resolve(options)) == measured_receptive_field(model)


def test_registry_errors_and_names() -> None:
    assert list(registry.REGISTRY)[:2] == ["mlp", "cnn"]
    assert registry.get("cnn").resolve({}) == {"kernel": 3} and isinstance(create_model("cnn"), CNN)
    for arch, options, field, match in (
        ("vit", {}, "arch", "valid: mlp, cnn"),
        ("cnn", {"kernel": 4}, "kernel", "valid: 3, 5, 7"),
        ("mlp", {"kernel": 3}, "kernel", "does not apply"),
    ):
        with pytest.raises(ConfigError, match=match) as caught:
            registry.get(arch).resolve(options)
        assert caught.value.field == field
    assert registry.run_name("cnn", {"kernel": 5}, 2) == "cnn-k5-s2" and registry.run_name("mlp", {}, 0) == "mlp-s0"
    assert (
        registry.label("cnn", {"kernel": 3}) == "cnn-k3" and registry.has_convs("cnn") and not registry.has_convs("mlp")
    )
