"""The training loop: a config, an event callback and a stop check in; a run folder out.

Speed comes from keeping the whole dataset as one uint8 tensor on the device and building each
batch by indexing it (augmentation included), with bf16 autocast and channels_last where the
hardware supports them, and from keeping host syncs out of the hot loop: the loss and accuracy sums
stay on the device and are read once every `SYNC_EVERY` steps. The recipe (schedule, augmentation)
lives in `recipe`, the resumable position in `state`.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import __version__
from ..core import machine, predictions
from ..core.config import TrainConfig, recipe_differences
from ..core.data import Dataset, dataset_fingerprint, load_dataset, nested_order, noisy_labels
from ..core.errors import ConfigError, RunError, ref
from ..core.events import BatchProgress, Callback, EpochEnd, Finished, Interrupted, RunStarted
from ..core.fsutil import check_writable, write_error, write_json
from ..core.metrics import classification_report
from ..core.registry import option_names
from ..core.runs import (
    BEST,
    CONFIG,
    LAST,
    METRICS,
    STATE,
    SUMMARY,
    Run,
    RunLock,
    clear_debris,
    clear_unstarted,
    holds_nothing,
    write_metrics,
)
from .allocator import keep_freed_memory
from .checkpoints import load_weights, save_weights
from .device import resolve_bf16, resolve_device
from .distributed import World
from .evaluate import predict_classes, predict_logits
from .geometry import warp_plan
from .recipe import EpochPlan, epoch_plan, extension_segment, first_segment, lr_at
from .state import EpochSums, SavedState, TrainState, load_state, save_state, wrong_shape
from .step import autocast_for, batch_input, compile_failure, learner, optimise

#: Steps between reads of the running sums (a host sync, and an all-reduce under DDP) and progress
#: events: rare enough that the device runs ahead of Python, often enough for a live progress bar.
#: The last batch of an epoch is always read.
SYNC_EVERY = 16


#: `resume=AUTO`: continue whatever the run folder holds (train a new run, resume an interrupted one, report a
#: finished one as it is), decided under the run's lock, so that two processes given one plan never race
AUTO = "auto"


@dataclass(frozen=True)
class TrainResult:
    """What `train` returns: the run, its summary when finished, whether it was interrupted, and whether it was
    already finished with this recipe (`resume=AUTO`: nothing trained)."""

    run: Run
    summary: dict[str, Any] | None
    interrupted: bool
    reused: bool = False


def _versions() -> dict[str, str]:
    """Library versions, recorded in config.json for provenance."""
    found = {"fmnist": __version__, "python": platform.python_version(), "torch": torch.__version__}
    for dist in ("numpy", "safetensors", "onnx", "onnxruntime"):
        with suppress(metadata.PackageNotFoundError):
            found[dist] = metadata.version(dist)
    return found


class RunningSums:
    """The epoch's plain loss and correct count, summed on the device step by step and read only at a
    sync, so the loop never waits for the device (nor, under DDP, for the other ranks) in between.

    The sums run over the whole epoch, starting from the saved ones on a resume, so a resumed epoch
    adds exactly the numbers a straight one does, in the same order and in float64 (as the Python
    floats of the per-batch loop did): metrics.csv comes out bit for bit the same either way.
    """

    def __init__(self, part: EpochSums, device: torch.device, world: World | None) -> None:
        carries = world is None or world.is_main  # the saved sums are the whole job's: one rank carries them
        self.loss = torch.tensor(part.loss_sum if carries else 0.0, dtype=torch.float64, device=device)
        self.correct = torch.tensor(part.correct if carries else 0, dtype=torch.int64, device=device)
        self.world = world
        self.seen_at_sync = part.seen

    @torch.no_grad()
    def add(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Add one batch (this rank's share of it under DDP); queued on the device, no sync."""
        self.loss.add_(F.cross_entropy(logits, y, reduction="sum"))
        self.correct.add_((logits.argmax(1) == y).sum())

    def sync(self, part: EpochSums) -> float:
        """Read the job's sums into `part` (one host sync; one all-reduce under DDP, which every rank
        must call at the same batch); returns the mean loss per image since the previous sync."""
        both = torch.stack([self.loss, self.correct.to(torch.float64)])  # one read for both
        if self.world:
            both = self.world.reduce_sum(both)
        loss, correct = both.tolist()
        mean = (loss - part.loss_sum) / max(1, part.seen - self.seen_at_sync)
        part.loss_sum, part.correct, self.seen_at_sync = loss, int(correct), part.seen
        return mean


