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

from .errors import ConfigError, ref

#: fixed forever: the seed of the one permutation of the 784 pixel positions that `--permute` applies (here,
#: not in data.py, so the CLI and TrainConfig name it without importing numpy before Ctrl-C is handled)
PERMUTE_SEED = 20250113

if TYPE_CHECKING:
    from torch import nn

Options = Mapping[str, Any]


#: an option type in words, for errors ("'x' is not an integer")
_A_TYPE: dict[type, str] = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


@dataclass(frozen=True)
class Option:
    """One architecture option: its type, valid values, default and how run names show it.

    A list-valued option (`many=True`, e.g. the MLP's hidden widths) takes comma-separated text on the
    command line, in the TUI and in SageMaker (`256,128`), is held as a tuple, and written to JSON as a list.
    """

    name: str  # config key (and the CLI's --name, the TUI's field)
    type: type  # int, float, str or bool (of each item, for a list-valued option)
    default: Any
    help: str
    choices: tuple[Any, ...] = ()  # the valid values; empty: any value of `type` (within `limits`)
    tag: str = ""  # run-name part with {} for the value ("k{}" → k3); "" : never named
    always_named: bool = False  # in run names even at its default (the kernel: cnn-k3-s0)
    many: bool = False  # a list of `type` values, at least one
    limits: tuple[float, float] | None = None  # inclusive bounds of a number (of each item)
    max_items: int = 8  # a list-valued option's longest list

    def check(self, value: Any, arch: str) -> Any:
        """The value as this option's type; ConfigError names the option and the valid values."""
        if not self.many:
            return self._item(value, arch)
        items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not 1 <= len(items) <= self.max_items:
            raise ConfigError(self.name, f"{value!r} is not a list of 1 to {self.max_items} values", self.hint(arch))
        return tuple(self._item(v, arch) for v in items)

    def _item(self, value: Any, arch: str) -> Any:
        if isinstance(value, bool) and self.type is not bool:
            raise ConfigError(self.name, f"{value!r} is not {_A_TYPE[self.type]}", self.hint(arch))
        try:
            value = self.type(value)
        except (TypeError, ValueError):
            raise ConfigError(self.name, f"{value!r} is not {_A_TYPE[self.type]}", self.hint(arch)) from None
        if self.choices and value not in self.choices:
            raise ConfigError(self.name, f"{value} is not valid for {arch}", self.hint(arch))
        if self.limits and not self.limits[0] <= value <= self.limits[1]:
            raise ConfigError(self.name, f"{value} is out of range for {arch}", self.hint(arch))
        return value

    def hint(self, arch: str = "") -> str:
        """What the option takes: `valid: 3, 5, 7`, or `give comma-separated integers 1–4096 (e.g. 256,128)`."""
        if self.choices:
            return f"valid: {', '.join(map(str, self.choices))}"
        kind = {int: "integer", float: "number", str: "text", bool: "true or false"}.get(self.type, self.type.__name__)
        bounds = f" {self.limits[0]:g}–{self.limits[1]:g}" if self.limits else ""
        if self.many:
            return f"give 1 to {self.max_items} comma-separated {kind}s{bounds} (e.g. {self.text(self.default)})"
        return f"give an {kind}{bounds}" if kind[0] in "aeiou" else f"give a {kind}{bounds}"

    @property
    def value_type(self) -> Any:  # (`type` here is the field above, not the builtin)
        """The type a command line or a form hands over: text for a list (`256,128`), else `type`."""
        return str if self.many else self.type

    def text(self, value: Any) -> str:
        """The value as the CLI, the TUI and SageMaker write it (`256,128` for a list)."""
        if self.many and isinstance(value, (list, tuple)):
            return ",".join(map(str, value))
        return str(value)

    def normal(self, value: Any) -> Any:
        """The value in its held form (a tuple for a list read from JSON); unchanged if it is not valid."""
        try:
            return self.check(value, "")
        except ConfigError:
            return value

    def name_part(self, value: Any) -> str:
        """This option's part of a run name, or '' when it stays out (at its default, or never named)."""
        value = self.normal(value)
        if not self.tag or (value == self.default and not self.always_named):
            return ""
        return self.tag.format("x".join(map(str, value)) if self.many else value)


