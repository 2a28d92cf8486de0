"""The frozen training configuration: every hyperparameter, validated in one place.

The architecture's own options (the CNN's kernel, ...) come from the registry and live in `options`;
in config.json, summary.json and SageMaker's hyperparameters they sit at the top level beside the
recipe's fields, so the files read as before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from . import registry
from .errors import ConfigError, FmnistError, RunError, ref
from .runs import CONFIG, LOCK, RETRAIN, Run, RunLock

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
COMPILES = ("off", "default", "graphs")  # training/step.py: COMPILE_MODES
#: Fields that say where and how a run ran, not what it learns: runs that differ only in these (and the
#: seed) are one config of a study.
PLACEMENT = frozenset({"seed", "name", "out", "data_dir", "device", "threads", "precision", "compile"})
#: the recipe's numeric settings a command line gives as `--<setting> VALUE` where they are not the default
RECIPE_NUMBERS = ("shift", "affine", "erase", "label_smoothing", "ema")


@dataclass(frozen=True)
class TrainConfig:
    """One recipe for every architecture, so comparisons stay fair.

    The defaults are the project's recipe: AdamW with a one-cycle schedule (linear warm-up over the
    first `warmup` fraction of steps, then cosine to zero), label smoothing, and augmentation on the
    in-memory uint8 tensor: random horizontal flips (and optional random shifts of up to `shift`
    pixels, off by default because they cost the MLP more than they give the CNN at 15 epochs).
    Random erasing, a weight average (EMA) and flip test-time augmentation are off by default: every
    earlier run keeps its recipe, and the ResNet's recipe turns them on by name (docs/models.md, "The recipe").
    """

    arch: str = "cnn"
    options: Mapping[str, Any] = field(default_factory=dict)  # the arch's options (registry); defaults filled in
    epochs: int = 15
    batch_size: int = 128
    lr: float | None = None  # peak learning rate; None: lr_per_128 × batch_size / 128
    lr_per_128: float = 2e-3  # peak AdamW learning rate for a batch of 128
    weight_decay: float = 5e-2
    warmup: float = 0.15  # fraction of all steps spent warming up
    label_smoothing: float = 0.1
    hflip: bool = True
    shift: int = 0  # random shift, pixels each direction (0: off; the class docstring says why)
    # random erasing (Zhong et al. 2020): the probability that a training image gets one random rectangle of
    # 2–40% of its area set to black (the background, as a shift's fill); 0: off
    erase: float = 0.0
    # decay per step of an exponential moving average of the weights (ramped as min(ema, (1+t)/(10+t))); the
    # average is what is validated, saved (best/last) and exported; 0: off
    ema: float = 0.0
    # flip test-time augmentation: logits are the mean of the image's and its mirror image's, in validation, test
    # and the exported graph alike; off: the plain forward pass
    tta: bool = False
    # strength of the random re-framing (training.geometry: aspect, tilt, share of the box), 0: off, up to 2
    affine: float = 0.0
    seed: int = 0
    subset: int | None = None  # train on the first N training images (and N validation images)
    # a stratified, nested subset of N training images, repeated to the epoch's length (the training split's, or
    # `subset`'s), so every size takes the same optimisation steps; validation and test unchanged (data study)
    train_size: int | None = None
    # percent of the training images (those the run trains on) whose label is replaced by another class, chosen
    # per seed (data.noisy_labels); validation and test keep their true labels, so the best checkpoint is chosen
    # on clean validation (label-noise study)
    label_noise: int = 0
    # one fixed permutation of the 784 pixel positions (registry.PERMUTE_SEED), applied by the model's first layer:
    # after augmentation, to training, validation and test images alike, and inside an exported graph
    permute: bool = False
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast where the hardware has it, else fp32
    threads: int | None = None  # torch intra-op threads; None: torch's default
    compile: str = "off"  # the training step's torch.compile (COMPILES); validation, test and export stay eager
    name: str | None = None  # run folder name; None: registry.run_name (e.g. cnn-k3-s0, mlp-shift2-s0)
    out: str = "checkpoints"
    data_dir: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", registry.get(self.arch).resolve(self.options))
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(key, f"must be a positive integer, got {getattr(self, key)}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError("lr", f"must be a positive finite number, got {self.lr}")
        if self.subset is not None and self.subset < 1:
            raise ConfigError("subset", f"must be a positive number of images, got {self.subset}")
        if self.train_size is not None and self.train_size < 1:
            raise ConfigError("train_size", f"must be a positive number of images, got {self.train_size}")
        whole = isinstance(self.label_noise, int) and not isinstance(self.label_noise, bool)
        if not (whole and 0 <= self.label_noise <= 100):
            raise ConfigError("label_noise", f"must be a whole percent from 0 to 100, got {self.label_noise!r}")
        for key in ("permute", "tta"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(key, f"must be true or false, got {getattr(self, key)!r}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("threads", f"must be at least 1, got {self.threads}")
        if self.device not in DEVICES:
            raise ConfigError("device", f"{self.device!r} is not valid", f"valid: {', '.join(DEVICES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError("precision", f"{self.precision!r} is not valid", f"valid: {', '.join(PRECISIONS)}")
        if self.compile not in COMPILES:
            raise ConfigError("compile", f"{self.compile!r} is not valid", f"valid: {', '.join(COMPILES)}")
        for key in ("warmup", "label_smoothing", "ema"):
            if not 0 <= getattr(self, key) < 1:  # (a NaN fails this too)
                raise ConfigError(key, f"must lie in [0, 1), got {getattr(self, key)}")
        if not 0 <= self.erase <= 1:
            raise ConfigError("erase", f"is a probability and must lie in [0, 1], got {self.erase}")
        if self.shift < 0:
            raise ConfigError("shift", f"must be ≥ 0 pixels, got {self.shift}")
        strength_ok = isinstance(self.affine, (int, float)) and not isinstance(self.affine, bool)
        if not (strength_ok and 0 <= self.affine <= 2):  # NaN fails too
            raise ConfigError("affine", f"must be a strength from 0 (off) to 2, got {self.affine}")
        if self.name is not None and (
            not self.name.strip() or "/" in self.name or self.name.startswith(".") or self.name != self.name.strip()
        ):
            raise ConfigError(
                "name", f"{self.name!r} must be a plain folder name (no '/', not hidden, no surrounding spaces)"
            )

    # --- derived ----------------------------------------------------------------------------------
    @property
    def spec(self) -> registry.ArchSpec:
        return registry.get(self.arch)

    @property
    def kernel(self) -> int | None:
        """The convolution kernel size, for architectures that have one."""
        value = self.options.get("kernel")
        return None if value is None else int(value)

    @property
    def peak_lr(self) -> float:
        """The learning rate at the top of the one-cycle schedule."""
        return self.lr if self.lr is not None else self.lr_per_128 * self.batch_size / 128

    @property
    def permute_seed(self) -> int | None:
        """The seed of the pixel permutation the model applies (recorded in config.json), None without one."""
        return registry.PERMUTE_SEED if self.permute else None

    @property
    def data(self) -> dict[str, Any]:
        """The data settings that change what the model sees (registry.DATA_TAGS), as labels name them."""
        return {name: getattr(self, name) for name in registry.DATA_TAGS}

    @property
    def label(self) -> str:
        """The config's name without the seed (`cnn-k3`, `mlp-perm`, `mlp-shift2`): study plans, tables, captions."""
        return registry.label(self.arch, {**self.options, **self.data})

    @property
    def run_name(self) -> str:
        """The run folder's name."""
        return self.name or registry.run_name(self.arch, {**self.options, **self.data}, self.seed)

    @property
    def run_dir(self) -> Path:
        """The run folder."""
        return Path(self.out) / self.run_name

    # --- as plain data ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every field; every registered option at the top level (None where the
        arch lacks it), as config.json has it."""
        flat: dict[str, Any] = {"arch": self.arch}
        flat.update({name: self.options.get(name) for name in registry.option_names()})
        flat.update({f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("arch", "options")})
        flat["permute_seed"] = self.permute_seed
        return flat

    def recipe(self) -> dict[str, Any]:
        """What the run learns from (everything but PLACEMENT): runs with equal recipes are one config."""
        return {k: v for k, v in self.to_dict().items() if k not in PLACEMENT}

    @classmethod
    def create(cls, **values: Any) -> TrainConfig:
        """A config from flat values, as the CLI and config.json have them (`arch="cnn", kernel=5, epochs=3`)."""
        known = {f.name for f in fields(cls)} - {"options"}
        arch = values.get("arch", cls.arch)
        options = {k: values.pop(k) for k in list(values) if k not in known}
        unknown = [k for k in options if k not in registry.option_names()]
        if unknown:
            raise ConfigError(unknown[0], "is not a setting of the recipe or of any architecture")
        return cls(arch=arch, options=options, **{k: v for k, v in values.items() if k != "arch"})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Rebuild from `to_dict` output (config.json), ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)} - {"options"}
        arch = str(data.get("arch", cls.arch))
        options = registry.options_from(arch, data)
        return cls(arch=arch, options=options, **{k: v for k, v in data.items() if k in known and k != "arch"})

    def with_changes(self, **changes: Any) -> TrainConfig:
        """A validated copy with some fields replaced."""
        return replace(self, **changes)


def recipe_of(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The recipe of a saved config.json (defaults filled in for keys older versions did not write); None
    when it cannot be read as a TrainConfig (an unknown arch, a damaged file)."""
    try:
        return TrainConfig.from_dict(config).recipe()
    except (FmnistError, TypeError, ValueError):
        return None


