"""The models: the notebook's MLP and 2-conv CNN, the locally connected CNN, a small residual network, declared from
their hyperparameters, and their measured sizes.

The registry (core.registry) names the builders below; receptive fields are computed there, torch-free."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core import registry
from ..core.data import pixel_permutation
from .spectral import SpectralConv2d

#: Fashion-MNIST pixel statistics on [0,1] inputs; normalisation lives inside the model so that the
#: exported graph takes plain [0,1] images (shared/DESIGN.md, ONNX contract).
MEAN, STD = 0.2860, 0.3530


class Normalize(nn.Module):
    """The model's input stage: (x - mean) / std with constant buffers (not parameters: counts stay the notebook's),
    after moving the pixels by a fixed permutation when the run has one (`--permute`).

    The permutation lives here, the model's first step, so training (after augmentation), validation, test,
    feature maps and an exported graph all apply the same one, and the ONNX file still takes natural images.
    It is a non-persistent buffer: the state dict, and so the run folders' weights, are those of the unpermuted
    model."""

    mean: torch.Tensor
    std: torch.Tensor
    permutation: torch.Tensor | None

    def __init__(self, mean: float = MEAN, std: float = STD, permutation: np.ndarray | None = None) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean), persistent=False)
        self.register_buffer("std", torch.tensor(std), persistent=False)
        perm = None if permutation is None else torch.as_tensor(permutation, dtype=torch.long)
        self.register_buffer("permutation", perm, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.permutation is not None:  # [N,1,28,28]: pixel i of the output is pixel permutation[i] of x
            x = x.reshape(x.shape[0], -1)[:, self.permutation].reshape(x.shape)
        return (x - self.mean) / self.std


class MLP(nn.Module):
    """Flatten(784) → hidden widths with ReLU → 10; the notebook's (256, 128) has 235,146 parameters."""

    def __init__(self, hidden: Sequence[int] = (256, 128)) -> None:
        super().__init__()
        self.norm = Normalize()
        widths = [784, *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in pairwise(widths):
            layers += [nn.Linear(a, b), nn.ReLU()]
        # state-dict keys net.1 / net.3 / net.5 for the notebook's widths, as its run folders have them
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N,1,28,28] in [0,1]
        return self.net(self.norm(x))


#: images per batched product of a locally connected layer: a larger batch is run in parts of this size. The patches
#: of the 1,000 images a validation batch holds take 226 MB for the 32 → 64 channel layer at 14×14, far beyond the
#: caches; parts of 128 (the training batch) evaluate faster (measured by bench/lcn_speed.py)
LOCAL_CHUNK = 128


