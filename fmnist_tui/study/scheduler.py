"""Runs a study's trainings as child processes, N at a time with cores/N torch threads each, and reports
launches, forwarded epoch lines and endings as events; Ctrl-C stops them all with their state saved.

Two single-threaded trainings on two cores can beat one two-threaded training, since small
convolutions scale poorly across threads (bench/experiment_speed.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..core.config import TrainConfig
from ..core.errors import ConfigError
from ..core.runs import Run, clear_unstarted
from .plan import DONE, RESTART, RESUME, status, train_command

#: child output lines worth forwarding to the parent's console
FORWARD = ("epoch ", "done:", "error:")


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


ExperimentEvent = Launched | Output | Ended


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

    def __init__(
        self,
        jobs: int,
        threads: int,
        log_dir: Path,
        on_event: Callable[[ExperimentEvent], None] | None = None,
        poll_s: float = 0.2,
    ) -> None:
        if jobs < 1:
            raise ConfigError("jobs", f"must be at least 1, got {jobs}")
        self.jobs, self.threads, self.log_dir, self.poll_s = jobs, threads, Path(log_dir), poll_s
        self.emit = on_event or (lambda event: None)
        self.running: list[_Child] = []

    def run(self, configs: list[TrainConfig], cost: dict[str, float] | None = None) -> Outcome:
        """Train every config that is not DONE, longest first (by `cost`, estimated seconds per run name, else
        by kernel size); returns when all ended, or after Ctrl-C stopped them."""
        outcome, t0 = Outcome(), time.perf_counter()
        todo: deque[tuple[TrainConfig, str]] = deque()
        for cfg in configs:
            st = status(cfg)
            (outcome.reused.append(cfg.run_name) if st == DONE else todo.append((cfg, st)))

        # longest first (without estimates: cost grows with the kernel; the mlp is cheapest), so no long run
        # starts last alone
        def longest(item: tuple[TrainConfig, str]) -> float:
            return -(cost[item[0].run_name] if cost and item[0].run_name in cost else item[0].kernel or 0)

        todo = deque(sorted(todo, key=longest))
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
            clear_unstarted(Run(cfg.run_dir))
        log = self.log_dir / f"{cfg.run_name}.log"
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(self.threads),
            "MKL_NUM_THREADS": str(self.threads),
            "COLUMNS": "160",
            "NO_COLOR": "1",
        }
        with open(log, "a") as fh:
            # a new session: the terminal's Ctrl-C reaches only us, and we forward exactly one SIGINT
            # (a second one would make `fmnist train` abort without saving its mid-epoch state)
            proc = subprocess.Popen(
                train_command(cfg, self.threads, st == RESUME),
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        reader = open(log)  # noqa: SIM115 - kept open while the child runs; closed when it is reaped
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
