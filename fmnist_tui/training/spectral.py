"""Large-kernel convolutions computed in the frequency domain, for fp32 training on CPUs.

A k×k convolution's arithmetic grows with k² (the notebook's conv2 at 7×7: 19.7 M multiply-accumulates an
image), and fp32 on a CPU without bf16 already runs it near the core's peak, so only less arithmetic makes it
faster. In the frequency domain the convolution is one complex product per frequency (17×9 of them for a 14×14
map): 8× fewer multiply-accumulates for 7×7 (bench/spectral_conv.py times both forms).

The discrete Fourier transforms are small dense matrices (an FFT library's per-call cost dominates at 17
points), applied as matmuls on a batch-last layout so each is one large GEMM; autograd derives the backward
pass. The result is the same convolution (float rounding: ~1e-6 relative), the parameters are nn.Conv2d's,
so checkpoints, hooks and ONNX export see an ordinary convolution: `spectral` only changes how it is computed.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import nn


def spectral_is_faster(kernel: int, in_channels: int) -> bool:
    """Whether the spectral path beats oneDNN's direct convolution (fp32 on a CPU; measured by
    bench/spectral_conv.py): for 5×5 and 7×7 layers fed by several channels, where it saves the most arithmetic;
    not for 3×3, nor for a first layer on the one-channel image: its few products per frequency cannot pay for the
    28×28 transforms, and its direct form computes no input gradient."""
    return kernel >= 5 and in_channels > 1


@lru_cache(maxsize=16)
def _bases(
    height: int, width: int, kernel: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The DFT matrices for an H×W map and a k×k kernel ('same' padding p = k//2), on circular lengths
    L = H + p and M = W + p: long enough that no wrapped-around term lands on an output position.

    along_w (V, 2, max(W, k)): real rows → half spectrum (V = M//2+1 frequencies), [re, im]
    along_h (L, 2, 2, max(H, k)): complex columns → full spectrum, [out re/im, in re/im]
    back_h (H, 2, L, 2): inverse along the columns, only the H output rows (offset p)
    back_w (W, V, 2): half spectrum → the W real output columns (offset p), with the inverse's 1/(L·M)
    """
    pad = kernel // 2
    length_h, length_w = height + pad, width + pad
    n_freq = length_w // 2 + 1

    def angle(rows: torch.Tensor, cols: torch.Tensor, length: int) -> torch.Tensor:
        return 2 * math.pi * torch.outer(rows, cols) / length

    def ar(n: int, offset: int = 0) -> torch.Tensor:
        return torch.arange(n, dtype=torch.float64) + offset

    t = angle(ar(n_freq), ar(max(width, kernel)), length_w)  # the input's columns, and the kernel's
    along_w = torch.stack([t.cos(), -t.sin()], 1)  # e^{-it}
    t = angle(ar(length_h), ar(max(height, kernel)), length_h)
    c, s = t.cos(), t.sin()  # (c - is)(R + iI) = (cR + sI) + i(cI - sR)
    along_h = torch.stack([torch.stack([c, s], 1), torch.stack([-s, c], 1)], 1)
    t = angle(ar(height, pad), ar(length_h), length_h)
    c, s = t.cos(), t.sin()  # (c + is)(R + iI) = (cR - sI) + i(sR + cI)
    back_h = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], 1)
    weight = torch.full((n_freq,), 2.0, dtype=torch.float64)  # each frequency stands for itself and its mirror
    weight[0] = 1
    if length_w % 2 == 0:
        weight[-1] = 1  # the Nyquist frequency has no mirror
    t = angle(ar(width, pad), ar(n_freq), length_w)
    back_w = torch.stack([weight * t.cos(), -weight * t.sin()], -1) / (length_h * length_w)
    return tuple(m.to(device=device, dtype=dtype) for m in (along_w, along_h, back_h, back_w))  # type: ignore[return-value]


