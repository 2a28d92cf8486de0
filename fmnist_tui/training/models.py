"""The models: the seed's MLP and 2-conv CNN, declared from their hyperparameters, and their measured sizes.

The registry (core.registry) names the builders below; receptive fields are computed there, torch-free."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..core import registry

#: Fashion-MNIST pixel statistics on [0,1] inputs; normalisation lives inside the model so that the
#: exported graph takes plain [0,1] images (shared/DESIGN.md, ONNX contract).
MEAN, STD = 0.2860, 0.3530


class Normalize(nn.Module):
    """(x - mean) / std with constant buffers (not parameters: counts stay the seed's)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: float = MEAN, std: float = STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean), persistent=False)
        self.register_buffer("std", torch.tensor(std), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class MLP(nn.Module):
    """Flatten(784) → 256 → 128 → 10 with ReLU: 235,146 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = Normalize()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 256),
            nn.ReLU(),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N,1,28,28] in [0,1]
        return self.net(self.norm(x))


class CNN(nn.Module):
    """Conv(1→32,k) → pool → Conv(32→64,k) → pool → 3136 → 128 → 10; padding k//2 keeps 28→14→7."""

    def __init__(self, kernel: int = 3) -> None:
        super().__init__()
        self.kernel = kernel
        self.norm = Normalize()
        self.conv1 = nn.Conv2d(1, 32, kernel, padding=kernel // 2)  # [N,32,28,28]
        self.conv2 = nn.Conv2d(32, 64, kernel, padding=kernel // 2)  # [N,64,14,14]
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Post-ReLU activations of conv1 [N,32,28,28] and conv2 [N,64,14,14], for feature-map views."""
        a1 = torch.relu(self.conv1(self.norm(x)))
        a2 = torch.relu(self.conv2(self.pool(a1)))
        return a1, a2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, a2 = self.features(x)
        return self.head(self.pool(a2))


def build_mlp() -> MLP:
    """The registry's builder for `mlp`."""
    return MLP()


def build_cnn(kernel: int = 3) -> CNN:
    """The registry's builder for `cnn`."""
    return CNN(kernel)


def create_model(arch: str, options: Mapping[str, Any] | None = None, **kwargs: Any) -> nn.Module:
    """Build a fresh model from the registry, like timm's (`create_model("cnn", kernel=5)`), initialised from
    torch's current RNG."""
    return registry.get(arch).build({**(options or {}), **kwargs})


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module) -> int:
    """Multiply-accumulates for one 1×28×28 image, measured by hooks on conv and linear layers."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
            total += output[0].numel() * per_output
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, 28, 28))
    finally:
        for h in handles:
            h.remove()
    return total