def default(name: str) -> Any:
    """The recipe's default for one field (`default("epochs")` → 15): the CLI's and TUI's defaults."""
    for f in fields(TrainConfig):
        if f.name == name:
            return f.default
    raise KeyError(name)


def what_args(cfg: TrainConfig) -> list[str]:
    """The `fmnist train` options that say what `cfg` trains beyond its arch, epochs and seed: the arch's
    options, then the data settings and recipe numbers away from their defaults, `--permute` and `--tta`
    (shared by the command line `fmnist train` shows and a study's train command)."""
    args: list[str] = []
    for name, value in cfg.options.items():
        args += [f"--{name.replace('_', '-')}", cfg.spec.text(name, value)]
    for setting in ("subset", "train_size", "label_noise", *RECIPE_NUMBERS):
        if (value := getattr(cfg, setting)) != default(setting):
            args += [f"--{setting.replace('_', '-')}", str(value)]
    args += ["--permute"] if cfg.permute else []
    return args + (["--tta"] if cfg.tta else [])


def resume_config(
    run_dir: Path,
    epochs: int | None = None,
    device: str | None = None,
    threads: int | None = None,
    compile: str | None = None,
    data_dir: str | None = None,
) -> TrainConfig:
    """The saved config of a run folder, with the few options that may change on resume applied (where it trains,
    and where the dataset is now)."""
    run = Run(Path(run_dir))
    if not run.file(CONFIG).exists():
        if run.file(LOCK).exists():  # a training that is starting holds its lock before it writes config.json
            with RunLock(run):  # RunBusy naming it, rather than "nothing to resume"
                pass
        raise RunError(f"{run_dir}: no run to resume (no config.json); start it without {ref('resume')}")
    try:
        cfg = TrainConfig.from_dict(run.config())
    except Exception as exc:  # a damaged config.json may fail validation in many ways
        raise RunError(f"{run.file(CONFIG)}: cannot read the saved config ({exc}); {RETRAIN}") from exc
    changes: dict[str, Any] = {"out": str(run.path.parent), "name": run.name}
    if epochs is not None:
        changes["epochs"] = epochs
    if device is not None:
        changes["device"] = device
    if threads is not None:
        changes["threads"] = threads
    if compile is not None:
        changes["compile"] = compile
    if data_dir is not None:
        changes["data_dir"] = data_dir
    return cfg.with_changes(**changes)


def recipe_differences(run: Run, cfg: TrainConfig) -> str:
    """What differs between the recipe saved in `run` and `cfg`'s ("epochs 30 ≠ 40, ema 0.999 ≠ 0.0"), or ""."""
    saved, wanted = recipe_of(run.config()) or {}, cfg.recipe()
    return ", ".join(f"{k} {saved.get(k)} ≠ {wanted[k]}" for k in wanted if str(saved.get(k)) != str(wanted[k]))
