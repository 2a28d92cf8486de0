"""The trainer's events as a terminal shows them: a progress bar per epoch and one line per epoch (`fmnist train`,
torchrun's rank 0 and a SageMaker job's log alike)."""

from __future__ import annotations

from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..core.events import BatchProgress, EpochEnd, Event, Finished, Interrupted, RunStarted
from .common import console, shown


class ProgressView:
    """Renders trainer events: a progress bar per epoch (in a terminal) and one summary line per epoch."""

    def __init__(self) -> None:
        out = console.get()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f}"),
            TextColumn("{task.fields[ips]:>7,.0f} img/s"),
            TimeRemainingColumn(),
            console=out,
            transient=True,
            disable=not out.is_terminal,  # a log or a pipe gets the epoch lines only, no bar redraws
        )
        self.task: Any = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._started(event)
        elif isinstance(event, BatchProgress):
            if self.task is None:
                self.progress.start()
                self.task = self.progress.add_task(
                    f"epoch {event.epoch}/{event.epochs}", total=event.batches, loss=event.loss, ips=0.0
                )
            self.progress.update(self.task, completed=event.batch, loss=event.loss, ips=event.images_per_s)
        elif isinstance(event, EpochEnd):
            self._close_bar()
            r = event.row
            console.print(
                f"epoch {r['epoch']:>3}/{event.epochs}  train loss {r['train_loss']:.4f} acc {r['train_acc']:.4f}"
                f"  val loss {r['val_loss']:.4f} acc {r['val_acc']:.4f}  {r['seconds']:.1f}s"
                f"  {r['images_per_s']:,.0f} img/s{'  [green]best[/]' if event.is_best else ''}",
                highlight=False,
            )
        elif isinstance(event, (Finished, Interrupted)):
            self._close_bar()

    def _started(self, e: RunStarted) -> None:
        verb = f"resuming at epoch {e.start_epoch}" if e.resumed else "training"
        console.print(
            f"[bold]{shown(e.name)}[/]: {verb} of {e.epochs} · {e.params:,} params · {e.macs / 1e6:.2f} M MACs"
            f" · {e.device} ({e.precision}) · {e.batches} batches/epoch → {shown(e.run_dir)}",
            highlight=False,
        )

    def _close_bar(self) -> None:
        if self.task is not None:
            self.progress.stop()
            self.progress.remove_task(self.task)
            self.task = None
