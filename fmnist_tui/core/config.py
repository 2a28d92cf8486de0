"""The frozen training configuration: every hyperparameter, validated in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from .errors import UsageError
from .registry import check_arch, run_name

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """One recipe for every arch and kernel, so comparisons stay fair.

    The defaults are the project's recipe: AdamW with a one-cycle schedule (linear warm-up over the
    first `warmup` fraction of steps, then cosine to zero), label smoothing, and augmentation on the
    in-memory uint8 tensor: random horizontal flips (and optional random shifts of up to `shift`
    pixels, off by default because they cost the MLP more than they give the CNN at 15 epochs).
    """

    arch: str = "cnn"
    kernel: int | None = 3
    epochs: int = 15
    batch_size: int = 128
    lr: float | None = None          # peak learning rate; None: lr_per_128 × batch_size / 128
    lr_per_128: float = 2e-3         # peak AdamW learning rate for a batch of 128
    weight_decay: float = 5e-2
    warmup: float = 0.15             # fraction of all steps spent warming up
    label_smoothing: float = 0.1
    hflip: bool = True
    shift: int = 0                   # random shift, pixels each direction (0: off; see README on why)
    seed: int = 0
    subset: int | None = None        # train on the first N training images (and N validation images)
    device: str = "auto"
    precision: str = "auto"          # auto: bf16 autocast where the hardware has it, else fp32
    threads: int | None = None       # torch intra-op threads; None: torch's default
    name: str | None = None          # run folder name; None: <arch>[-k<kernel>]-s<seed>
    out: str = "checkpoints"
    data_dir: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", check_arch(self.arch, self.kernel))
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if self.lr is not None and not self.lr > 0:
            raise UsageError(f"--lr must be positive, got {self.lr}")
        if self.subset is not None and self.subset < 1:
            raise UsageError(f"--subset must be a positive number of images, got {self.subset}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {self.threads}")
        if self.device not in DEVICES:
            raise UsageError(f"--device {self.device!r} is not valid; valid: {', '.join(DEVICES)}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision {self.precision!r} is not valid; valid: {', '.join(PRECISIONS)}")
        if not 0 <= self.warmup < 1 or not 0 <= self.label_smoothing < 1 or self.shift < 0:
            raise UsageError("warmup and label smoothing must lie in [0,1) and shift must be ≥ 0")
        if self.name is not None and (not self.name or "/" in self.name or self.name.startswith(".")):
            raise UsageError(f"--name {self.name!r} must be a plain folder name (no '/', not hidden)")

    @property
    def peak_lr(self) -> float:
        """The learning rate at the top of the one-cycle schedule."""
        return self.lr if self.lr is not None else self.lr_per_128 * self.batch_size / 128

    @property
    def run_name(self) -> str:
        """The run folder's name."""
        return self.name or run_name(self.arch, self.kernel, self.seed)

    @property
    def run_dir(self) -> Path:
        """The run folder."""
        return Path(self.out) / self.run_name

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Rebuild from `to_dict` output, ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_changes(self, **changes: Any) -> "TrainConfig":
        """A validated copy with some fields replaced."""
        return replace(self, **changes)
