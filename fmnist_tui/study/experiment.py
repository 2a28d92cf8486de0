"""The kernel-size experiment: plan the grid (arch × kernel × seed), train what is missing as parallel subprocesses.

Each training is an ordinary `fmnist train` run in the runs folder, so a finished run is reused, an
interrupted one resumed, and any other command (evaluate, export, report) can read it. Trainings run
as child processes, N at a time with cores/N torch threads each: two single-threaded trainings on two
cores can beat one two-threaded training, since small convolutions scale poorly across threads.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Union

from ..core.config import TrainConfig
from ..core.errors import FmnistError, RunError, UsageError
from ..core.registry import ARCHS
from .results import RECIPE_KEYS, Group, group_records, load_records
from ..core.runs import BEST, CONFIG, LAST, METRICS, STATE, Run

#: statuses of a planned run: reuse it, resume it, start it over (nothing resumable), or train it
DONE, RESUME, RESTART, NEW = "done", "resume", "restart", "new"
#: child output lines worth forwarding to the parent's console
FORWARD = ("epoch ", "done:", "error:")


def plan(archs: list[str], kernels: list[int], seeds: int, epochs: int, out: Path, subset: int | None = None,
         data_dir: Path | None = None, device: str = "auto") -> list[TrainConfig]:
    """The grid's training configs: every arch, every kernel it takes (of `kernels`), seeds 0..seeds−1."""
    if seeds < 1:
        raise UsageError(f"--seeds must be at least 1 (the number of seeds per config), got {seeds}")
    for arch in archs:
        if arch not in ARCHS:
            raise UsageError(f"unknown arch {arch!r} in --archs; valid: {', '.join(ARCHS)}")
    valid = sorted({k for ks in ARCHS.values() for k in ks})
    bad = [k for k in kernels if k not in valid]
    if bad or not kernels:
        raise UsageError(f"--kernels {','.join(map(str, bad)) or '(none)'} not valid; valid: {','.join(map(str, valid))}")
    if not archs:
        raise UsageError(f"--archs is empty; valid: {', '.join(ARCHS)}")
    configs = []
    for arch in dict.fromkeys(archs):
        for kernel in ([k for k in dict.fromkeys(kernels) if k in ARCHS[arch]] if ARCHS[arch] else [None]):
            for seed in range(seeds):
                configs.append(TrainConfig(arch=arch, kernel=kernel, epochs=epochs, seed=seed, subset=subset,
                                           out=str(out), data_dir=str(data_dir) if data_dir else None,
                                           device=device))
    return configs


def status(cfg: TrainConfig) -> str:
    """DONE, RESUME, RESTART or NEW for a planned run; RunError if the folder holds a different recipe."""
    run = Run(cfg.run_dir)
    if not run.file(CONFIG).exists():
        return NEW
    saved = run.config()
    wanted = cfg.to_dict()
    differ = [k for k in RECIPE_KEYS if str(saved.get(k)) != str(wanted.get(k))]
    if differ:
        diffs = ", ".join(f"{k} {saved.get(k)} ≠ {wanted.get(k)}" for k in differ)
        raise RunError(f"run {run.name!r} in {run.path.parent} has another recipe ({diffs}); pass another --runs "
                       f"folder for this experiment, or move that run away")
    if run.finished:
        return DONE
    return RESUME if run.file(STATE).exists() else RESTART


def clear_unresumable(run: Run) -> None:
    """A run stopped before it saved any state holds nothing to resume: remove its files so it can start over."""
    for name in (CONFIG, METRICS, LAST, BEST):
        run.file(name).unlink(missing_ok=True)


def train_command(cfg: TrainConfig, threads: int, resume: bool) -> list[str]:
    """The `fmnist train` command line of one planned run."""
    cmd = [sys.executable, "-m", "fmnist_tui", "train", "--out", cfg.out, "--name", cfg.run_name,
           "--threads", str(threads), "--device", cfg.device]
    if resume:
        return cmd + ["--resume"]
    cmd += ["--arch", cfg.arch, "--epochs", str(cfg.epochs), "--seed", str(cfg.seed)]
    if cfg.kernel:
        cmd += ["--kernel", str(cfg.kernel)]
    if cfg.subset:
        cmd += ["--subset", str(cfg.subset)]
    if cfg.data_dir:
        cmd += ["--data-dir", cfg.data_dir]
    return cmd


# --- events the scheduler reports (the CLI prints them) --------------------------------------------
@dataclass(frozen=True)
class Launched:
    name: str
    status: str
    index: int
    total: int
    threads: int


@dataclass(frozen=True)
class Output:
    name: str
    line: str


@dataclass(frozen=True)
class Ended:
    name: str
    returncode: int
    seconds: float
    log: Path


ExperimentEvent = Union[Launched, Output, Ended]


@dataclass
class _Child:
    name: str
    proc: subprocess.Popen
    log: Path
    reader: IO[str]
    started: float
    partial: str = ""


@dataclass
class Outcome:
    """What running the plan did: which runs trained, failed or were reused, and the wall time."""

    trained: list[str] = field(default_factory=list)
    failed: list[tuple[str, int, Path]] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    interrupted: bool = False
    wall_seconds: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)


