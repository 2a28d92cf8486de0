"""The equivariance measure on models whose answers are known: a convolution is exactly equivariant away from the
borders, a 2×2 pool only for even shifts, and a layer that depends on position is not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fmnist_tui.core.errors import UsageError
from fmnist_tui.training.equivariance import measure
from fmnist_tui.training.models import create_model
from tests.conftest import synthetic_images


def images() -> torch.Tensor:
    return torch.from_numpy(synthetic_images(np.repeat(np.arange(10), 2), seed=5))


def by_stage(model: nn.Module) -> dict[str, dict]:
    torch.manual_seed(0)
    return {row["stage"]: row for row in measure(model, images())}


def test_the_seeds_cnn_convolutions_are_equivariant_and_its_outputs_move() -> None:
    torch.manual_seed(0)
    rows = by_stage(create_model("cnn"))
    assert list(rows) == ["conv1", "pool1", "conv2", "pool2", "logits"]
    assert [rows[s]["stride"] for s in rows] == [1, 2, 2, 4, 0] and rows["conv2"]["receptive_field"] == 8
    conv1, pool1, conv2 = rows["conv1"], rows["pool1"], rows["conv2"]
    assert conv1["equivariance_error"]["1"] < 1e-6 and conv1["equivariance_error"]["2"] < 1e-6
    # a 1-pixel shift is half a pixel of a pooled map: no shift to compare with; 2 pixels are one
    assert pool1["equivariance_error"]["1"] is None and pool1["equivariance_error"]["2"] < 1e-6
    assert conv2["equivariance_error"]["1"] is None and conv2["equivariance_error"]["2"] < 1e-6
    assert rows["pool2"]["equivariance_error"] == {"1": None, "2": None}  # 4 px per map pixel
    for name in rows:  # yet every stage moves: equivariant is not invariant
        assert rows[name]["change"]["1"] > 0.05


def test_a_gap_head_moves_less_than_the_maps_it_averages() -> None:
    rows = by_stage(create_model("cnn", {"depth": 1, "pool": "none", "head": "gap"}))
    assert list(rows) == ["conv1", "gap", "logits"]
    assert rows["conv1"]["equivariance_error"]["1"] < 1e-6
    assert rows["gap"]["change"]["1"] < rows["conv1"]["change"]["1"] / 2


class Ramp(nn.Module):
    """Multiplies the image by a left-to-right ramp: what a pixel becomes depends on where it is."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.linspace(0.2, 1.8, x.shape[-1])


def test_a_position_dependent_layer_is_not_equivariant() -> None:
    torch.manual_seed(0)
    model = create_model("cnn")
    model.norm = Ramp()
    assert by_stage(model)["conv1"]["equivariance_error"]["1"] > 0.01


def test_the_mlp_has_no_stages_to_shift() -> None:
    with pytest.raises(UsageError, match="cnn family"):
        measure(create_model("mlp"), images())
