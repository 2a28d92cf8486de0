"""What a run was computed on, for its provenance: the CPU and the vector extensions that choose torch's
kernels, and the source commit (no torch)."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from .. import cpu_count

#: CPU flags that change which kernels torch runs (and whether bf16 autocast is fast), most capable last
ISA_FLAGS = (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX-512 BF16"), ("amx_bf16", "AMX BF16"))


def cpu() -> dict[str, object]:
    """The CPU's model name, the cores this process may use and its widest vector extension (Linux
    /proc/cpuinfo; the platform's processor name elsewhere). ONEDNN_MAX_CPU_ISA=AVX2 on an AVX-512 machine is
    reported as the AVX2 limit it imposes."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    named, flagged = re.search(r"model name\s*:\s*(.+)", info), re.search(r"flags\s*:\s*(.+)", info)
    name = named.group(1) if named else platform.processor() or platform.machine()
    flags = set(flagged.group(1).split()) if flagged else set()
    isa = next((label for flag, label in reversed(ISA_FLAGS) if flag in flags), "no AVX2" if info else "unknown")
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper().startswith("AVX2") and "avx512f" in flags:
        isa = "AVX2 (limited by ONEDNN_MAX_CPU_ISA)"
    return {"cpu": str(name).strip(), "cores": cpu_count(), "isa": isa}


def commit(source: Path | None = None) -> str | None:
    """The git commit of the source tree this package runs from (with `+changes` where files differ from it),
    or None outside a checkout."""
    root = source or Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "fmnist_tui"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+changes" if dirty else head


def now() -> str:
    """The time in UTC, ISO 8601 to the second (`2026-12-07T10:00:00Z`)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
