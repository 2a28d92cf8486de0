"""Convolutions in the frequency domain: the same numbers as F.conv2d (values and gradients), the same
parameters and state dict as nn.Conv2d, chosen by the trainer only for fp32 CPU training of large kernels."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fmnist_tui.core.config import TrainConfig
from fmnist_tui.training.models import create_model
from fmnist_tui.training.spectral import SpectralConv2d, spectral_conv2d, spectral_is_faster, use_spectral
from fmnist_tui.training.trainer import train

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("n", "c", "o", "h", "w", "k", "bias", "channels_last"),
    [
        (4, 32, 64, 14, 14, 7, True, True),  # the notebook's conv2 at 7×7, in the trainer's layout
        (3, 5, 6, 14, 14, 5, True, False),
        (2, 3, 4, 9, 12, 3, False, True),  # odd and unequal sides (odd and even circular lengths), no bias
        (2, 1, 8, 28, 28, 7, True, False),  # a first layer
        (1, 2, 3, 4, 4, 7, True, False),  # a kernel larger than the map
    ],
)
def test_the_same_convolution_values_and_gradients(
    n: int, c: int, o: int, h: int, w: int, k: int, bias: bool, channels_last: bool
) -> None:
    torch.manual_seed(0)
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(o, c, k, k, dtype=torch.float64, requires_grad=True)
    b = torch.randn(o, dtype=torch.float64, requires_grad=True) if bias else None
    x.requires_grad_()
    probe = torch.randn(n, o, h, w, dtype=torch.float64)  # a generic downstream gradient

    ref = F.conv2d(x, weight, b, padding=k // 2)
    got = spectral_conv2d(x, weight, b)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9)  # float64: exact up to rounding
    wanted = [t for t in (x, weight, b) if t is not None]
    grads_ref = torch.autograd.grad((ref * probe).sum(), wanted)
    grads_got = torch.autograd.grad((got * probe).sum(), wanted)
    for a, g in zip(grads_ref, grads_got, strict=True):
        torch.testing.assert_close(g, a, rtol=1e-9, atol=1e-9)


def test_float32_matches_to_rounding() -> None:
    torch.manual_seed(1)
    x, weight, b = torch.randn(8, 32, 14, 14), torch.randn(64, 32, 7, 7), torch.randn(64)
    ref = F.conv2d(x, weight, b, padding=3)
    assert float((spectral_conv2d(x, weight, b) - ref).abs().max() / ref.abs().max()) < 1e-5


def test_a_spectral_layer_is_an_ordinary_convolution_outside() -> None:
    torch.manual_seed(2)
    plain = create_model("cnn", {"kernel": 7})
    chosen = create_model("cnn", {"kernel": 7})
    chosen.load_state_dict(plain.state_dict())
    assert use_spectral(chosen, CPU, False) == ["conv2"]  # conv1 reads one channel: the direct form is faster there
    assert isinstance(chosen.conv2, nn.Conv2d) and chosen.conv2.spectral and not chosen.conv1.spectral
    assert chosen.state_dict().keys() == plain.state_dict().keys()
    x = torch.rand(5, 1, 28, 28)
    torch.testing.assert_close(chosen(x), plain(x), rtol=1e-4, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # under autocast the direct (bf16) form runs
        assert chosen.conv2(torch.rand(2, 32, 14, 14)).dtype == torch.bfloat16


def test_spectral_only_where_it_is_faster() -> None:
    chosen = [use_spectral(create_model("cnn", {"kernel": k}), CPU, False) for k in (3, 5, 7)]
    assert chosen == [[], ["conv2"], ["conv2"]]
    assert use_spectral(create_model("cnn", {"kernel": 5, "depth": 4, "pool": "stride"}), CPU, False) == []  # stride 2
    assert use_spectral(create_model("lcn", {"kernel": 7}), CPU, False) == []
    assert use_spectral(create_model("resnet"), CPU, False) == []
    # bf16 or a GPU: the direct form
    assert use_spectral(create_model("cnn", {"kernel": 7}), CPU, True) == []
    assert use_spectral(create_model("cnn", {"kernel": 7}), torch.device("cuda"), False) == []
    assert not spectral_is_faster(3, 64) and not spectral_is_faster(7, 1) and spectral_is_faster(5, 32)
    layer = SpectralConv2d(8, 8, 5, padding=1)  # not 'same' padding: what the spectral form computes
    assert not layer.can_go_spectral()


@pytest.mark.slow
@pytest.mark.parametrize(("precision", "expected"), [("fp32", ["conv2"]), ("bf16", [])])
def test_the_trainer_records_which_layers_went_spectral(
    tmp_path: Path, tiny_data: Path, precision: str, expected: list[str]
) -> None:
    cfg = TrainConfig.create(
        arch="cnn", kernel=5, epochs=1, batch_size=32, seed=0, out=str(tmp_path / "runs"),
        data_dir=str(tiny_data), threads=1, device="cpu", precision=precision,
    )  # fmt: skip
    run = train(cfg, lambda event: None).run
    assert run.config()["spectral_convs"] == expected and run.summary()["spectral_convs"] == expected
    assert run.config()["allocator"] == run.summary()["allocator"] == "kept"  # training.allocator