class Trainer:
    """One training run; construct, then call `run()`. Use the `train` function for the common case."""

    def __init__(
        self,
        cfg: TrainConfig,
        on_event: Callback | None = None,
        should_stop: Callable[[], bool] | None = None,
        resume: bool | str = False,
        dataset: Dataset | None = None,
        world: World | None = None,
    ) -> None:
        self.cfg = cfg
        self.world = world  # None: one process; else this rank of a DDP job (only rank 0 writes and emits)
        self.is_main = world is None or world.is_main
        self.emit: Callback = (on_event or (lambda event: None)) if self.is_main else (lambda event: None)
        self.should_stop = should_stop or (lambda: False)
        self.resume = resume
        self.run_ = Run(cfg.run_dir)
        self.restart = False  # the folder holds a run stopped before its first save: start it from the beginning
        self.reused = False  # resume=AUTO found the run finished with this recipe: nothing to train
        self.lock = RunLock(self.run_)
        if self.is_main:  # other ranks would race rank 0's own writes into the folder
            self._check_place()  # first: a folder that is not ours gets no lock file
            self.lock.acquire()
        try:
            if self.is_main:
                self._check_folder()  # under the lock: no other process changes the run meanwhile
            if not self.reused:
                self._prepare(cfg, world, dataset)
        except BaseException:
            self.lock.release()
            raise

    def _prepare(self, cfg: TrainConfig, world: World | None, dataset: Dataset | None) -> None:
        """Device, data, model and optimizer."""
        self.allocator = keep_freed_memory()  # glibc keeps freed blocks for the next step (training.allocator)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = world.device if world else resolve_device(cfg.device)
        self.bf16 = resolve_bf16(self.device, cfg.precision)
        self.autocast: AbstractContextManager[Any] = autocast_for(self.device, self.bf16)
        self.ds = dataset or load_dataset(Path(cfg.data_dir) if cfg.data_dir else None)
        self._load_tensors()
        self.warps: torch.Tensor | None = None  # the epoch's --affine draws, on the device
        torch.manual_seed(cfg.seed)
        built = learner(cfg, self.device, self.bf16, world)
        self.model, self.opt, self.net = built.model, built.opt, built.net
        self.params, self.macs, self.channels_last, self.spectral = (
            built.params,
            built.macs,
            built.channels_last,
            built.spectral,
        )
        self.ema, self.saved_model, self.evaluated_model = built.ema, built.saved_model, built.evaluated_model
        self.batches = math.ceil(self.epoch_images / cfg.batch_size)

    # --- set-up -------------------------------------------------------------------------------
    def _check_place(self) -> None:
        """The runs folder and the run folder can be written, and the run folder is not someone else's."""
        run = self.run_
        for folder, setting in ((run.path.parent, "out"), (run.path, "name")):
            if folder.exists() or setting == "out":
                try:
                    check_writable(folder)
                except OSError as exc:
                    raise RunError(
                        f"{folder} is not writable ({exc.strerror or exc}); make it writable or choose another "
                        f"{ref(setting)}"
                    ) from exc
        if not run.file(CONFIG).exists() and not holds_nothing(run):
            raise RunError(
                f"{run.path} exists and is not an fmnist run folder; choose another {ref('name')} or {ref('out')}"
            )

    def _check_folder(self) -> None:
        """Refuse to overwrite: a run folder is only reused with --resume. Whatever an interruption left,
        either --resume continues the run or the plain command starts it over: a run stopped before its
        first saved state (no train_state.pt) starts from the beginning either way."""
        run = self.run_
        if self.resume == AUTO:
            self._check_auto()
        elif not run.file(CONFIG).exists():
            if self.resume:
                raise RunError(f"{run.path}: no run to resume; start it without {ref('resume')}")
        elif run.finished:
            if not self.resume:
                raise RunError(
                    f"run {run.name!r} in {run.path.parent} already finished; extend it with "
                    f"{ref('resume')} and a larger {ref('epochs')}, or choose another {ref('name')}"
                )
        elif not run.file(STATE).exists():
            self.restart = True  # nothing was saved: nothing to continue
        elif not self.resume:
            raise RunError(
                f"run {run.name!r} in {run.path.parent} was interrupted; continue it with {ref('resume')}, "
                f"or choose another {ref('name')}"
            )

    def _check_auto(self) -> None:
        """`resume=AUTO`: what the folder holds decides; a run of another recipe there is refused."""
        run = self.run_
        if not run.file(CONFIG).exists():
            self.resume = False
            return
        diffs = recipe_differences(run, self.cfg)
        if diffs:
            raise RunError(
                f"run {run.name!r} in {run.path.parent} holds another recipe ({diffs}); choose another "
                f"{ref('out')} folder, or move that run away"
            )
        self.reused = run.finished
        self.restart = not self.reused and not run.file(STATE).exists()
        self.resume = not self.restart

    def _load_tensors(self) -> None:
        """The train and validation splits (or their first `subset` images) as tensors on the device.

        With `train_size` N the training images are the first N of the stratified nested order, repeated
        (each copy flipped and shifted on its own) to at least the epoch's length, the images a run without it
        would train on per epoch; an epoch draws that many of the copies (`epoch_images`)."""
        cfg, ds = self.cfg, self.ds
        n_train = min(cfg.subset, len(ds.train_labels)) if cfg.subset else len(ds.train_labels)
        n_val = min(cfg.subset, len(ds.val_labels)) if cfg.subset else len(ds.val_labels)

        def as_t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

        distinct = np.arange(n_train)
        self.train_images = self.epoch_images = n_train  # distinct images; images drawn per epoch
        if cfg.train_size:
            if cfg.train_size > len(ds.train_labels):
                raise ConfigError(
                    "train_size", f"{cfg.train_size:,} is more than the {len(ds.train_labels):,} training images"
                )
            distinct = nested_order(ds.train_labels)[: cfg.train_size]
            self.train_images = len(distinct)
        labels = ds.train_labels[distinct]
        if cfg.label_noise:
            labels = noisy_labels(labels, cfg.label_noise, cfg.seed)
        copies = -(-n_train // len(distinct))  # a train_size smaller than an epoch repeats (each copy its own draw)
        images, labels = np.tile(ds.train_images[distinct], (copies, 1, 1)), np.tile(labels, copies)
        self.train_x, self.train_y = as_t(images), as_t(labels)
        self.val_x, self.val_y = as_t(ds.val_images[:n_val]), as_t(ds.val_labels[:n_val])

    def _restore(self) -> TrainState:
        """Load weights, optimizer and position; append an extension segment if epochs grew."""
        saved = load_state(self.run_)
        state = saved.state
        try:
            if saved.model is not None:
                self.model.load_state_dict(saved.model)
            else:  # a state written before it held the weights
                load_weights(self.model, self.run_.file(LAST))
            if self.ema:
                if saved.ema is None:
                    raise ValueError("the run averages its weights (--ema) but the state holds no average")
                self.ema.model.load_state_dict(saved.ema)
            self.opt.load_state_dict(saved.optimizer)
            torch.set_rng_state(saved.torch_rng)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:  # torch checks these loosely
            problem = f"model, optimizer or RNG state does not fit: {str(exc).strip() or type(exc).__name__}"
            raise wrong_shape(self.run_.file(STATE), problem.splitlines()[0]) from exc
        done_total = state.segments[-1].end // self.batches
        if self.cfg.epochs > done_total:
            state.segments.append(extension_segment(self.cfg, done_total, self.batches))
        elif self.cfg.epochs < done_total:
            raise RunError(
                f"run {self.run_.name!r} is planned for {done_total} epochs; {ref('epochs')} can only extend it"
            )
        if state.epoch_done >= self.cfg.epochs and self.run_.finished:
            raise RunError(
                f"run {self.run_.name!r} already finished {state.epoch_done} epochs; "
                f"set {ref('epochs')} above {state.epoch_done} to extend it"
            )
        state.rows = self.run_.metrics()[: state.epoch_done]
        return state

    def _options(self) -> dict[str, Any]:
        """Every registered option, this arch's values (None where it has none), as config.json holds them."""
        return {name: self.cfg.options.get(name) for name in option_names()}

    def _write_config(self) -> None:
        record = {
            **self.cfg.to_dict(),
            "run": self.run_.name,
            "params": self.params,
            "macs": self.macs,
            "device": str(self.device),
            "bf16_autocast": self.bf16,
            "spectral_convs": self.spectral,
            "allocator": self.allocator,
            "threads": torch.get_num_threads(),
            "train_images": self.train_images,
            "epoch_images": self.epoch_images,
            "val_images": len(self.val_y),
            "dataset_sha256": self.ds.sha256,
            "dataset_fingerprint": dataset_fingerprint(self.ds.sha256),
            "versions": _versions(),
            "machine": {
                **machine.cpu(),
                "gpu": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else None,
            },
            "commit": machine.commit(),
        }
        write_json(self.run_.file(CONFIG), record)

    # --- the loop -----------------------------------------------------------------------------
    def run(self) -> TrainResult:
        """Train to the configured number of epochs, or until `should_stop()` says so."""
        if self.reused:
            self.lock.release()
            return TrainResult(self.run_, self.run_.summary(), False, reused=True)
        try:
            return self._run()
        except OSError as exc:  # a full disk, a folder made read-only meanwhile: the last saved state is kept
            raise RunError(
                f"{write_error(exc)}; the run's last saved state is kept: free some space (or fix the folder), "
                f"then continue it with {ref('resume')}"
            ) from None
        except Exception as exc:
            failure = compile_failure(exc) if self.cfg.compile != "off" else None
            if failure is None:
                raise
            raise RunError(
                f"{ref('compile')} {self.cfg.compile}: {failure}; the run's last saved state is kept: continue it "
                f"with {ref('resume')} and {ref('compile')} off"
            ) from None
        finally:
            self.lock.release()

    def _run(self) -> TrainResult:
        if self.is_main:
            self.run_.path.mkdir(parents=True, exist_ok=True)
            clear_debris(self.run_)  # temporary files of writes a kill cut short (we hold the lock)
            if self.restart:
                clear_unstarted(self.run_)
        fresh = not self.resume or self.restart
        state = TrainState([first_segment(self.cfg, self.batches)]) if fresh else self._restore()
        if self.is_main:
            self._write_config()
        self.emit(
            RunStarted(
                self.run_.path,
                self.run_.name,
                self.cfg.to_dict(),
                self.params,
                self.macs,
                str(self.device),
                "bf16" if self.bf16 else "fp32",
                state.epoch_done + 1,
                self.cfg.epochs,
                self.batches,
                not fresh,
                list(state.rows),
            )
        )
        for epoch in range(state.epoch_done + 1, self.cfg.epochs + 1):
            if not self._train_epoch(epoch, state):
                if self.is_main:
                    self._save_state(state)
                self.emit(Interrupted(self.run_.path, epoch, state.batch_done))
                return self._all_ranks_leave(TrainResult(self.run_, None, True))
            self._end_epoch(epoch, state)
        summary = self._finish(state) if self.is_main else None
        return self._all_ranks_leave(TrainResult(self.run_, summary, False))

    def _all_ranks_leave(self, result: TrainResult) -> TrainResult:
        """Under DDP, every rank leaves together: a rank that tears its process group down while rank 0 still
        writes can make gloo's threads abort ("terminate called without an active exception")."""
        if self.world:
            self.world.barrier()
        return result

    def _train_epoch(self, epoch: int, state: TrainState) -> bool:
        """Run the remaining batches of `epoch`; False if stopped (state then holds the position)."""
        size, part = self.cfg.batch_size, state.partial
        plan = epoch_plan(self.cfg, epoch, len(self.train_y), self.epoch_images).to(self.device)
        warps = warp_plan(self.cfg, epoch, len(self.train_y))
        self.warps = None if warps is None else warps.to(self.device)
        sums = RunningSums(part, self.device, self.world)
        self.model.train()
        t0, base_seconds = time.perf_counter(), part.train_seconds
        for b in range(state.batch_done, self.batches):
            if self._stop_requested():  # every batch, so a stop lands at once (the read below is every N)
                sums.sync(part)  # the saved sums must include the steps since the last read
                part.train_seconds = base_seconds + time.perf_counter() - t0
                return False
            idx = plan.perm[b * size : (b + 1) * size]
            self._step(idx, plan, state, sums)
            state.batch_done = b + 1
            part.seen += len(idx)
            if (b + 1) % SYNC_EVERY == 0 or b + 1 == self.batches:
                mean_loss = sums.sync(part)
                elapsed = base_seconds + time.perf_counter() - t0
                self.emit(
                    BatchProgress(
                        epoch, self.cfg.epochs, b + 1, self.batches, mean_loss, part.seen / max(elapsed, 1e-9)
                    )
                )
        part.train_seconds = base_seconds + time.perf_counter() - t0
        return True

    def _step(self, idx: torch.Tensor, plan: EpochPlan, state: TrainState, sums: RunningSums) -> None:
        """One optimisation step on the global batch `idx` (this rank's share of it under DDP)."""
        cfg, n_batch = self.cfg, len(idx)
        if self.world:
            idx = self.world.shard(idx)
        boxes = None if plan.erase is None else plan.erase[idx]
        warps = None if self.warps is None else self.warps[idx]  # --affine
        x = batch_input(cfg, self.train_x[idx], plan.flip[idx], plan.shift[idx], boxes, warps, self.channels_last)
        y = self.train_y[idx]
        for group in self.opt.param_groups:
            group["lr"] = lr_at(state.step, state.segments)
        # under DDP the loss is the shard's sum × ranks / global batch: DDP's gradient mean is then the batch mean
        scale = self.world.size / n_batch if self.world else None
        logits = optimise(self.net, self.opt, x, y, cfg.label_smoothing, self.autocast, scale)
        state.step += 1
        if self.ema:
            self.ema.update(state.step)
        sums.add(logits.detach(), y)

    def _stop_requested(self) -> bool:
        """`should_stop()`, agreed by all ranks in a DDP job so that they stop at the same batch."""
        stop = self.should_stop()
        return self.world.any(stop) if self.world else stop

    def _end_epoch(self, epoch: int, state: TrainState) -> None:
        """Validate, save weights, metrics and state (the state last: it is the commit point)."""
        if not self.is_main:  # other ranks only keep their position; rank 0 validates and writes
            state.next_epoch(epoch)
            return
        t0 = time.perf_counter()
        part = state.partial
        logits = predict_logits(self.evaluated_model, self.val_x, bf16=self.bf16)
        val_loss = F.cross_entropy(logits, self.val_y).item()
        val_acc = (logits.argmax(1) == self.val_y).float().mean().item()
        seconds = part.train_seconds + time.perf_counter() - t0
        row = {
            "epoch": epoch,
            "train_loss": part.loss_sum / part.seen,
            "train_acc": part.correct / part.seen,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": lr_at(max(0, state.step - 1), state.segments),
            "seconds": round(seconds, 3),
            "images_per_s": round(part.seen / max(part.train_seconds, 1e-9), 1),
        }
        is_best = val_acc > state.best_val_acc
        save_weights(self.saved_model, self.run_.file(LAST))
        if is_best:
            save_weights(self.saved_model, self.run_.file(BEST))
            state.best_val_acc, state.best_epoch = val_acc, epoch
        state.rows.append(row)
        write_metrics(self.run_.file(METRICS), state.rows)
        state.train_seconds += part.train_seconds
        state.next_epoch(epoch)
        self._save_state(state)
        self.emit(EpochEnd(epoch, self.cfg.epochs, row, is_best))

    def _save_state(self, state: TrainState) -> None:
        if state.batch_done:  # mid-epoch: the weights of this very step
            save_weights(self.saved_model, self.run_.file(LAST))
        weights = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.model.state_dict().items()}
        ema = self.ema.state_dict() if self.ema else None
        saved = SavedState(state, self.opt.state_dict(), torch.get_rng_state(), weights, ema)
        save_state(self.run_.file(STATE), saved)  # the commit point: position and weights in one rename

    def _finish(self, state: TrainState) -> dict[str, Any]:
        """Test accuracy, once, from the best weights chosen on validation."""
        load_weights(self.saved_model, self.run_.file(BEST))
        predicted = predict_classes(self.evaluated_model, self.ds.test_images, self.device)
        report = classification_report(self.ds.test_labels, predicted)
        predictions.write(self.run_.path, predicted, self.ds.test_labels)  # each test image's, for paired analyses
        seen = self.epoch_images * state.epoch_done
        summary = {
            **report,
            "run": self.run_.name,
            "arch": self.cfg.arch,
            **self._options(),
            **self.cfg.data,
            "permute_seed": self.cfg.permute_seed,
            "seed": self.cfg.seed,
            "params": self.params,
            "macs": self.macs,
            "epochs": state.epoch_done,
            "best_epoch": state.best_epoch,
            "best_val_accuracy": state.best_val_acc,
            "train_seconds": round(state.train_seconds, 3),
            "images_per_s": round(seen / max(state.train_seconds, 1e-9), 1),
            "device": str(self.device),
            "bf16_autocast": self.bf16,
            "spectral_convs": self.spectral,
            "allocator": self.allocator,
            "finished_at": machine.now(),
            "finished": True,
        }
        write_json(self.run_.file(SUMMARY), summary)
        self.emit(Finished(self.run_.path, summary))
        return summary


def train(
    cfg: TrainConfig,
    on_event: Callback | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: bool | str = False,
    dataset: Dataset | None = None,
    world: World | None = None,
) -> TrainResult:
    """Train (or resume) the run described by `cfg`; see `Trainer` (and `distributed` for `world`)."""
    return Trainer(cfg, on_event, should_stop, resume, dataset, world).run()
