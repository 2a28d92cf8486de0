"""Runs a study's trainings as Ray tasks (`fmnist study NAME --ray ADDRESS`): the executor beside the local
process pool of `scheduler.py`, with the same `run(configs, cost) -> Outcome` and the same events.

Each training is one Ray task that runs the very `fmnist train` command line the local pool runs (same run
folder, recipe checks and resume rules), as a child process of the Ray worker. The run folders live in
`--runs`, which every node must see at the same path (a shared filesystem): a task checks that it sees the
driver's marker file there, and says so in one line when it does not. A task decides on its node whether its
run is new, to resume or done, so a task retried after its node was lost resumes the run folder. Ctrl-C
writes a stop file beside the marker, which every task polls for: each forwards one SIGINT to its training,
which saves its state; tasks not started are cancelled; and the driver waits for every run's lock to be
released before it returns. Ray is the optional `[cluster]` extra (no torch here).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.config import TrainConfig
from ..core.errors import EXIT_INTERRUPTED, ConfigError, FmnistError, RunError
from ..core.fsutil import write_text
from ..core.runs import Run, RunLock, clear_unstarted
from .plan import DONE, RESTART, RESUME, status, train_command
from .scheduler import Ended, ExperimentEvent, Launched, Outcome

#: `--ray local`: a Ray instance started for this run (on this machine) and stopped after it
LOCAL = "local"
INSTALL_CLUSTER = "pip install 'fmnist-tui[cluster]'"
#: a task retried after its worker or node died (Ray's system failures; a training that fails is not retried)
RETRIES = 3
#: how long a stopped training may take to save its state, and a retried task waits for the lock of a training
#: its lost attempt left saving
GRACE_S = 150.0
#: the last lines of a training's output the task returns (the driver writes them to the study's logs)
LOG_LINES = 400
#: what a task returns when its node does not see the runs folder
NOT_SHARED = -2
#: the driver's environment the training processes get (the data search order's settings)
PASSED_ENV = ("FMNIST_DATA", "FMNIST_VERIFY")


class ClusterError(FmnistError):
    """Ray cannot be used: not installed, no cluster at the address, or a node without the runs folder."""


@dataclass(frozen=True)
class TaskResult:
    """What one task did: the training's exit code (0, 130 stopped, NOT_SHARED), time, node, output tail."""

    name: str
    returncode: int
    seconds: float
    node: str
    output: str
    reused: bool = False


@dataclass(frozen=True)
class Finished:
    """A training ended on a node (the Ray executor's event; `Ended` follows it)."""

    name: str
    node: str
    done: int
    total: int


def marker_name(token: str) -> str:
    return f".fmnist-ray-{token}"


def stop_name(marker: str) -> str:
    """The file the driver writes beside its marker when Ctrl-C stops the study: every task polls for it (a
    cancellation alone may not reach a task whose worker ignores SIGINT, or one not started yet)."""
    return f"{marker}.stop"


# --- the task (runs on a worker node) -----------------------------------------------------------------
def train_task(cfg: TrainConfig, threads: int, marker: str, env: dict[str, str]) -> TaskResult:
    """One training, as `fmnist train` runs it, in the runs folder every node shares."""
    node, t0 = socket.gethostname(), time.perf_counter()
    if not (Path(cfg.out) / marker).exists():
        return TaskResult(cfg.run_name, NOT_SHARED, 0.0, node, "")
    stop_file = Path(cfg.out) / stop_name(marker)
    if stop_file.exists():  # the study was stopped before this task started
        return TaskResult(cfg.run_name, EXIT_INTERRUPTED, 0.0, node, "")
    if threading.current_thread() is threading.main_thread():  # a worker started with SIGINT ignored
        signal.signal(signal.SIGINT, signal.default_int_handler)  # still turns ray.cancel into KeyboardInterrupt
    st = status(cfg)  # here, not on the driver: a retry after a lost node finds the state its first try saved
    if st == DONE:
        return TaskResult(cfg.run_name, 0, 0.0, node, "", reused=True)
    run = Run(cfg.run_dir)
    wait_unlocked(run, GRACE_S)
    if st == RESTART:
        clear_unstarted(run)
    child_env = {**os.environ, **env, "OMP_NUM_THREADS": str(threads), "COLUMNS": "160", "NO_COLOR": "1"}
    proc = subprocess.Popen(
        train_command(cfg, threads, st == RESUME),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=child_env,
        start_new_session=True,  # the signals the worker gets do not reach it; we forward exactly one SIGINT
        preexec_fn=_child_setup,
    )
    lines: deque[str] = deque(maxlen=LOG_LINES)
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    stopped = False
    while proc.poll() is None:  # polled, not a blocking wait: a stop is noticed within 0.2 s
        try:
            time.sleep(0.2)
            stop = stop_file.exists()
        except KeyboardInterrupt:  # ray.cancel (or a Ctrl-C that reached the worker)
            stop = True
        if stop and not stopped:  # exactly one SIGINT: the training saves its state and exits 130
            stopped = True
            proc.send_signal(signal.SIGINT)
    reader.join(5)
    return TaskResult(cfg.run_name, proc.returncode, time.perf_counter() - t0, node, "".join(lines))


