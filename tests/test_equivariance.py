"""The equivariance measure on models whose answers are known: a convolution is exactly equivariant away from the
borders, a 2×2 pool only for even shifts, and a layer that depends on position (or a locally connected one) is not;
every network with feature maps (cnn family, lcn, resnet, a --tta run's) is measured as it computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fmnist_tui.core.errors import UsageError
from fmnist_tui.training.equivariance import measure, stages
from fmnist_tui.training.models import FlipTTA, create_model
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


def _randomise_batch_norm(model: nn.Module) -> nn.Module:
    """Running statistics away from (0, 1), so a stage that skipped a batch norm would show."""
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize(
    "arch,options",
    [
        ("cnn", {}),
        ("cnn", {"norm": "batch", "pool": "stride", "head": "gap"}),
        ("lcn", {}),
        ("resnet", {"width": 8, "blocks": 1}),
    ],
)
def test_the_stages_are_the_models_own_computation(arch: str, options: dict) -> None:
    torch.manual_seed(0)
    model = _randomise_batch_norm(create_model(arch, options))
    x = images()[:4].unsqueeze(1).float() / 255
    with torch.no_grad():
        assert torch.allclose(stages(model, x)[-1].value, model(x), atol=1e-5)
        assert torch.allclose(stages(FlipTTA(model), x)[-1].value, model(x), atol=1e-5)  # a --tta run's network


def test_the_lcn_has_the_cnns_windows_but_not_its_equivariance() -> None:
    torch.manual_seed(0)
    lcn = create_model("lcn")
    rows = by_stage(lcn)
    cnn_rows = by_stage(create_model("cnn"))
    assert list(rows) == list(cnn_rows)
    assert [(r["stride"], r["receptive_field"]) for r in rows.values()] == [
        (r["stride"], r["receptive_field"]) for r in cnn_rows.values()
    ]
    assert rows["conv1"]["equivariance_error"]["1"] > 0.1  # a filter of its own at every position
    conv = nn.Conv2d(1, 32, 3, padding=1)
    lcn.conv1.tie_to(conv)  # the weights shared again: equivariant again
    assert by_stage(lcn)["conv1"]["equivariance_error"]["1"] < 1e-5


def test_the_resnets_stages_and_their_equivariance() -> None:
    torch.manual_seed(0)
    rows = by_stage(_randomise_batch_norm(create_model("resnet", {"width": 8, "blocks": 2})))
    assert list(rows) == ["stem", "stage1", "stage2", "stage3", "gap", "logits"]
    assert [rows[s]["stride"] for s in rows] == [1, 1, 2, 4, 0, 0]
    assert [rows[s]["receptive_field"] for s in ("stem", "stage1", "stage2", "stage3")] == [3, 11, 25, 53]
    assert rows["stem"]["equivariance_error"]["1"] < 1e-5 and rows["stage1"]["equivariance_error"]["1"] < 1e-5
    assert rows["stage2"]["equivariance_error"]["1"] is None  # half a pixel of a stride-2 map
    assert rows["logits"]["change"]["1"] > 0