def spectral_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """F.conv2d(x, weight, bias, padding=k//2) for an odd k, stride 1: x [N,C,H,W] → [N,O,H,W] (channels_last)."""
    n, c, h, w = x.shape
    o, _, k, _ = weight.shape
    along_w, along_h, back_h, back_w = _bases(h, w, k, x.dtype, x.device)
    length, n_freq = along_h.shape[0], along_w.shape[0]
    f = n_freq * length
    # forward transforms of the input, batch last: (w, h, n·c) → (v, [re/im, h], n·c) → (v, [u, re/im], n·c)
    spec = along_w[..., :w].reshape(2 * n_freq, w) @ x.permute(3, 2, 0, 1).reshape(w, h * n * c)
    spec = torch.matmul(along_h[..., :h].reshape(2 * length, 2 * h), spec.view(n_freq, 2 * h, n * c))
    spec = spec.view(f, 2, n, c).transpose(1, 2).reshape(f, n, 2 * c)  # per frequency: (n, [re/im, c])
    # the kernel's spectrum (cross-correlation: the flipped kernel's), as the real 2×2 block of each complex weight
    kern = torch.einsum("vbj,ocij->vbcoi", along_w[:, :, :k], weight.flip(-1, -2))
    kern = torch.einsum("uabi,vbcoi->vuaco", along_h[..., :k], kern)  # (v, u, re/im, c, o)
    re, im = kern[:, :, 0], kern[:, :, 1]
    block = torch.stack([torch.stack([re, im], 3), torch.stack([-im, re], 3)], 2)  # (v, u, in re/im, c, out re/im, o)
    out = torch.bmm(spec, block.reshape(f, 2 * c, 2 * o))  # the convolution: one product per frequency
    # inverse transforms, batch last: (v, [u, re/im], n·o) → (h, [v, re/im], n·o) → (h, w, n, o)
    out = out.view(f, n, 2, o).transpose(1, 2).reshape(n_freq, 2 * length, n * o)
    out = torch.matmul(back_h.reshape(2 * h, 2 * length), out).view(n_freq, h, 2, n * o)
    out = torch.matmul(back_w.reshape(w, 2 * n_freq), out.transpose(0, 1).reshape(h, 2 * n_freq, n * o))
    out = out.view(h, w, n, o).permute(2, 0, 1, 3)  # (n, h, w, o): channels_last once made contiguous
    out = out + bias if bias is not None else out.contiguous()
    return out.permute(0, 3, 1, 2)


class SpectralConv2d(nn.Conv2d):
    """An nn.Conv2d (same parameters, state dict and ONNX graph) that computes itself in the frequency domain
    while `spectral` is set and its shape allows it: odd kernel, 'same' padding, stride 1, no groups."""

    spectral = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spectral and x.dtype == torch.float32 and not torch.is_autocast_enabled(x.device.type):
            return spectral_conv2d(x, self.weight, self.bias)
        return super().forward(x)

    def can_go_spectral(self) -> bool:
        """Stride 1, 'same' padding, an odd square kernel, no groups or dilation: what spectral_conv2d computes."""
        k = self.kernel_size[0]
        return (
            self.kernel_size == (k, k)
            and k % 2 == 1
            and self.stride == (1, 1)
            and self.padding == (k // 2, k // 2)
            and self.dilation == (1, 1)
            and self.groups == 1
            and self.padding_mode == "zeros"
        )


def use_spectral(model: nn.Module, device: torch.device, bf16: bool) -> list[str]:
    """For fp32 training on a CPU (with bf16 the direct form is fast; on a GPU cuDNN is), switch on the spectral
    path in `model`'s convolutions where it is faster (`spectral_is_faster`); the names of those layers."""
    if device.type != "cpu" or bf16:
        return []
    chosen = []
    for name, module in model.named_modules():
        if (
            isinstance(module, SpectralConv2d)
            and module.can_go_spectral()
            and spectral_is_faster(module.kernel_size[0], module.in_channels)
        ):
            module.spectral = True
            chosen.append(name)
    return chosen
