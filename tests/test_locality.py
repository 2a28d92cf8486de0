"""The locality study's parts: the locally connected network (a convolution when its weights are tied), the
fixed pixel permutation (inside the model, so an exported permuted run takes natural images), and the MLP
whose parameter count matches the CNN's."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fmnist_tui.core import registry
from fmnist_tui.training.models import CNN, LocallyConnected2d, count_macs, count_params, create_model


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("channels", [(1, 4), (3, 5)])
def test_a_locally_connected_layer_with_tied_weights_is_a_convolution(kernel: int, channels: tuple[int, int]) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(*channels, kernel, padding=kernel // 2)
    local = LocallyConnected2d(*channels, kernel, size=9)
    x = torch.randn(2, channels[0], 9, 9)
    assert not torch.allclose(local(x), conv(x), atol=1e-3)  # untied: its own filter at every position
    torch.testing.assert_close(local.tie_to(conv)(x), conv(x), atol=1e-5, rtol=1e-5)


def test_the_lcn_with_tied_weights_is_the_seeds_cnn() -> None:
    torch.manual_seed(0)
    cnn, lcn = create_model("cnn", kernel=3), create_model("lcn", kernel=3)
    assert isinstance(cnn, CNN) and isinstance(lcn, CNN)
    for conv, local in zip(cnn.convs(), lcn.convs(), strict=True):
        assert isinstance(conv, nn.Conv2d) and isinstance(local, LocallyConnected2d)
        local.tie_to(conv)
    lcn.head.load_state_dict(cnn.head.state_dict())
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(lcn(x), cnn(x), atol=1e-4, rtol=1e-4)
    assert [tuple(m.shape) for m in lcn.features(x)] == [(4, 32, 28, 28), (4, 64, 14, 14)]


def test_lcn_parameters_and_macs_hand_computed() -> None:
    # each layer: positions × out × in × k² weights + positions × out biases; the head is the seed's
    layer1 = 28 * 28 * 32 * 1 * 9 + 28 * 28 * 32  # 250,880
    layer2 = 14 * 14 * 64 * 32 * 9 + 14 * 14 * 64  # 3,625,216
    head = 3136 * 128 + 128 + 128 * 10 + 10  # 402,826
    lcn, cnn = create_model("lcn"), create_model("cnn")
    assert count_params(lcn) == layer1 + layer2 + head == 4_278_922
    # the same multiplies as the convolution: locality is kept, only the sharing goes
    assert count_macs(lcn) == count_macs(cnn) == 28 * 28 * 32 * 9 + 14 * 14 * 64 * 32 * 9 + 3136 * 128 + 1280
    assert registry.run_name("lcn", {"kernel": 3}, 0) == "lcn-k3-s0"
    assert registry.receptive_field("lcn", {"kernel": 5}) == registry.receptive_field("cnn", {"kernel": 5}) == 14
