"""The architecture registry: one torch-free table of architecture specs that everything derives from.

Every command's choices and help, the TUI's training form, run names, study plans and labels, report
captions and SageMaker's hyperparameter types read this table (in the spirit of timm's registry).
Adding an architecture or an option is one `register(ArchSpec(...))` call: the builder is named by
its import path, so reading the table never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

Options = Mapping[str, Any]


@dataclass(frozen=True)
class Option:
    """One architecture option: its type, valid values, default and how run names show it."""

    name: str  # config key (and the CLI's --name, the TUI's field)
    type: type  # int, float, str or bool
    default: Any
    help: str
    choices: tuple[Any, ...] = ()  # the valid values; empty: any value of `type`
    tag: str = ""  # run-name part with {} for the value ("k{}" → k3); "" : never named
    always_named: bool = False  # in run names even at its default (the kernel: cnn-k3-s0)

    def check(self, value: Any, arch: str) -> Any:
        """The value as this option's type; ConfigError names the option and the valid values."""
        if isinstance(value, bool) and self.type is not bool:
            raise ConfigError(self.name, f"{value!r} is not {self.type.__name__}", self._valid_hint(arch))
        try:
            value = self.type(value)
        except (TypeError, ValueError):
            raise ConfigError(self.name, f"{value!r} is not {self.type.__name__}", self._valid_hint(arch)) from None
        if self.choices and value not in self.choices:
            raise ConfigError(self.name, f"{value} is not valid for {arch}", self._valid_hint(arch))
        return value

    def _valid_hint(self, arch: str) -> str:
        return f"valid: {', '.join(map(str, self.choices))}" if self.choices else f"give a {self.type.__name__}"

    def name_part(self, value: Any) -> str:
        """This option's part of a run name, or '' when it stays out (at its default, or never named)."""
        if not self.tag or (value == self.default and not self.always_named):
            return ""
        return self.tag.format(value)


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: what it is, its options, and how to build and measure it."""

    name: str
    description: str
    builder: str  # "module:function(**options) -> nn.Module", imported on use
    options: tuple[Option, ...] = ()
    has_convs: bool = False  # has convolution layers: feature maps, channels_last
    receptive_field: Callable[[Options], int] = field(default=lambda options: 28)  # px per side, last conv unit

    def option(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)

    def values(self, name: str) -> tuple[Any, ...]:
        """The valid values of option `name` (KeyError if this arch has no such option)."""
        option = self.option(name)
        if option is None:
            raise KeyError(f"{self.name} has no option {name!r}")
        return option.choices

    def defaults(self) -> dict[str, Any]:
        return {o.name: o.default for o in self.options}

    def resolve(self, given: Options) -> dict[str, Any]:
        """Every option of this arch, validated, defaults filled in; None in `given` means 'the default'.

        An option this arch does not take is a ConfigError, unless its value is None (not given)."""
        for name, value in given.items():
            if self.option(name) is None and value is not None:
                raise ConfigError(
                    name, f"does not apply to arch {self.name}", f"{self.name} takes {_names(self.options)}"
                )
        return {
            o.name: o.default if given.get(o.name) is None else o.check(given[o.name], self.name) for o in self.options
        }

    def label(self, options: Options) -> str:
        """The config's name without the seed: `cnn-k3`, `mlp` (study tables, plans and figure captions)."""
        parts = [o.name_part(options.get(o.name, o.default)) for o in self.options]
        return "-".join([self.name, *[p for p in parts if p]])

    def build(self, options: Options) -> nn.Module:
        """A fresh model (torch is imported here, by the builder's module)."""
        module, _, function = self.builder.partition(":")
        model: nn.Module = getattr(importlib.import_module(module), function)(**self.resolve(options))
        return model


def _names(options: tuple[Option, ...]) -> str:
    return ", ".join(o.name for o in options) or "no options"


#: name → spec, in the order choices are listed
REGISTRY: dict[str, ArchSpec] = {}


def register(spec: ArchSpec) -> ArchSpec:
    """Add (or replace) an architecture; every view picks it up from here."""
    REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove an architecture (tests that register a toy one clean up with this)."""
    REGISTRY.pop(name, None)


def get(arch: str) -> ArchSpec:
    """The spec of `arch`; ConfigError lists the valid names."""
    try:
        return REGISTRY[arch]
    except KeyError:
        raise ConfigError("arch", f"{arch!r} is unknown", f"valid: {', '.join(REGISTRY)}") from None


def option_names() -> list[str]:
    """Every option any architecture takes, each once, in registry order (config keys, CLI flags)."""
    return list(dict.fromkeys(o.name for spec in REGISTRY.values() for o in spec.options))


def options_named(name: str) -> list[tuple[ArchSpec, Option]]:
    """Each architecture that takes option `name`, with its version of the option."""
    return [(spec, o) for spec in REGISTRY.values() for o in spec.options if o.name == name]


def label(arch: str, options: Options) -> str:
    """`cnn-k3` for a known arch; for a foreign one (a run folder of another version), the arch alone."""
    spec = REGISTRY.get(arch)
    return spec.label(options) if spec else arch


def run_name(arch: str, options: Options, seed: int) -> str:
    """The default run name `<label>-s<seed>` (shared/DESIGN.md): `cnn-k3-s0`, `mlp-s1`."""
    return f"{label(arch, options)}-s{seed}"


def options_from(arch: str, flat: Options) -> dict[str, Any]:
    """The options of `arch` found in a flat mapping (config.json, summary.json, a CLI's values)."""
    return {o.name: flat[o.name] for o in get(arch).options if o.name in flat}


def has_convs(arch: str | None) -> bool:
    """Whether an arch has convolution layers (False for an unknown one)."""
    spec = REGISTRY.get(arch or "")
    return bool(spec and spec.has_convs)


def receptive_field(arch: str, options: Options) -> int | None:
    """Receptive field (pixels per side) of one unit after the last conv; None for an unknown arch."""
    spec = REGISTRY.get(arch)
    return spec.receptive_field(spec.resolve({k: v for k, v in options.items() if spec.option(k)})) if spec else None


def conv_pool_rf(layers: list[tuple[int, int]]) -> int:
    """Receptive field of a chain of (kernel, stride) layers: rf += (k − 1) × jump; jump ×= stride."""
    rf, jump = 1, 1
    for kernel, stride in layers:
        rf += (kernel - 1) * jump
        jump *= stride
    return rf


# --- the seed's architectures (shared/DESIGN.md) ----------------------------------------------------
register(ArchSpec("mlp", "784 → 256 → 128 → 10 multilayer perceptron", "fmnist_tui.training.models:build_mlp"))

register(
    ArchSpec(
        "cnn",
        "conv 1→32 → pool → conv 32→64 → pool → 3136 → 128 → 10, k×k kernels",
        "fmnist_tui.training.models:build_cnn",
        options=(
            Option("kernel", int, 3, "Convolution kernel size.", choices=(3, 5, 7), tag="k{}", always_named=True),
        ),
        has_convs=True,
        # conv k, pool 2, conv k (padding k//2): 3k − 1 pixels
        receptive_field=lambda o: conv_pool_rf([(o["kernel"], 1), (2, 2), (o["kernel"], 1)]),
    )
)
