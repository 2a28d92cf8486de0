"""Runs a plan's trainings: in worker processes of this machine (`concurrent.futures`, `--jobs N`) or as tasks on
a Ray cluster (`--ray ADDRESS`).

Every training calls the training library with `resume=AUTO`: under the run's lock, the run folder decides whether
it is trained, resumed or already done, as `fmnist train` decides, so two studies given one runs folder never
race, and a run another process is training is skipped and named. A worker keeps torch and the dataset loaded
from one training to the next. Ctrl-C, SIGTERM and SIGHUP stop every training at its next batch with its state
saved and cancel those not started; a second one abandons them (each keeps its last saved state). A Ray task
lost with its node is retried and resumes the run. Nothing here imports torch: the workers do.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import signal
import socket
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Any

from .. import cpu_count
from ..core.config import TrainConfig
from ..core.errors import FmnistError
from ..core.fsutil import write_text
from ..core.runs import Run, RunBusy

#: what became of one planned training
TRAINED, REUSED, BUSY, INTERRUPTED, FAILED = "trained", "reused", "busy", "interrupted", "failed"


@dataclass(frozen=True)
class Task:
    """One planned training, and the study's work on the finished run (`"module:function"`, called with
    `([run], data_dir, device)`, returning warnings), done where the run lacks it."""

    cfg: TrainConfig
    work: str = ""
    needs_work: bool = False


@dataclass(frozen=True)
class Ran:
    """What a task did: TRAINED, REUSED, BUSY, INTERRUPTED or FAILED (with why), in how many seconds, where."""

    name: str
    result: str
    seconds: float = 0.0
    detail: str = ""
    node: str = ""
    warnings: tuple[str, ...] = ()
    test_accuracy: float | None = None


@dataclass(frozen=True)
class EpochDone:
    """A training in a worker ended an epoch (progress for the bar over the plan)."""

    name: str
    epoch: int
    epochs: int


@dataclass
class Outcome:
    """Every task's `Ran`, the wall time, and whether a signal stopped the plan."""

    ran: list[Ran] = field(default_factory=list)
    wall_seconds: float = 0.0
    interrupted: bool = False

    def named(self, result: str) -> list[str]:
        return [r.name for r in self.ran if r.result == result]

    @property
    def failed(self) -> list[Ran]:
        return [r for r in self.ran if r.result == FAILED]

    @property
    def seconds(self) -> dict[str, float]:
        return {r.name: r.seconds for r in self.ran if r.result == TRAINED}


# --- one training, in a worker ----------------------------------------------------------------------
_datasets: dict[str | None, Any] = {}  # a worker's loaded datasets, by data_dir: loaded once, used by every task


def execute(
    task: Task, threads: int, should_stop: Callable[[], bool], on_epoch: Callable[[EpochDone], None] | None = None
) -> Ran:
    """Train (or resume, or find done) one run in this process, then the study's work on it; never raises for a
    user's problem (it is the Ran's detail)."""
    from ..core.events import EpochEnd
    from ..training.trainer import AUTO, train

    cfg, t0, node = task.cfg.with_changes(threads=threads), time.perf_counter(), socket.gethostname()

    def seen(event: object) -> None:
        if on_epoch and isinstance(event, EpochEnd):
            on_epoch(EpochDone(cfg.run_name, event.epoch, event.epochs))

    if should_stop():  # stopped before this training began: its folder is left as it is
        return Ran(cfg.run_name, INTERRUPTED, node=node)
    try:
        if cfg.data_dir not in _datasets:
            from ..core.data import load_dataset

            _datasets[cfg.data_dir] = load_dataset(Path(cfg.data_dir) if cfg.data_dir else None)
        result = train(cfg, seen, should_stop, resume=AUTO, dataset=_datasets[cfg.data_dir])
        if result.interrupted:
            return Ran(cfg.run_name, INTERRUPTED, time.perf_counter() - t0, node=node)
        warnings = _work(task, cfg) if task.work and (task.needs_work or not result.reused) else []
    except RunBusy as exc:
        detail = f"another process (PID {exc.holder}) is training it; run the study again once that has finished"
        return Ran(cfg.run_name, BUSY, 0.0, detail, node)
    except FmnistError as exc:
        return Ran(cfg.run_name, FAILED, time.perf_counter() - t0, str(exc), node)
    summary = result.summary or {}
    seconds = 0.0 if result.reused else time.perf_counter() - t0
    return Ran(
        cfg.run_name,
        REUSED if result.reused else TRAINED,
        seconds,
        node=node,
        warnings=tuple(warnings),
        test_accuracy=summary.get("test_accuracy"),
    )


