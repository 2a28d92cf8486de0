"""Run folders (checkpoints/<run>/): their files, finding them and reading them (no torch)."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RunError, ref
from .fsutil import write_text

CONFIG, METRICS, SUMMARY = "config.json", "metrics.csv", "summary.json"
BEST, LAST, STATE = "best.safetensors", "last.safetensors", "train_state.pt"
#: the best weights evaluated on shifted test sets (and their equivariance), a cache `evaluate --shift` and the
#: translation study write and read again while best.safetensors is unchanged
SHIFTS = "shift.json"
METRIC_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s")
DEFAULT_ROOT = Path("checkpoints")
#: What to do with a run whose files cannot be used any more
RETRAIN = f"delete its folder to train it again, or choose another {ref('name')}"


@dataclass(frozen=True)
class Run:
    """A run folder on disk."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def finished(self) -> bool:
        """True when summary.json exists and says so."""
        try:
            return bool(self.summary().get("finished"))
        except RunError:
            return False

    def config(self) -> dict[str, Any]:
        """config.json as a dict."""
        return _read_json(self.file(CONFIG), "config")

    def summary(self) -> dict[str, Any]:
        """summary.json as a dict."""
        return _read_json(self.file(SUMMARY), "summary")

    def metrics(self) -> list[dict[str, float]]:
        """metrics.csv rows with numeric values (empty if there is none yet)."""
        path = self.file(METRICS)
        if not path.exists():
            return []
        try:
            with open(path, newline="") as fh:
                rows = [
                    {k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if k in METRIC_COLUMNS}
                    for row in csv.DictReader(fh)
                ]
        except (OSError, ValueError, TypeError, csv.Error, UnicodeDecodeError) as exc:
            raise RunError(f"{path}: the metrics file is corrupted ({type(exc).__name__}: {exc}); {RETRAIN}") from None
        if any(set(row) != set(METRIC_COLUMNS) for row in rows):
            raise RunError(
                f"{path}: the metrics file lacks some of its columns ({', '.join(METRIC_COLUMNS)}); {RETRAIN}"
            )
        return rows


LOCK = ".lock"


def is_debris(name: str) -> bool:
    """A file an interrupted fmnist may leave in a run folder that holds nothing: its lock file, or an atomic
    write's temporary file (`.<name>.<random>.tmp`) that was never renamed into place."""
    return name == LOCK or (name.startswith(".") and name.endswith(".tmp"))


def holds_nothing(run: Run) -> bool:
    """True when the folder is missing or holds only debris (a kill during the first write leaves that)."""
    return not run.path.is_dir() or all(is_debris(p.name) for p in run.path.iterdir())


def clear_debris(run: Run) -> None:
    """Remove the temporary files of writes a kill cut short (call it holding the run's lock)."""
    if run.path.is_dir():
        for path in run.path.iterdir():
            if path.name != LOCK and is_debris(path.name):
                path.unlink(missing_ok=True)


def clear_unstarted(run: Run) -> None:
    """Remove what a run stopped before its first saved state holds (nothing to resume), so it can start over."""
    for name in (CONFIG, METRICS, LAST, BEST, SUMMARY):
        run.file(name).unlink(missing_ok=True)
    clear_debris(run)


class RunBusy(RunError):
    """Another process holds the run's lock (`holder`: its PID): it is training that run now."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


class RunLock:
    """Holds a run folder for this process while it trains: an OS file lock (flock), so it dies with the
    process and a killed training never leaves a stale lock. A second process gets a RunError naming the
    holder's PID. Use as a context manager, or acquire() and release()."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.fd: int | None = None

    def acquire(self) -> None:
        run = self.run
        run.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(run.file(LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunBusy(
                f"run {run.name!r} in {run.path.parent} is being trained by another process (PID {holder}); "
                f"wait for it to finish, or choose another {ref('name')}",
                holder,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        """Idempotent; closing the descriptor releases the lock."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.exists():
        raise RunError(f"{path}: no {what} file; the run is incomplete (train it, or resume it with {ref('resume')})")
    try:
        data = json.loads(path.read_text())
    except RecursionError:  # a hostile file nested thousands of levels deep
        raise RunError(f"{path}: the {what} file is corrupted (nested too deeply); {RETRAIN}") from None
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: the {what} file is corrupted ({exc}); {RETRAIN}") from exc
    if not isinstance(data, dict):
        raise RunError(f"{path}: the {what} file is corrupted (not a JSON object); {RETRAIN}")
    return data


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write metrics.csv atomically, one row per epoch."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in METRIC_COLUMNS})
    write_text(path, buf.getvalue())


def resolve_run(ref: str | Path, root: Path = DEFAULT_ROOT) -> Run:
    """A run from a folder path or a name under `root`; RunError names the known runs if unknown."""
    candidates = [Path(ref), Path(root) / str(ref)]
    for path in candidates:
        if path.is_dir() and (path / CONFIG).exists():
            return Run(path)
    known = [r.name for r in list_runs(root)]
    hint = (
        f"known runs in {root}: {', '.join(known)}" if known else f"{root} holds no runs; train one with `fmnist train`"
    )
    raise RunError(f"unknown run {str(ref)!r}; {hint}")


def list_runs(root: Path = DEFAULT_ROOT) -> list[Run]:
    """Every folder under `root` that has a config.json, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted((Run(p) for p in root.iterdir() if (p / CONFIG).is_file()), key=lambda r: r.name)