def _child_setup() -> None:
    """In the training's process, before it starts: no blocked signals (a Ray worker blocks SIGINT, and a
    child inherits the mask, which would make the training deaf to the one SIGINT we forward), and a SIGINT
    (save and stop) when the worker that started it dies."""
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGINT)


def wait_unlocked(run: Run, timeout_s: float) -> bool:
    """Wait until no process holds the run's lock (a stopped training saving its state); True if free."""
    if not run.path.exists():
        return True
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with RunLock(run):
                return True
        except RunError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)


# --- the driver -------------------------------------------------------------------------------------
def import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise ClusterError(f"--ray needs Ray, which is not installed; install it with {INSTALL_CLUSTER}") from None
    return ray


class RayExecutor:
    """Trains the plan's configs as Ray tasks of `task_cpus` CPUs (and `task_gpus` of a GPU for CUDA runs)."""

    def __init__(
        self,
        address: str,
        task_cpus: int,
        log_dir: Path,
        on_event: Callable[[ExperimentEvent | Finished], None] | None = None,
        task_gpus: float = 0.0,
        poll_s: float = 0.5,
    ) -> None:
        if task_cpus < 1:
            raise ConfigError("task_cpus", f"must be at least 1, got {task_cpus}")
        if not 0 <= task_gpus <= 1:
            raise ConfigError("task_gpus", f"must be between 0 and 1, got {task_gpus}")
        self.address, self.task_cpus, self.task_gpus = address, task_cpus, task_gpus
        self.log_dir, self.poll_s = Path(log_dir), poll_s
        self.emit = on_event or (lambda event: None)
        self.nodes: dict[str, str] = {}  # run name → the node that trained it

    def _connect(self, ray: Any) -> bool:
        """Join the cluster (or start a local instance); True if this call started Ray (and must stop it)."""
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
        try:
            if self.address == LOCAL:
                ray.init(include_dashboard=False, **kwargs)
            else:
                ray.init(address=self.address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ClusterError(
                f"cannot connect to a Ray cluster at {self.address!r} ({first}); start one with `ray start --head`, "
                f"or use --ray local"
            ) from None
        return True

    def run(self, configs: list[TrainConfig], cost: dict[str, float] | None = None) -> Outcome:
        """Train every config that is not DONE (longest first by `cost`); returns when all ended, or after
        Ctrl-C stopped them with their state saved."""
        ray = import_ray()
        outcome, t0 = Outcome(), time.perf_counter()
        todo = []
        for cfg in configs:
            (outcome.reused.append(cfg.run_name) if status(cfg) == DONE else todo.append(cfg))
        todo.sort(key=lambda c: -(cost or {}).get(c.run_name, c.kernel or 0))
        if not todo:
            outcome.wall_seconds = time.perf_counter() - t0
            return outcome
        runs = {Path(c.out).resolve() for c in todo}
        token = uuid.uuid4().hex[:12]
        for folder in runs:  # the marker a task must see: the same folder, not another of the same path
            folder.mkdir(parents=True, exist_ok=True)
            write_text(folder / marker_name(token), f"{os.getpid()} {socket.gethostname()}\n")
        started = self._connect(ray)
        try:
            self._run(ray, todo, token, outcome)
        finally:
            for folder in runs:
                (folder / marker_name(token)).unlink(missing_ok=True)
                (folder / stop_name(marker_name(token))).unlink(missing_ok=True)
            if started:
                ray.shutdown()
        outcome.wall_seconds = time.perf_counter() - t0
        return outcome

    def _run(self, ray: Any, todo: list[TrainConfig], token: str, outcome: Outcome) -> None:
        gpus = self.task_gpus if any(c.device == "cuda" for c in todo) else 0.0
        task = ray.remote(max_retries=RETRIES, retry_exceptions=False)(train_task)
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        pending: dict[Any, TrainConfig] = {}
        for i, cfg in enumerate(todo, 1):
            cfg = cfg.with_changes(out=str(Path(cfg.out).resolve()))
            ref = task.options(num_cpus=self.task_cpus, num_gpus=gpus, name=cfg.run_name).remote(
                cfg, self.task_cpus, marker_name(token), env
            )
            pending[ref] = cfg
            self.emit(Launched(cfg.run_name, "submitted", i, len(todo), self.task_cpus))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        done = 0
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=self.poll_s)
                for ref in ready:
                    cfg = pending.pop(ref)
                    done += 1
                    self._ended(ray, ref, cfg, outcome, done, len(todo))
        except KeyboardInterrupt:
            self._stop_all(ray, pending, token, outcome)
        except ClusterError:
            self._stop_all(ray, pending, token, outcome)
            raise

    def _ended(self, ray: Any, ref: Any, cfg: TrainConfig, outcome: Outcome, done: int, total: int) -> None:
        log = self.log_dir / f"{cfg.run_name}.log"
        try:
            res: TaskResult = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            outcome.interrupted = True
            return
        except ray.exceptions.RayError as exc:  # the task failed for good (retries spent)
            write_text(log, f"{exc}\n")
            outcome.failed.append((cfg.run_name, 1, log))
            self.emit(Ended(cfg.run_name, 1, 0.0, log))
            return
        if res.returncode == NOT_SHARED:
            raise ClusterError(
                f"node {res.node} does not see the runs folder {cfg.out}: --runs must be a folder every node "
                f"mounts at the same path (a shared filesystem such as NFS)"
            )
        if res.reused:  # finished meanwhile (by another driver, or a first attempt that ended before its node)
            outcome.reused.append(cfg.run_name)
            return
        write_text(log, res.output)
        self.nodes[cfg.run_name] = res.node
        outcome.seconds[cfg.run_name] = res.seconds
        if res.returncode == 0:
            outcome.trained.append(cfg.run_name)
        elif res.returncode == EXIT_INTERRUPTED:
            outcome.interrupted = True
        else:
            outcome.failed.append((cfg.run_name, res.returncode, log))
        self.emit(Finished(cfg.run_name, res.node, done, total))
        self.emit(Ended(cfg.run_name, res.returncode, res.seconds, log))

    def _stop_all(self, ray: Any, pending: dict[Any, TrainConfig], token: str, outcome: Outcome) -> None:
        """Stop every task left: the stop file tells each running one to stop its training, which saves its
        state, and the cancellation drops those not started. Then wait until no run of theirs is locked any
        more (the runs folder is shared, so the driver can see)."""
        outcome.interrupted = True
        for folder in {Path(c.out).resolve() for c in pending.values()}:
            write_text(folder / stop_name(marker_name(token)), "stop\n")
        for ref in pending:
            with contextlib.suppress(Exception):  # a task that already ended cannot be cancelled
                ray.cancel(ref)
        deadline = time.monotonic() + GRACE_S
        time.sleep(min(1.0, self.poll_s * 2))  # the cancelled tasks' trainings take the signal and start saving
        for cfg in pending.values():
            wait_unlocked(Run(Path(cfg.out).resolve() / cfg.run_name), max(0.1, deadline - time.monotonic()))