def _work(task: Task, cfg: TrainConfig) -> list[str]:
    module, _, function = task.work.partition(":")
    done: list[str] = getattr(importlib.import_module(module), function)([Run(cfg.run_dir)], cfg.data_dir, cfg.device)
    return done


# --- the local pool -------------------------------------------------------------------------------------
_stop: Any = None  # the pool's stop event, in each worker
_progress: Any = None  # the queue a worker reports epochs on
_parent = 0  # the driver's PID: a worker whose driver died (SIGKILL) stops as if told to


def _worker_start(stop: Any, progress: Any, threads: int, parent: int) -> None:
    """A worker's set-up, before torch loads: its thread count, the plan's stop event and progress queue; the
    terminal's signals are the driver's to handle (it tells every worker through the event)."""
    global _stop, _progress, _parent
    _stop, _progress, _parent = stop, progress, parent
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())


def _pool_task(task: Task, threads: int) -> Ran:
    ran = execute(task, threads, lambda: _stop.is_set() or os.getppid() != _parent, _progress.put)
    if os.getppid() != _parent:  # the driver died: nobody waits for this worker, nor will send it more work
        os._exit(0)
    return ran


def default_jobs(runs: int) -> int:
    """Trainings at once by default: two where there are two cores or more (small convolutions scale poorly
    across threads, so two single-threaded trainings beat one with two threads: bench/runner_speed.py)."""
    return max(1, min(2, cpu_count(), runs))