@dataclass(frozen=True)
class Requires:
    """A combination rule: when option `when` has value `equals`, option `name` must be one of `values`."""

    when: str
    equals: Any
    name: str
    values: tuple[Any, ...]
    why: str  # the reason, said in the error

    def check(self, options: Options) -> None:
        if options.get(self.when) == self.equals and options.get(self.name) not in self.values:
            raise ConfigError(
                self.name,
                f"{options.get(self.name)} does not work with {ref(self.when)} {self.equals} ({self.why})",
                f"valid with {ref(self.when)} {self.equals}: {', '.join(map(str, self.values))}",
            )

    def describe(self) -> str:
        """`pool none needs head gap` (help texts)."""
        return f"{self.when} {self.equals} needs {self.name} {' or '.join(map(str, self.values))}"


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: what it is, its options, and how to build and measure it."""

    name: str
    description: str
    builder: str  # "module:function(**options) -> nn.Module", imported on use
    options: tuple[Option, ...] = ()
    has_convs: bool = False  # has convolution layers: feature maps, channels_last
    receptive_field: Callable[[Options], int] = field(default=lambda options: 28)  # px per side, last conv unit
    rules: tuple[Requires, ...] = ()  # combinations of option values that must hold (checked torch-free)

    def option(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)

    def values(self, name: str) -> tuple[Any, ...]:
        """The valid values of option `name` (KeyError if this arch has no such option)."""
        option = self.option(name)
        if option is None:
            raise KeyError(f"{self.name} has no option {name!r}")
        return option.choices

    def text(self, name: str, value: Any) -> str:
        """Option `name`'s value as a command line writes it (`256,128`)."""
        option = self.option(name)
        return option.text(value) if option else str(value)

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
        resolved = {
            o.name: o.default if given.get(o.name) is None else o.check(given[o.name], self.name) for o in self.options
        }
        for rule in self.rules:
            rule.check(resolved)
        return resolved

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
    return ", ".join(ref(o.name) for o in options) or "no options"


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


#: the recipe's data settings that change what a model sees (shared/DESIGN.md), named in labels and run names
#: after the architecture's options when they are on (0 is off): `mlp-perm-s0`, `cnn-k3-n500-s0`, random-shift
#: augmentation `mlp-shift2-s0` (trained beside `mlp-s0`, so a study can hold both), re-framing `cnn-k3-aff1-s0`
DATA_TAGS: dict[str, str] = {
    "train_size": "n{}",
    "label_noise": "noise{}",
    "permute": "perm",
    "shift": "shift{}",
    "affine": "aff{:g}",
}


def data_parts(flat: Options) -> list[str]:
    """The name parts of the data settings in `flat` that are on (`n500`, `perm`, `shift2`); none for those at
    their default (off: None, False, 0) or absent, so every earlier run keeps its name."""
    return [tag.format(flat[name]) for name, tag in DATA_TAGS.items() if flat.get(name) not in (None, False, 0)]


def label(arch: str, options: Options) -> str:
    """`cnn-k3` for a known arch (`cnn-k3-perm`, `cnn-k3-shift2` when `options` also holds a data setting that is
    on); for a foreign one (a run folder of another version), the arch alone."""
    spec = REGISTRY.get(arch)
    return "-".join([spec.label(options), *data_parts(options)]) if spec else arch


def run_name(arch: str, options: Options, seed: int) -> str:
    """The default run name `<label>-s<seed>` (shared/DESIGN.md): `cnn-k3-s0`, `mlp-s1`, `mlp-perm-s0`."""
    return f"{label(arch, options)}-s{seed}"


def options_from(arch: str, flat: Options) -> dict[str, Any]:
    """The options of `arch` found in a flat mapping (config.json, summary.json, a CLI's values)."""
    return {o.name: flat[o.name] for o in get(arch).options if o.name in flat}


def resolved_options(arch: str, flat: Options) -> dict[str, Any]:
    """Every option of `arch` from a flat mapping, defaults filled in (a config.json of an older version has
    only the kernel); {} for an unknown arch."""
    spec = REGISTRY.get(arch)
    return spec.resolve(options_from(arch, flat)) if spec else {}


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


# --- the notebook's architectures (shared/DESIGN.md) and their families ---------------------------
#: channels of the CNN's conv blocks 1..4 (the notebook's two blocks: 32, 64)
CNN_CHANNELS = (32, 64, 128, 128)
#: how a CNN block downsamples: the notebook's max-pool, average-pool, its conv at stride 2, anti-aliased max-pool
#: (MaxBlurPool), an extra learned 3×3 conv at stride 2 (the all-convolutional net), or not at all
POOLS = ("max", "avg", "stride", "blur", "allconv", "none")
#: the hidden width of the notebook's flatten head (flatten → FC 128 → FC 10)
FLATTEN_HIDDEN = 128


def gapfc_hidden(channels: int, flat: int) -> int:
    """The hidden width of the `gapfc` head (global average pooling → FC h → ReLU → FC 10) whose parameters come
    nearest the flatten head's on the same maps (`flat` = channels × height × width → 128 → 10): a GAP head
    that is not smaller (for the notebook's CNN, 5,371 against 3,136 × 128)."""
    flatten = (flat + 1) * FLATTEN_HIDDEN + (FLATTEN_HIDDEN + 1) * 10
    return max(1, round((flatten - 10) / (channels + 11)))


#: the (kernel, stride) layers each downsampling adds between blocks (`stride` strides the conv itself)
DOWNSAMPLE_LAYERS: dict[str, tuple[tuple[int, int], ...]] = {
    "max": ((2, 2),),
    "avg": ((2, 2),),
    "blur": ((2, 1), (3, 2)),
    "allconv": ((3, 2),),
}


