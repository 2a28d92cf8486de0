"""The Train tab: choose a recipe, start, stop or resume a training, and watch it live.

Training runs in a thread worker that calls the library's `train`; its events come back as
messages. Batch events are thinned to one every `UI_INTERVAL`, and the progress line repaints without a
layout pass, so the UI costs the trainer little time (see bench/tui_responsiveness.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any, Literal

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Collapsible, DataTable, Input, Label, ProgressBar, Select, Static

from ..core import registry
from ..core.config import COMPILES, DEVICES, PRECISIONS, RECIPE_NUMBERS, TrainConfig, default
from ..core.errors import ConfigError, FmnistError
from ..core.events import BatchProgress, EpochEnd, Event, Finished, Interrupted, RunStarted
from ..core.text import printable
from .messages import RunsChanged, TrainerEvent, TrainingEnded
from .services import Services, Settings
from .widgets import CurvesPlot, heatmap

UI_INTERVAL = 0.5  # seconds between batch updates sent to the UI (each costs the trainer a little GIL time)
EPOCH_COLUMNS = ("ep", "tr_loss", "tr_acc", "va_loss", "va_acc", "sec")


#: config setting → the id of the form field that sets it, where the two differ
FORM_IDS = {"batch_size": "batch", "hflip": "augment"}
#: the label of a form field, where it is not its id (labels have 9 columns and a space)
LABELS = {"label_smoothing": "smoothing", "train_size": "train n"}
#: the recipe's switches beyond the architecture and the h-flip (check boxes in the "recipe" section)
SWITCHES = {"tta": "TTA (flip)", "permute": "permute pixels"}
#: where and how a run trains (config.PLACEMENT, not its recipe): the "hardware" section's pick lists
PLACES = {"device": DEVICES, "precision": PRECISIONS, "compile": COMPILES}
#: actions and settings an error may name, as this screen shows them
ACTIONS = {"resume": "Resume (r)", "out": "the runs folder", "data_dir": "the dataset folder"}


def setting_name(setting: str) -> str:
    """How the Train tab names a setting an error refers to: its form field, or its button."""
    field_id = FORM_IDS.get(setting, setting)
    return ACTIONS.get(setting) or f"the {LABELS.get(field_id, field_id)} field"


def _field(label: str, widget: Widget, row_id: str | None = None) -> Horizontal:
    return Horizontal(Label(label, classes="field-label"), widget, classes="field", id=row_id)


def option_row(name: str) -> str:
    """The id of the form row that holds architecture option `name` (its label and its field)."""
    return f"{name}-row"


def _number(text: str, what: str) -> int | float:
    """A recipe number typed in the form (empty: its default); a ConfigError names the field."""
    text, kind = text.strip(), type(default(what))
    if not text:
        return default(what)
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(what, f"must be a {'whole ' if kind is int else ''}number, got {text!r}") from None


def _int_or_none(text: str, what: str) -> int | None:
    text = text.strip()
    if not text or text == "auto" or text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(what, f"must be a whole number, got {text!r}") from None


def _default(value: int | None, default: int) -> int:
    return default if value is None else value


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


class TrainPane(Vertical):
    """Recipe form on the left; curves, progress, an epoch table and the final result on the right."""

    def __init__(self, settings: Settings, services: Services, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings, self.services = settings, services
        self._stop = threading.Event()
        self._last_post = 0.0
        self._batch_size = 128
        self._history: list[dict[str, float]] = []
        self.worker: Any = None
        self.started: RunStarted | None = None  # the latest run's start event

    @property
    def running(self) -> bool:
        return self.worker is not None and not self.worker.is_finished

    def compose(self) -> ComposeResult:
        with Horizontal(id="train-body"):
            with VerticalScroll(id="train-form"):
                yield _field(
                    "arch",
                    Select(
                        [(a, a) for a in registry.REGISTRY],
                        value=default("arch"),
                        allow_blank=False,
                        compact=True,
                        id="arch",
                    ),
                )
                yield from self._option_fields(registry.get(default("arch")))
                yield _field("epochs", Input(str(default("epochs")), type="integer", compact=True, id="epochs"))
                yield _field("seed", Input(str(default("seed")), type="integer", compact=True, id="seed"))
                yield _field("batch", Input(str(default("batch_size")), type="integer", compact=True, id="batch"))
                yield _field("lr", Input(placeholder="auto", type="number", compact=True, id="lr"))
                yield _field("subset", Input(placeholder="all", type="integer", compact=True, id="subset"))
                yield _field("threads", Input(placeholder="auto", type="integer", compact=True, id="threads"))
                yield _field("name", Input(placeholder="auto", compact=True, id="name"))
                yield Checkbox("augment (h-flip)", value=default("hflip"), compact=True, id="augment")
                with Collapsible(title="recipe", collapsed=True, id="recipe"):
                    for name in RECIPE_NUMBERS:
                        kind: Literal["integer", "number"] = "integer" if isinstance(default(name), int) else "number"
                        yield _field(
                            LABELS.get(name, name), Input(str(default(name)), type=kind, compact=True, id=name)
                        )
                    yield _field(
                        LABELS["train_size"], Input(placeholder="all", type="integer", compact=True, id="train_size")
                    )
                    for name, text in SWITCHES.items():
                        yield Checkbox(text, value=default(name), compact=True, id=name)
                with Collapsible(title="hardware", collapsed=True, id="placement"):
                    for name, choices in PLACES.items():
                        select = Select(
                            [(c, c) for c in choices], value=default(name), allow_blank=False, compact=True, id=name
                        )
                        yield _field(name, select)
                with Horizontal(id="train-buttons"):
                    yield Button("Start", id="start", variant="success", compact=True)
                    yield Button("Stop", id="stop", variant="error", compact=True, disabled=True)
                    yield Button("Resume", id="resume", compact=True)
                yield Static("Set the recipe and press Start (s).\nRuns go to the runs folder.", id="run-info")
            with VerticalScroll(id="train-live"):
                with Horizontal(id="curves"):
                    yield CurvesPlot("loss", id="loss-plot")
                    yield CurvesPlot("acc", id="acc-plot")
                with Vertical(id="progress-row"):
                    yield ProgressBar(total=1, show_eta=False, id="train-progress")  # a total: no idle animation
                    yield Static("idle", id="progress-text")
                yield DataTable(id="epochs-table", cursor_type="none", zebra_stripes=True)
                yield Static("", id="final")

    def on_mount(self) -> None:
        self.query_one("#epochs-table", DataTable).add_columns(*EPOCH_COLUMNS)
        self.query_one("#run-info", Static).update(
            f"Set the recipe and press Start (s).\nRuns go to {self.settings.runs}/."
        )

    @staticmethod
    def _option_fields(spec: registry.ArchSpec) -> ComposeResult:
        """One field per architecture option of the registry (a pick list where it has valid values), shown
        (and enabled) only while the chosen architecture takes it."""
        for name in registry.option_names():
            option = spec.option(name) or registry.options_named(name)[0][1]
            if option.choices:
                widget: Widget = Select(
                    [(str(v), v) for v in option.choices],
                    value=option.default,
                    allow_blank=False,
                    compact=True,
                    id=name,
                )
            else:
                widget = Input(option.text(option.default), compact=True, id=name)
            row = _field(name, widget, option_row(name))
            widget.disabled = spec.option(name) is None
            row.display = not widget.disabled
            yield row

    @on(Select.Changed, "#arch")
    def _arch_changed(self, event: Select.Changed) -> None:
        spec = registry.get(str(event.value))
        for name in registry.option_names():
            option, widget = spec.option(name), self.query_one(f"#{name}")
            widget.disabled = option is None
            self.query_one(f"#{option_row(name)}").display = option is not None
            if isinstance(widget, Select) and option is not None and widget.value not in option.choices:
                widget.value = option.default  # another arch's value of a shared option

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.start()

    @on(Button.Pressed, "#stop")
    def _stop_pressed(self) -> None:
        self.stop()

    @on(Button.Pressed, "#resume")
    def _resume_pressed(self) -> None:
        self.start(resume=True)

    # --- actions ------------------------------------------------------------------------------
    def form_config(self) -> TrainConfig:
        """The TrainConfig the form describes; a ConfigError names the bad setting."""
        arch = str(self.query_one("#arch", Select).value)
        augment = self.query_one("#augment", Checkbox).value
        lr_text = self.query_one("#lr", Input).value.strip()
        try:
            lr = float(lr_text) if lr_text and lr_text != "auto" else None
        except ValueError:
            raise ConfigError("lr", f"must be a number or 'auto', got {lr_text!r}") from None
        values = {
            key: _int_or_none(self.query_one(f"#{key}", Input).value, key)
            for key in ("epochs", "seed", "batch", "subset", "threads", "train_size")
        }
        recipe: dict[str, Any] = {
            name: _number(self.query_one(f"#{name}", Input).value, name) for name in RECIPE_NUMBERS
        }
        recipe |= {name: self.query_one(f"#{name}", Checkbox).value for name in SWITCHES}
        recipe |= {name: str(self.query_one(f"#{name}", Select).value) for name in PLACES}
        spec = registry.get(arch)
        options = {o.name: self._option_value(o.name) for o in spec.options}
        return TrainConfig(
            arch=arch,
            options=options,
            epochs=_default(values["epochs"], default("epochs")),
            seed=_default(values["seed"], default("seed")),
            batch_size=_default(values["batch"], default("batch_size")),
            lr=lr,
            subset=values["subset"],
            threads=values["threads"],
            name=self.query_one("#name", Input).value.strip() or None,
            hflip=augment,
            train_size=values["train_size"],
            **recipe,
            out=str(self.settings.runs),
            data_dir=str(self.settings.data_dir) if self.settings.data_dir else None,
        )

    def _option_value(self, name: str) -> Any:
        widget = self.query_one(f"#{name}")
        if isinstance(widget, Select):
            return widget.value
        return str(getattr(widget, "value", "")).strip() or None  # typed by the registry's check

    def start(self, resume: bool = False) -> None:
        """Start (or resume) the training the form describes, unless one is running."""
        if self.running:
            self.notify("A training is already running; stop it first (x).", severity="warning")
            return
        for widget in self.query("#train-form .invalid"):
            widget.remove_class("invalid")
        try:
            cfg = self.form_config()
            if resume:
                cfg = self.services.resume_config(cfg.run_dir, cfg.epochs, cfg.threads, cfg.device, cfg.compile)
        except FmnistError as exc:
            self.notify(printable(exc.render(setting_name)), title="Cannot start", severity="error", markup=False)
            self._mark_invalid(exc)
            return
        self._stop.clear()
        self._set_running(True)
        self.query_one("#progress-text", Static).update(f"{cfg.run_name}: loading torch and the dataset…")
        self.worker = self._train_worker(cfg, resume)

    def _mark_invalid(self, exc: FmnistError) -> None:
        """Put the focus on the form field a ConfigError names (it stays marked until the next Start)."""
        field_id = FORM_IDS.get(getattr(exc, "field", ""), getattr(exc, "field", ""))
        widgets: Iterable[Widget] = self.query(f"#train-form #{field_id}") if field_id else ()
        for widget in widgets:
            for section in widget.ancestors:
                if isinstance(section, Collapsible):
                    section.collapsed = False  # a field of a folded section: show it
            widget.add_class("invalid")
            widget.focus()

    def stop(self) -> None:
        """Ask the trainer to stop after the current batch; it saves its state for Resume."""
        if self.running and not self._stop.is_set():
            self._stop.set()
            self.query_one("#progress-text", Static).update("stopping after this batch; saving the state…")

    def _set_running(self, running: bool) -> None:
        self.query_one("#start", Button).disabled = running
        self.query_one("#resume", Button).disabled = running
        self.query_one("#stop", Button).disabled = not running

    # --- the worker (runs in a thread) -------------------------------------------------------------
    @work(thread=True, exclusive=True, group="train", exit_on_error=False)
    def _train_worker(self, cfg: TrainConfig, resume: bool) -> None:
        self._batch_size = cfg.batch_size
        try:
            result = self.services.train(cfg, self._emit, self._stop.is_set, resume)
        except FmnistError as exc:
            self.post_message(TrainingEnded(cfg.run_name, False, exc.render(setting_name)))
        except Exception as exc:  # noqa: BLE001 - anything else still must not kill the app
            self.post_message(TrainingEnded(cfg.run_name, False, f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(TrainingEnded(cfg.run_name, bool(result.interrupted)))

    def _emit(self, event: Event) -> None:
        """The trainer's callback (worker thread): forward events, batch events at most one every `UI_INTERVAL`."""
        if isinstance(event, BatchProgress):
            now = time.monotonic()
            if now - self._last_post < UI_INTERVAL and event.batch != event.batches:
                return
            self._last_post = now
        self.post_message(TrainerEvent(event))

    # --- events (UI thread) ----------------------------------------------------------------------
    def on_trainer_event(self, message: TrainerEvent) -> None:
        event = message.event
        if isinstance(event, RunStarted):
            self._started(event)
        elif isinstance(event, BatchProgress):
            self._progress(event)
        elif isinstance(event, EpochEnd):
            self._add_row(event.row, event.is_best)
            self.query_one("#loss-plot", CurvesPlot).show(self._history)
            self.query_one("#acc-plot", CurvesPlot).show(self._history)
        elif isinstance(event, Finished):
            self._finished(event.summary)
        elif isinstance(event, Interrupted):
            self.query_one("#progress-text", Static).update(
                f"stopped at epoch {event.epoch}, batch {event.batch}; state saved. Resume (r) continues it."
            )

    def _started(self, e: RunStarted) -> None:
        self.started, self._history = e, []
        table = self.query_one("#epochs-table", DataTable)
        table.clear()
        for row in e.history:
            self._add_row(row, False)
        for plot_id in ("#loss-plot", "#acc-plot"):
            self.query_one(plot_id, CurvesPlot).show(self._history)
        self.query_one("#final", Static).update("")
        verb = f"resumed at epoch {e.start_epoch}" if e.resumed else "training"
        self.query_one("#run-info", Static).update(
            f"run {e.name} ({verb})\nparams {e.params:,}\nMACs {e.macs / 1e6:.2f} M\n{e.device} · {e.precision}"
        )
        bar = self.query_one("#train-progress", ProgressBar)
        bar.update(total=e.epochs * e.batches, progress=(e.start_epoch - 1) * e.batches)

    def _progress(self, e: BatchProgress) -> None:
        self.query_one("#train-progress", ProgressBar).update(progress=(e.epoch - 1) * e.batches + e.batch)
        left = ((e.epochs - e.epoch) * e.batches + e.batches - e.batch) * self._batch_size
        eta = _clock(left / e.images_per_s) if e.images_per_s > 0 else "?"
        self.query_one("#progress-text", Static).update(  # fixed size: a repaint, not a re-layout of the screen
            f"epoch {e.epoch}/{e.epochs} · {e.images_per_s / 1000:.1f}k img/s · ETA {eta} · loss {e.loss:.3f}",
            layout=False,
        )

    def _add_row(self, row: dict[str, Any], best: bool) -> None:
        self._history.append(row)
        self.query_one("#epochs-table", DataTable).add_row(
            f"{int(row['epoch'])}{'*' if best else ''}",
            f"{row['train_loss']:.3f}",
            f"{row['train_acc']:.3f}",
            f"{row['val_loss']:.3f}",
            f"{row['val_acc']:.3f}",
            f"{row['seconds']:.1f}",
        )

    def _finished(self, summary: dict[str, Any]) -> None:
        self.query_one("#progress-text", Static).update(
            f"done: test accuracy {summary['test_accuracy']:.2%} (best epoch {summary.get('best_epoch', '?')})"
        )
        final = self.query_one("#final", Static)
        final.update(heatmap(summary["confusion_matrix"]) if "confusion_matrix" in summary else "")

    def on_training_ended(self, message: TrainingEnded) -> None:
        self._set_running(False)
        if message.error:
            self.query_one("#progress-text", Static).update("training failed; see the notification")
            self.notify(printable(message.error), title="Training failed", severity="error", timeout=10, markup=False)
        elif message.interrupted:
            self.notify(f"{message.run_name}: stopped; state saved. Resume (r) continues it.")
        else:
            self.notify(f"{message.run_name}: finished; see the Results tab (2).")
        self.post_message(RunsChanged())
