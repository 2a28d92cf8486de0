"""The model registry: the seed's architectures exactly, with computed sizes."""

from __future__ import annotations

import pytest
import torch

from fmnist_tui.core.errors import UsageError
from fmnist_tui.training.models import CNN, count_macs, count_params, create_model, receptive_field
from fmnist_tui.core.registry import ARCHS, check_arch, run_name


@pytest.mark.parametrize("arch,kernel,params", [("mlp", None, 235_146), ("cnn", 3, 421_642),
                                                ("cnn", 5, 454_922), ("cnn", 7, 504_842)])
def test_parameter_counts_match_the_seed(arch: str, kernel: int | None, params: int) -> None:
    model = create_model(arch, kernel)
    assert count_params(model) == params
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("k", [3, 5, 7])
def test_macs_and_feature_shapes(k: int) -> None:
    model = create_model("cnn", k)
    expected = 28 * 28 * 32 * k * k + 14 * 14 * 64 * 32 * k * k + 3136 * 128 + 128 * 10
    assert count_macs(model) == expected
    a1, a2 = model.features(torch.rand(2, 1, 28, 28))
    assert a1.shape == (2, 32, 28, 28) and a2.shape == (2, 64, 14, 14)
    assert receptive_field(model) == 3 * k - 1


def test_mlp_macs_and_registry_errors() -> None:
    assert count_macs(create_model("mlp")) == 784 * 256 + 256 * 128 + 128 * 10
    assert set(ARCHS) == {"mlp", "cnn"}
    assert check_arch("cnn", None) == 3 and isinstance(create_model("cnn"), CNN)
    for arch, kernel, match in (("vit", None, "valid: mlp, cnn"), ("cnn", 4, "valid: 3, 5, 7"),
                                ("mlp", 3, "does not apply")):
        with pytest.raises(UsageError, match=match):
            check_arch(arch, kernel)
    assert run_name("cnn", 5, 2) == "cnn-k5-s2" and run_name("mlp", None, 0) == "mlp-s0"