@contextlib.contextmanager
def _signals(on_signal: Callable[[], None]) -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP call `on_signal` while the plan runs (the handlers before are restored)."""
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {s: signal.getsignal(s) for s in sigs}
    for s in sigs:
        signal.signal(s, lambda *_: on_signal())
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


class LocalRunner:
    """`jobs` worker processes of `threads` torch threads each; `on_event` gets each `Ran` and `EpochDone`."""

    def __init__(self, jobs: int, threads: int, on_event: Callable[[Ran | EpochDone], None] | None = None) -> None:
        self.jobs, self.threads = jobs, threads
        self.emit = on_event or (lambda event: None)

    def run(self, tasks: list[Task], log_dir: Path) -> Outcome:
        """Run every task (longest first: the order given); returns when all ended or a signal stopped them."""
        outcome, t0 = Outcome(), time.perf_counter()
        if not tasks:
            return outcome
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited threads or torch state
        hangup = signal.signal(signal.SIGHUP, signal.SIG_IGN)
        try:  # the helper that tracks the pool's semaphores must outlive a closed terminal's SIGHUP to the group
            resource_tracker.ensure_running()
        finally:
            signal.signal(signal.SIGHUP, hangup)
        stop, progress = ctx.Event(), ctx.SimpleQueue()
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            outcome.interrupted = True
            stop.set()

        pool = ProcessPoolExecutor(
            min(self.jobs, len(tasks)), ctx, _worker_start, (stop, progress, self.threads, os.getpid())
        )
        with _signals(on_signal):
            futures: dict[Future[Ran], Task] = {pool.submit(_pool_task, t, self.threads): t for t in tasks}
            pending = set(futures)
            while pending and signals < 2:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                while not progress.empty():
                    self.emit(progress.get())
                for future in done:
                    self._ended(future, futures[future], outcome, log_dir)
                if stop.is_set():
                    for future in pending:
                        future.cancel()
                    pending = {f for f in pending if not f.cancelled()}
            if pending:  # a second signal: abandon the trainings (each keeps its last saved state)
                for proc in list(getattr(pool, "_processes", {}).values()):
                    with contextlib.suppress(OSError):
                        proc.kill()
            pool.shutdown(wait=True, cancel_futures=True)
        outcome.wall_seconds = time.perf_counter() - t0
        return outcome

    def _ended(self, future: Future[Ran], task: Task, outcome: Outcome, log_dir: Path) -> None:
        if future.cancelled():
            return
        try:
            ran = future.result()
        except Exception as exc:  # noqa: BLE001 - a bug or a dead worker: that training failed, the plan goes on
            ran = failure(task, exc, log_dir)
        outcome.ran.append(ran)
        if ran.result == INTERRUPTED:
            outcome.interrupted = True
        self.emit(ran)


def failure(task: Task, exc: BaseException, log_dir: Path) -> Ran:
    """A training that raised what no user causes: its traceback in `log_dir`/<run>.log, named in the Ran."""
    log = log_dir / f"{task.cfg.run_name}.log"
    with contextlib.suppress(OSError):
        log_dir.mkdir(parents=True, exist_ok=True)
        write_text(log, "".join(traceback.format_exception(exc)))
    return Ran(task.cfg.run_name, FAILED, 0.0, f"{type(exc).__name__}: {exc} (traceback in {log})")


# --- a Ray cluster --------------------------------------------------------------------------------------
#: `--ray local`: a Ray instance started for this plan, on this machine, and stopped after it
LOCAL = "local"
INSTALL_CLUSTER = "pip install 'fmnist-tui[cluster]'"
#: times a task is retried after its worker or node died (a training that fails is not retried)
RETRIES = 3
#: how long a stopped plan waits for its trainings to save their state
GRACE_S = 150.0
#: what a task returns when its node does not see the runs folder
NOT_SHARED = "not shared"
#: the driver's settings the trainings get (the dataset search order's)
PASSED_ENV = ("FMNIST_DATA", "FMNIST_VERIFY")


class ClusterError(FmnistError):
    """Ray cannot be used: not installed, no cluster at the address, a task no node can place, or a node without
    the runs folder."""


def _ray_task(task: Task, threads: int, marker: str, env: dict[str, str]) -> Ran:
    """One training as a Ray task, in the runs folder every node shares; it stops when the driver's stop file
    appears (checked at most once a second)."""
    runs = Path(task.cfg.out)
    if not (runs / marker).exists():
        return Ran(task.cfg.run_name, NOT_SHARED, node=socket.gethostname())
    os.environ.update(env)
    stop_file, checked = runs / f"{marker}.stop", [0.0, False]

    def should_stop() -> bool:
        now = time.monotonic()
        if now - checked[0] > 1.0:
            checked[:] = [now, stop_file.exists()]
        return bool(checked[1])

    return execute(task, threads, should_stop)


def import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise ClusterError(f"--ray needs Ray, which is not installed; install it with {INSTALL_CLUSTER}") from None
    return ray


def _reachable(address: str) -> None:
    """A ClusterError within seconds where nothing listens at host:port (Ray itself would wait for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as exc:
        raise ClusterError(
            f"no Ray cluster answers at {address!r} ({exc.strerror or exc}); start one with `ray start --head`, "
            f"or use --ray {LOCAL}"
        ) from None


class RayRunner:
    """Each task a Ray task of `task_cpus` CPUs (and `task_gpus` of a GPU where the cluster has GPUs)."""

    def __init__(
        self,
        address: str,
        task_cpus: int,
        task_gpus: float = 0.0,
        on_event: Callable[[Ran | EpochDone], None] | None = None,
    ) -> None:
        self.address, self.task_cpus, self.task_gpus = address, task_cpus, task_gpus
        self.emit = on_event or (lambda event: None)

    def _connect(self, ray: Any) -> bool:
        """Join the cluster (or start a local instance, without usage statistics); True if this call started Ray."""
        if self.address != LOCAL:
            _reachable(self.address)
        if ray.is_initialized():
            return False
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
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
                f"or use --ray {LOCAL}"
            ) from None
        return True

    def _gpus(self, ray: Any, tasks: list[Task]) -> float:
        """The GPU share each task reserves; ClusterError where no node could place a task (too many CPUs, or
        --device cuda on a cluster without GPUs), which Ray would leave waiting for ever."""
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        most = max((float(n.get("CPU", 0)) for n in nodes), default=0.0)
        if self.task_cpus > most:
            raise ClusterError(
                f"--task-cpus {self.task_cpus}: no node of the Ray cluster has that many CPUs (the most: {most:g}); "
                "lower --task-cpus"
            )
        devices = {t.cfg.device for t in tasks}
        has_gpus = any(float(n.get("GPU", 0)) > 0 for n in nodes)
        if "cuda" in devices and not has_gpus:
            raise ClusterError(
                f"--device cuda, but the Ray cluster at {self.address!r} has no GPU; add GPU nodes, or use "
                "--device cpu (or auto)"
            )
        return self.task_gpus if has_gpus and devices & {"cuda", "auto"} else 0.0

    def run(self, tasks: list[Task], log_dir: Path) -> Outcome:
        """Run every task on the cluster; returns when all ended, or after a signal stopped them."""
        outcome, t0 = Outcome(), time.perf_counter()
        if not tasks:
            return outcome
        ray = import_ray()
        started = self._connect(ray)
        folders = {Path(t.cfg.out).resolve() for t in tasks}
        marker = f".fmnist-ray-{uuid.uuid4().hex[:12]}"
        try:
            gpus = self._gpus(ray, tasks)
            for folder in folders:  # the file a task must see: the same folder, not another of the same path
                folder.mkdir(parents=True, exist_ok=True)
                write_text(folder / marker, f"{os.getpid()} {socket.gethostname()}\n")
            self._run(ray, tasks, gpus, marker, outcome, log_dir)
        finally:
            for folder in folders:
                (folder / marker).unlink(missing_ok=True)
                (folder / f"{marker}.stop").unlink(missing_ok=True)
            if started:
                ray.shutdown()
        outcome.wall_seconds = time.perf_counter() - t0
        return outcome

    def _run(self, ray: Any, tasks: list[Task], gpus: float, marker: str, outcome: Outcome, log_dir: Path) -> None:
        remote = ray.remote(max_retries=RETRIES, retry_exceptions=False)(_ray_task)
        tasks = [replace(t, cfg=_absolute(t.cfg)) for t in tasks]  # a worker's working directory is not ours
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        pending = {
            remote.options(num_cpus=self.task_cpus, num_gpus=gpus, name=t.cfg.run_name).remote(
                t, self.task_cpus, marker, env
            ): t
            for t in tasks
        }
        deadline = None

        def on_signal() -> None:
            nonlocal deadline
            outcome.interrupted = True
            if deadline is None:
                deadline = time.monotonic() + GRACE_S
                for folder in {Path(t.cfg.out).resolve() for t in tasks}:
                    write_text(folder / f"{marker}.stop", "stop\n")

        with _signals(on_signal):
            while pending and (deadline is None or time.monotonic() < deadline):
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    self._ended(ray, ref, pending.pop(ref), outcome, log_dir)

    def _ended(self, ray: Any, ref: Any, task: Task, outcome: Outcome, log_dir: Path) -> None:
        try:
            ran: Ran = ray.get(ref)
        except ray.exceptions.RayError as exc:  # the task failed for good (retries spent)
            ran = failure(task, exc, log_dir)
        if ran.result == NOT_SHARED:
            raise ClusterError(
                f"node {ran.node} does not see the runs folder {task.cfg.out}: --runs must be a folder every node "
                "mounts at the same path (a shared filesystem such as NFS)"
            )
        outcome.ran.append(ran)
        if ran.result == INTERRUPTED:
            outcome.interrupted = True
        self.emit(ran)


def _absolute(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with its runs and data folders as absolute paths."""
    data = str(Path(cfg.data_dir).resolve()) if cfg.data_dir else None
    return cfg.with_changes(out=str(Path(cfg.out).resolve()), data_dir=data)
