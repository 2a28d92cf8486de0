"""The image files a command line names (files, folders, globs), and a pool of forked processes to decode them."""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .. import cpu_count
from .preprocess import IMAGE_SUFFIXES, ImageError, preprocess

if TYPE_CHECKING:
    from multiprocessing.connection import Connection


def _image_files(folder: Path) -> list[str]:
    """The entries under `folder` named as images (recursively, not into linked folders), sorted as paths.

    Every one, regular file or not: a FIFO, a device, a socket or a broken link named `x.png` is
    listed too, and the reader names it with the reason it is refused (without opening it)."""
    found: list[str] = []
    for root, _, names in os.walk(folder):
        found.extend(os.path.join(root, n) for n in names if os.path.splitext(n)[1].lower() in IMAGE_SUFFIXES)
    return sorted(found, key=lambda f: f.split(os.sep))


def expand_inputs(args: list[str]) -> Iterator[tuple[str, str | None]]:
    """(path, None) for each image file the arguments name, or (argument, reason) when one names nothing.

    Files are taken as given; folders are searched recursively for image suffixes; globs are expanded."""
    seen: set[str] = set()

    def emit(path: str) -> Iterator[tuple[str, str | None]]:
        if path not in seen:
            seen.add(path)
            yield path, None

    for arg in args:
        path = Path(arg)
        if path.is_dir():
            files = _image_files(path)
            if not files:
                yield arg, f"folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})"
            for f in files:
                yield from emit(f)
        elif path.exists() or not any(c in arg for c in "*?["):
            yield from emit(arg)  # a missing file is reported by the reader, with the reason
        else:
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                yield arg, "no file matches this pattern"
            for m in matches:
                yield from (expand_inputs([m]) if Path(m).is_dir() else emit(m))


#: (path, model input, None) for a file that worked, (path, None, reason) for one that did not.
Prepared = tuple[str, np.ndarray | None, str | None]
#: Files a helper process sends back at a time.
CHUNK = 32


def _prepare(path: str) -> Prepared:
    try:
        return path, preprocess(path), None
    except ImageError as exc:
        return path, None, str(exc)


def _helper(paths: list[str], start: int, conn: Connection) -> None:
    """A forked helper process: preprocess its share of the files, sending (position, results) per chunk."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: no traceback per helper
    try:
        for lo in range(0, len(paths), CHUNK):
            conn.send((start + lo, [_prepare(p) for p in paths[lo : lo + CHUNK]]))
        conn.close()
    except BaseException:  # noqa: BLE001 - the parent redoes the rest of the share and reports any error itself
        os._exit(1)


def default_workers() -> int:
    """Processes for many files: one per core this process may use, at most 8."""
    return max(1, min(cpu_count(), 8))


def _total_bytes(paths: list[str], enough: int) -> int:
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):  # reported with its reason when the file is read
            total += os.stat(path).st_size
        if total >= enough:
            break
    return total


class FilePreprocessor:
    """Preprocess many files, split over this process and forked helper processes.

    The files are cut into one contiguous share per process: this process does the first share
    and, between its own files, takes in the chunks the helpers send back, so that the caller can
    classify them meanwhile. Helpers start only when the work pays for them: many files, or many
    bytes to decode (photos). A helper that dies has the rest of its share done here.
    Use as a context manager, entered BEFORE any thread starts (an onnxruntime session has a
    thread pool): the helpers are forked, which is only safe from a single-threaded process."""

    #: Split the work only for at least this many files...
    MIN_FILES = 256
    #: ...or this many bytes in all (photos: decoding dominates).
    MIN_BYTES = 4 * 1024 * 1024
    #: Own files done between two looks at the helpers' pipes.
    POLL_EVERY = 8

    def __init__(self, paths: list[str], workers: int | None = None) -> None:
        import multiprocessing

        workers = min(default_workers() if workers is None else workers, len(paths))
        self.paths = paths
        self.own = len(paths)
        #: receiving end → [next position expected, end of the share, process]
        self.helpers: dict[Connection, list[Any]] = {}
        if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
            return
        if len(paths) < self.MIN_FILES and _total_bytes(paths, self.MIN_BYTES) < self.MIN_BYTES:
            return
        context = multiprocessing.get_context("fork")
        bounds = [round(i * len(paths) / workers) for i in range(workers + 1)]
        self.own = bounds[1]
        for lo, hi in itertools.pairwise(bounds[1:]):  # the first share is this process's own
            receiving, sending = context.Pipe(duplex=False)
            process = context.Process(target=_helper, args=(paths[lo:hi], lo, sending), daemon=True)
            process.start()
            sending.close()
            self.helpers[receiving] = [lo, hi, process]

    def __enter__(self) -> FilePreprocessor:
        return self

    def __exit__(self, *exc: object) -> None:
        for receiving, (_, _, process) in self.helpers.items():
            receiving.close()
            if process.is_alive():
                process.terminate()  # an early stop (Ctrl-C, an error): nothing is left running
            process.join()
        self.helpers.clear()

    def __iter__(self) -> Iterator[tuple[int, Prepared]]:
        """(position in `paths`, (path, input, None) or (path, None, reason)) for every file.

        In order when there are no helpers; otherwise in the order the work gets done."""
        for position in range(self.own):
            yield position, _prepare(self.paths[position])
            if self.helpers and position % self.POLL_EVERY == self.POLL_EVERY - 1:
                yield from self._collect(block=False)
        while self.helpers:
            yield from self._collect(block=True)

    def _collect(self, block: bool) -> Iterator[tuple[int, Prepared]]:
        from multiprocessing.connection import wait

        ready = wait(list(self.helpers), timeout=None if block else 0)
        for receiving in cast("list[Connection]", ready):  # wait() returns some of the connections it was given
            share = self.helpers[receiving]
            try:
                start, done = receiving.recv()
            except (EOFError, OSError):  # finished, or died (killed, out of memory): do the rest here
                receiving.close()
                share[2].join()
                del self.helpers[receiving]
                for position in range(share[0], share[1]):
                    yield position, _prepare(self.paths[position])
                continue
            share[0] = start + len(done)
            yield from enumerate(done, start)