class LocallyConnected2d(nn.Module):
    """A k×k "convolution" whose filter and bias differ at every output position (stride 1, padding k//2):
    a convolution's locality without its weight sharing.

    It runs as one batched matrix product over the H·W positions: the input is laid out position-first
    ([H, W, N, C], a view of a channels_last map), its k² shifted slices are stacked into patches
    [H·W, N, k²·C] (plain slicing, which the ONNX exporter writes as Slice nodes), and each position's
    patch rows meet that position's [k²·C, out] filter. The output comes back channels_last, as a
    convolution's does in training. (An einsum over [N, C, k², H, W] patches, as this layer first did,
    computes the same numbers at half the speed: its patches and output were permuted copies, and the
    output's odd layout slowed the ReLU and pooling after it; `bench/lcn_speed.py`.) A batch larger than
    LOCAL_CHUNK runs in parts, except when compiled or exported (one graph for every batch size).
    With every position's weights set to one convolution's (`tie_to`), the output is that convolution's.
    Weight [H, W, out, in, k, k], bias [out, H, W] for an input of H×W = size×size.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, size: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size, self.size = in_channels, out_channels, kernel, size
        self.weight = nn.Parameter(torch.empty(size, size, out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.empty(out_channels, size, size))
        # nn.Conv2d's default initialisation at every position: uniform ±1/sqrt(fan_in)
        bound = 1 / (in_channels * kernel * kernel) ** 0.5
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, in, H, W]
        if not torch.compiler.is_compiling() and x.shape[0] > LOCAL_CHUNK:  # (compiled or exported: one graph)
            return torch.cat([self._product(part) for part in x.split(LOCAL_CHUNK)])
        return self._product(x)

    def _product(self, x: torch.Tensor) -> torch.Tensor:
        """The layer on one part: patches, the batched product, the channels_last output and the bias.
        (Called directly, not through the module, so a forward hook sees one call per batch, not one per part.)"""
        k, pad, h, w = self.kernel_size, self.kernel_size // 2, self.size, self.size
        n, c, o = x.shape[0], self.in_channels, self.out_channels
        padded = F.pad(x, (pad, pad, pad, pad)).permute(2, 3, 0, 1)  # [H+2p, W+2p, N, in]
        shifted = [padded[i : i + h, j : j + w] for i in range(k) for j in range(k)]
        patches = torch.stack(shifted, dim=3).reshape(h * w, n, k * k * c)  # [H·W, N, k²·in]
        weight = self.weight.flatten(4).transpose(3, 4).reshape(h * w, o, k * k * c)  # [H·W, out, k²·in]
        out = torch.matmul(patches, weight.transpose(1, 2))  # [H·W, N, out]
        out = out.transpose(0, 1).contiguous().view(n, h, w, o).permute(0, 3, 1, 2)  # [N, out, H, W], channels_last
        return out + self.bias

    @torch.no_grad()
    def tie_to(self, conv: nn.Conv2d) -> LocallyConnected2d:
        """Set every position's filter and bias to `conv`'s (weight sharing restored): then self(x) == conv(x)."""
        self.weight.copy_(conv.weight.expand(self.size, self.size, *conv.weight.shape))
        bias = conv.bias if conv.bias is not None else torch.zeros(self.out_channels)
        self.bias.copy_(bias[:, None, None].expand_as(self.bias))
        return self


class MaxBlurPool(nn.Module):
    """Anti-aliased max-pooling (Zhang 2019, "MaxBlurPool"): a 2×2 max at stride 1, then a 3×3 binomial low-pass
    filter ([1, 2, 1]ᵀ[1, 2, 1] / 16, reflect padding) per channel at stride 2. The max is taken densely and
    the map blurred before it is subsampled, so a one-pixel shift of the input changes the output less. A map
    of n pixels per side becomes ceil(n / 2), as with the max-pool. The filter is a fixed buffer (no parameters,
    not in the state dict)."""

    kernel: torch.Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (torch.outer(taps, taps) / 16).expand(channels, 1, 3, 3).clone(), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.pad(x, (0, 1, 0, 1), mode="replicate"), 2, stride=1)
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.kernel, stride=2, groups=x.shape[1])


def _downsample(pool: str, size: int, channels: int) -> nn.Module:
    """How a block halves its map (odd sizes round up, 7 → 4, as a stride-2 conv does, so no row is dropped):
    2×2 max or average pooling, MaxBlurPool, or the all-convolutional net's learned 3×3 conv at stride 2 → ReLU
    (Springenberg et al. 2015); nothing for `stride` (the block's conv itself strides) and `none`."""
    if pool == "max":
        return nn.MaxPool2d(2, ceil_mode=size % 2 == 1)
    if pool == "avg":
        return nn.AvgPool2d(2, ceil_mode=size % 2 == 1)
    if pool == "blur":
        return MaxBlurPool(channels)
    if pool == "allconv":
        return nn.Sequential(nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU())
    return nn.Identity()


class CNN(nn.Module):
    """`depth` blocks of k×k conv (padding k//2) [→ batch norm] → ReLU → downsample, then a head.

    The defaults are the notebook's network: Conv(1→32,k) → pool → Conv(32→64,k) → pool → 3136 → 128 → 10
    (421,642 parameters for k=3). Convs are named conv1..conv4 and the head `head`, so the notebook's
    configuration keeps the state-dict keys of existing run folders (conv1.*, conv2.*, head.1.*, head.3.*).
    Maps per block for 28×28 inputs: 28 → 14 → 7 → 4 → 2 (no downsampling with pool=none).
    """

    def __init__(
        self,
        kernel: int = 3,
        depth: int = 2,
        pool: str = "max",
        head: str = "flatten",
        local: bool = False,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if local and pool == "stride":
            raise ValueError("a locally connected layer has stride 1: pool 'stride' does not apply")
        self.kernel, self.depth, self.pool_kind, self.head_kind, self.local = kernel, depth, pool, head, local
        self.norm = Normalize()
        size, channels = 28, 1
        downs, bns = [], []
        for block, out in enumerate(registry.CNN_CHANNELS[:depth], start=1):
            stride = 2 if pool == "stride" else 1
            layer: nn.Module = (
                LocallyConnected2d(channels, out, kernel, size)
                if local
                else SpectralConv2d(channels, out, kernel, stride=stride, padding=kernel // 2, bias=not batch_norm)
            )
            setattr(self, f"conv{block}", layer)
            bns.append(nn.BatchNorm2d(out) if batch_norm else nn.Identity())
            downs.append(_downsample(pool, size, out))
            size, channels = (size if pool == "none" else (size + 1) // 2), out
        self.downs = nn.ModuleList(downs)  # parameters (downs.<i>.0.*) only in the all-convolutional net
        self.bns = nn.ModuleList(bns)  # Identity (nothing in the state dict) unless batch norm
        if head == "gap":
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10))
        elif head == "gapfc":
            hidden = registry.gapfc_hidden(channels, channels * size * size)
            self.head = nn.Sequential(
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, 10)
            )
        else:
            hidden = registry.FLATTEN_HIDDEN
            self.head = nn.Sequential(
                nn.Flatten(), nn.Linear(channels * size * size, hidden), nn.ReLU(), nn.Linear(hidden, 10)
            )

    def convs(self) -> list[nn.Module]:
        """conv1..conv<depth> (convolutions, or locally connected layers in the LCN), in order."""
        return [cast(nn.Module, getattr(self, f"conv{i}")) for i in range(1, self.depth + 1)]

    def _blocks(self, x: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Each block's post-ReLU conv activation, and the last block's downsampled output."""
        maps = []
        x = self.norm(x)
        for conv, bn, down in zip(self.convs(), self.bns, self.downs, strict=True):
            a = torch.relu(bn(conv(x)))
            maps.append(a)
            x = down(a)
        return tuple(maps), x

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Post-ReLU activations of each block's conv (before its downsampling), for feature-map views:
        the notebook's conv1 [N,32,28,28] and conv2 [N,64,14,14]."""
        return self._blocks(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self._blocks(x)[1])


class BasicBlock(nn.Module):
    """Two 3×3 conv → batch norm stages with an identity shortcut (He et al. 2016, "basic block"); a 1×1 conv →
    BN shortcut where the block changes width or strides. The second BN starts at zero scale, so each block
    starts as the identity and a deep stack trains like a shallow one at first (Goyal et al. 2017)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)  # bias: BN's shift does it
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        nn.init.zeros_(self.bn2.weight)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """Stem (3×3 conv → BN → ReLU, `width` channels) → 3 stages of `blocks` basic blocks each (width ×1, ×2, ×4;
    the 2nd and 3rd stages stride 2 in their first block) → global average pooling → linear 10.

    Maps for 28×28 inputs: 28 (stem, stage 1) → 14 (stage 2) → 7 (stage 3). The layout of the CIFAR ResNets
    (He et al. 2016, §4.2), widened: width 32 with 2 blocks is a ResNet-14 of about 0.7 M parameters."""

    def __init__(self, width: int = 32, blocks: int = 2) -> None:
        super().__init__()
        self.norm = Normalize()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        stages, cin = [], width
        for i, cout in enumerate(registry.resnet_widths(width)):
            layers = [BasicBlock(cin if b == 0 else cout, cout, 2 if i and b == 0 else 1) for b in range(blocks)]
            stages.append(nn.Sequential(*layers))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10))

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Post-ReLU maps of the stem [N,w,28,28] and of each stage ([N,w,28,28], [N,2w,14,14], [N,4w,7,7])."""
        x = self.stem(self.norm(x))
        maps = [x]
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return tuple(maps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[-1])


class FlipTTA(nn.Module):
    """Flip test-time augmentation (`--tta`): the mean of the logits of an image and of its mirror image.

    A module, not a step of the evaluation loop, so that validation, the test evaluation and the exported ONNX
    graph (where it is baked in) all compute the same thing: predict, serve and the TUI need nothing extra."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The wrapped model's feature maps (of the image as given)."""
        # nn.Module's __getattr__ is typed Tensor | Module: say what `features` is
        features = cast("Callable[[torch.Tensor], tuple[torch.Tensor, ...]]", self.model.features)
        return features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N,1,28,28]; flip along the width
        return (self.model(x) + self.model(x.flip(-1))) / 2


def build_mlp(hidden: Sequence[int] = (256, 128)) -> MLP:
    """The registry's builder for `mlp`."""
    return MLP(hidden)


def build_cnn(kernel: int = 3, depth: int = 2, pool: str = "max", head: str = "flatten", norm: str = "none") -> CNN:
    """The registry's builder for `cnn`."""
    return CNN(kernel, depth, pool, head, batch_norm=norm == "batch")


def build_lcn(kernel: int = 3) -> CNN:
    """The registry's builder for `lcn`: the notebook's CNN with each convolution locally connected."""
    return CNN(kernel, local=True)


def build_resnet(width: int = 32, blocks: int = 2) -> ResNet:
    """The registry's builder for `resnet`."""
    return ResNet(width, blocks)


def create_model(
    arch: str, options: Mapping[str, Any] | None = None, permute_seed: int | None = None, **kwargs: Any
) -> nn.Module:
    """Build a fresh model from the registry, like timm's (`create_model("cnn", kernel=5)`), initialised from
    torch's current RNG; with `permute_seed`, its input stage first permutes the pixels (`--permute`)."""
    model = registry.get(arch).build({**(options or {}), **kwargs})
    if permute_seed is not None:
        permute_input(model, permute_seed)
    return model


def permute_input(model: nn.Module, seed: int) -> nn.Module:
    """Make `model` permute its input pixels by `data.pixel_permutation(seed)` before anything else."""
    norm = getattr(model, "norm", None)
    if not isinstance(norm, Normalize):  # every registered model takes its input through a Normalize
        raise ValueError(f"{type(model).__name__} has no Normalize input stage to permute its pixels in")
    model.norm = Normalize(float(norm.mean), float(norm.std), pixel_permutation(seed))
    return model


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module) -> int:
    """Multiply-accumulates for one 1×28×28 image, measured by hooks on conv, locally connected and linear layers
    (batch norm, ReLU, pooling and residual additions are not counted: no multiply-accumulates of weights)."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
            total += output[0].numel() * per_output
        elif isinstance(module, LocallyConnected2d):
            total += output[0].numel() * module.in_channels * module.kernel_size**2
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    layers = (nn.Conv2d, LocallyConnected2d, nn.Linear)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, layers)]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 1, 28, 28))  # eval: a BN layer's running statistics stay untouched
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total