class Scheduler:
    """Runs train commands, `jobs` at a time, each with its log file; Ctrl-C stops them all with state saved."""

    def __init__(self, jobs: int, threads: int, log_dir: Path,
                 on_event: Callable[[ExperimentEvent], None] | None = None, poll_s: float = 0.2) -> None:
        if jobs < 1:
            raise UsageError(f"--jobs must be at least 1, got {jobs}")
        self.jobs, self.threads, self.log_dir, self.poll_s = jobs, threads, Path(log_dir), poll_s
        self.emit = on_event or (lambda event: None)
        self.running: list[_Child] = []

    def run(self, configs: list[TrainConfig]) -> Outcome:
        """Train every config that is not DONE; returns when all ended, or after Ctrl-C stopped them."""
        outcome, t0 = Outcome(), time.perf_counter()
        todo: deque[tuple[TrainConfig, str]] = deque()
        for cfg in configs:
            st = status(cfg)
            (outcome.reused.append(cfg.run_name) if st == DONE else todo.append((cfg, st)))
        # longest first (cost grows with the kernel; the mlp is cheapest), so no long run starts last alone
        todo = deque(sorted(todo, key=lambda item: -(item[0].kernel or 0)))
        total, started = len(todo), 0
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            while todo or self.running:
                while todo and len(self.running) < self.jobs:
                    cfg, st = todo.popleft()
                    started += 1
                    self._start(cfg, st, started, total)
                self._reap(outcome)
                time.sleep(self.poll_s)
        except KeyboardInterrupt:
            self._stop_all(outcome)
        outcome.wall_seconds = time.perf_counter() - t0
        return outcome

    def _start(self, cfg: TrainConfig, st: str, index: int, total: int) -> None:
        if st == RESTART:
            clear_unresumable(Run(cfg.run_dir))
        log = self.log_dir / f"{cfg.run_name}.log"
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads),
               "COLUMNS": "160", "NO_COLOR": "1"}
        with open(log, "a") as fh:
            # a new session: the terminal's Ctrl-C reaches only us, and we forward exactly one SIGINT
            # (a second one would make `fmnist train` abort without saving its mid-epoch state)
            proc = subprocess.Popen(train_command(cfg, self.threads, st == RESUME), stdout=fh,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)
        reader = open(log)
        reader.seek(0, os.SEEK_END)
        self.running.append(_Child(cfg.run_name, proc, log, reader, time.perf_counter()))
        self.emit(Launched(cfg.run_name, st, index, total, self.threads))

    def _forward(self, child: _Child) -> None:
        """Pass the child's epoch and result lines on, as whole lines."""
        text = child.partial + child.reader.read()
        *lines, child.partial = text.split("\n")
        for line in lines:
            if line.strip().startswith(FORWARD):
                self.emit(Output(child.name, line.strip()))

    def _reap(self, outcome: Outcome) -> None:
        for child in list(self.running):
            self._forward(child)
            rc = child.proc.poll()
            if rc is None:
                continue
            self._forward(child)
            child.reader.close()
            self.running.remove(child)
            seconds = time.perf_counter() - child.started
            outcome.seconds[child.name] = seconds
            if rc == 0:
                outcome.trained.append(child.name)
            elif rc == 130:
                outcome.interrupted = True
            else:
                outcome.failed.append((child.name, rc, child.log))
            self.emit(Ended(child.name, rc, seconds, child.log))

    def _stop_all(self, outcome: Outcome, grace_s: float = 120.0) -> None:
        """Forward one SIGINT to each child and wait for it to save its state."""
        outcome.interrupted = True
        for child in self.running:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace_s
        for child in self.running:
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()  # it did not stop: its last completed epoch is still on disk
                child.proc.wait()
        self._reap(outcome)


def collect(configs: list[TrainConfig]) -> tuple[list[Group], list[str]]:
    """The finished planned runs, grouped by config, and warnings about planned runs that are not finished."""
    names = {c.run_name for c in configs}
    roots = sorted({c.out for c in configs})
    records, warnings = [], []
    for root in roots:
        recs, warns = load_records(Path(root))
        records += [r for r in recs if r.run.name in names]
        warnings += [w for w in warns if any(w.startswith(f"skipped {n}:") for n in names)]
    return group_records(records), warnings


def onnx_latency_ms(path: Path, repeats: int = 300) -> float:
    """Median onnxruntime latency (ms) of one image through an exported model, on one thread."""
    import numpy as np

    from ..inference.session import OnnxClassifier

    clf = OnnxClassifier(path, threads=1)  # one thread: batch-1 latency, steady while trainings run alongside
    x = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)
    for _ in range(30):  # warm-up: the first calls allocate buffers and pick kernels
        clf.predict_proba(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        clf.predict_proba(x)
        times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times))


def latencies(groups: list[Group], onnx_dir: Path, export_dir: Path | None = None,
              data_dir: Path | None = None) -> tuple[dict[str, float | None], list[str]]:
    """Latency per config, from `<onnx_dir>/<run>.onnx` of any of its runs (the architecture sets it, not the
    seed); without one, `export_dir` given, the config's lowest-seed run is exported there first."""
    found: dict[str, float | None] = {}
    warnings: list[str] = []
    dataset = None
    for g in groups:
        path = next((p for r in g.records for d in (onnx_dir, export_dir) if d
                     for p in [Path(d) / f"{r.run.name}.onnx"] if p.is_file()), None)
        try:
            if path is None and export_dir is not None:
                from ..core.data import load_dataset
                from ..deploy.export import export_run

                dataset = dataset or load_dataset(data_dir)
                run = min(g.records, key=lambda r: r.config.get("seed", 0)).run
                path = Path(export_run(run, Path(export_dir), dataset).path)
            found[g.label] = onnx_latency_ms(path) if path else None
        except FmnistError as exc:
            found[g.label] = None
            warnings.append(f"no latency for {g.label}: {exc}")
    return found, warnings


def write_results(study_doc: dict, markdown: str, csv_text: str, out: Path) -> list[Path]:
    """results.md, results.csv and results.json in `out` (atomic writes)."""
    from ..core.fsutil import write_json, write_text

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.md", out / "results.csv", out / "results.json"]
    write_text(paths[0], markdown)
    write_text(paths[1], csv_text)
    write_json(paths[2], study_doc)
    return paths