def cnn_layers(options: Options) -> list[tuple[int, int]]:
    """The (kernel, stride) chain up to the last block's conv of a CNN member: conv k (stride 2 with pool=stride),
    and each downsampling's layers between blocks."""
    k, depth, pool = options["kernel"], options["depth"], options["pool"]
    layers: list[tuple[int, int]] = []
    for block in range(depth):
        if block:
            layers += DOWNSAMPLE_LAYERS.get(pool, ())
        layers.append((k, 2 if pool == "stride" else 1))
    return layers


register(
    ArchSpec(
        "mlp",
        "multilayer perceptron: 784 → hidden widths (ReLU) → 10; the notebook's 784 → 256 → 128 → 10",
        "fmnist_tui.training.models:build_mlp",
        options=(
            Option(
                "hidden",
                int,
                (256, 128),
                "Hidden layer widths, comma-separated.",
                tag="h{}",
                many=True,
                limits=(1, 4096),
                max_items=4,
            ),
        ),
    )
)

register(
    ArchSpec(
        "cnn",
        "conv blocks (k×k conv → ReLU → downsample; 32, 64, 128, 128 channels) → head; "
        "the notebook's: conv 1→32 → pool → conv 32→64 → pool → 3136 → 128 → 10",
        "fmnist_tui.training.models:build_cnn",
        options=(
            Option("kernel", int, 3, "Convolution kernel size.", choices=(3, 5, 7), tag="k{}", always_named=True),
            Option("depth", int, 2, "Conv blocks (channels 32, 64, 128, 128).", choices=(1, 2, 3, 4), tag="d{}"),
            Option(
                "pool",
                str,
                "max",
                "Downsampling after each block: 2×2 max-pool, 2×2 average-pool, the conv at stride 2, "
                "anti-aliased max-pool (blur: 2×2 max at stride 1, then a 3×3 binomial blur at stride 2), an extra "
                "3×3 conv at stride 2 (allconv), or none.",
                choices=POOLS,
                tag="{}",
            ),
            Option(
                "head",
                str,
                "flatten",
                "Classifier: flatten → FC 128 → FC 10, global average pooling → FC 10, or global average "
                "pooling → FC h → FC 10 with h giving as many parameters as the flatten head (gapfc).",
                choices=("flatten", "gap", "gapfc"),
                tag="{}",
            ),
            Option(
                "norm",
                str,
                "none",
                "After each conv: nothing (the notebook's) or batch norm (conv → BN → ReLU; the conv then has no "
                "bias).",
                choices=("none", "batch"),
                tag="bn",
            ),
        ),
        has_convs=True,
        # the notebook's (conv k, pool 2, conv k; padding k//2): 3k − 1 pixels
        receptive_field=lambda o: conv_pool_rf(cnn_layers(o)),
        rules=(
            Requires(
                "pool",
                "none",
                "head",
                ("gap", "gapfc"),
                "without downsampling a flatten head would take 28×28 maps per channel",
            ),
        ),
    )
)

register(
    ArchSpec(
        "lcn",
        "locally connected network: the notebook's CNN with each convolution replaced by a locally connected layer "
        "(the same k×k windows and channels, a filter of its own at every position: locality without weight sharing)",
        "fmnist_tui.training.models:build_lcn",
        options=(
            Option(
                "kernel",
                int,
                3,
                "Window size of each locally connected layer.",
                choices=(3, 5, 7),
                tag="k{}",
                always_named=True,
            ),
        ),
        has_convs=True,  # spatial maps per layer (feature maps), though no weights are shared
        receptive_field=lambda o: conv_pool_rf(cnn_layers({"kernel": o["kernel"], "depth": 2, "pool": "max"})),
    )
)


def resnet_widths(width: int) -> tuple[int, int, int]:
    """Channels of the ResNet's three stages: the base width, doubled at each downsampling stage."""
    return (width, 2 * width, 4 * width)


def resnet_layers(options: Options) -> list[tuple[int, int]]:
    """The (kernel, stride) chain along the ResNet's longest path: the 3×3 stem, then two 3×3 convs per basic
    block, the first of stages 2 and 3 at stride 2."""
    layers = [(3, 1)]
    for stage in range(len(resnet_widths(options["width"]))):
        for block in range(options["blocks"]):
            layers += [(3, 2 if stage and not block else 1), (3, 1)]
    return layers


register(
    ArchSpec(
        "resnet",
        "small residual network: 3×3 conv stem (BN, ReLU) → 3 stages of basic residual blocks (width ×1, ×2, ×4; "
        "stride 2 into stages 2 and 3: 28 → 14 → 7) → global average pooling → FC 10",
        "fmnist_tui.training.models:build_resnet",
        options=(
            Option(
                "width",
                int,
                32,
                "Channels of the first stage (doubled at each of the next two).",
                tag="w{}",
                limits=(4, 128),
            ),
            Option("blocks", int, 2, "Residual basic blocks per stage.", choices=(1, 2, 3, 4), tag="b{}"),
        ),
        has_convs=True,
        receptive_field=lambda o: conv_pool_rf(resnet_layers(o)),
    )
)
