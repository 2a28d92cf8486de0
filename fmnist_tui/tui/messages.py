"""Messages the TUI's screens exchange: trainer events from the worker thread, run-folder changes."""

from __future__ import annotations

from textual.message import Message

from ..core.events import Event


class TrainerEvent(Message):
    """A trainer event, posted from the training worker thread."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class TrainingEnded(Message):
    """The training worker ended: finished, stopped (state saved) or failed with `error`."""

    def __init__(self, run_name: str | None, interrupted: bool, error: str | None = None) -> None:
        super().__init__()
        self.run_name = run_name
        self.interrupted = interrupted
        self.error = error


class RunsChanged(Message):
    """A run folder was written (a training ended); results and pickers re-read the runs."""
