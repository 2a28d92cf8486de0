"""Architecture names and their valid kernels, without torch: the CLI and inference paths import this."""

from __future__ import annotations

from .errors import UsageError

#: arch name → valid kernel sizes (empty: the arch has no convolutions). models.REGISTRY builds them.
ARCHS: dict[str, tuple[int, ...]] = {"mlp": (), "cnn": (3, 5, 7)}


def check_arch(arch: str, kernel: int | None) -> int | None:
    """Validate an arch/kernel pair; return the kernel to use (None for an arch without convolutions)."""
    if arch not in ARCHS:
        raise UsageError(f"unknown --arch {arch!r}; valid: {', '.join(ARCHS)}")
    kernels = ARCHS[arch]
    if not kernels:
        if kernel is not None:
            raise UsageError(f"--kernel does not apply to --arch {arch} (it has no convolutions); drop it")
        return None
    kernel = kernels[0] if kernel is None else kernel
    if kernel not in kernels:
        raise UsageError(f"--kernel {kernel} is not valid for {arch}; valid: {', '.join(map(str, kernels))}")
    return kernel


def run_name(arch: str, kernel: int | None, seed: int) -> str:
    """The default run name: `<arch>[-k<kernel>]-s<seed>` (shared/DESIGN.md)."""
    return f"{arch}-k{kernel}-s{seed}" if kernel else f"{arch}-s{seed}"
