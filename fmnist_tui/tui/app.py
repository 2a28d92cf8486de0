"""The fmnist Textual app: four tabs (Train, Results, Classify, Explore), help, palette, safe quit.

`create_app` is the factory: tests pass folders and fake services; `fmnist tui` passes the real ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane

from ..study.studies import STUDIES
from .classify_screen import ClassifyPane
from .explore_screen import ExplorePane
from .messages import RunsChanged
from .modals import ConfirmScreen, HelpScreen
from .results_screen import ResultsPane
from .services import Services, Settings
from .train_screen import TrainPane

TABS = ("train", "results", "classify", "explore")
#: action → the tab it belongs to (the binding shows only there)
TAB_ACTIONS = {"start": "train", "stop": "train", "resume": "train", "sort": "results", "feature_maps": "explore"}


class FmnistApp(App[None]):
    """A terminal lab for Fashion-MNIST."""

    CSS_PATH = "fmnist.tcss"
    TITLE = "fmnist"
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(str(i + 1), f"show_tab('{tab}')", tab.title(), show=False) for i, tab in enumerate(TABS)),
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("s", "start", "Start"),
        Binding("x", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("o", "sort", "Sort"),
        Binding("f", "feature_maps", "Feature maps"),
    ]

    def __init__(self, settings: Settings | None = None, services: Services | None = None) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.services = services or Services()

    def compose(self) -> ComposeResult:
        with TabbedContent(initial="train", id="tabs"):
            with TabPane("1 Train", id="train"):
                yield TrainPane(self.settings, self.services, id="train-pane")
            with TabPane("2 Results", id="results"):
                yield ResultsPane(self.settings, id="results-pane")
            with TabPane("3 Classify", id="classify"):
                yield ClassifyPane(self.settings, self.services, id="classify-pane")
            with TabPane("4 Explore", id="explore"):
                yield ExplorePane(self.settings, self.services, id="explore-pane")
        yield Footer()

    @property
    def active_tab(self) -> str:
        return str(self.query_one("#tabs", TabbedContent).active)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Tab-specific bindings show only on their tab; Stop is greyed out unless a training runs."""
        tab = TAB_ACTIONS.get(action)
        if tab is None or not self.query("#tabs"):  # before the tabs exist (App.is_mounted is another thing)
            return True
        if tab != self.active_tab:
            return False
        if action == "stop":
            return True if self.query_one(TrainPane).running else None
        return True

    @on(TabbedContent.TabActivated, "#tabs")
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        tab = event.pane.id
        if tab == "results":
            self.query_one(ResultsPane).reload(force=False)  # runs trained elsewhere (the CLI) show up too
        elif tab == "classify":
            self.query_one(ClassifyPane).reload_models()
        elif tab == "explore":
            self.query_one(ExplorePane).ensure_loaded()
        self.refresh_bindings()

    def on_runs_changed(self, message: RunsChanged) -> None:
        # a training can end while the app is being taken down, its panes already gone: nothing to re-read then
        for results in self.query(ResultsPane):
            results.reload()
        for explore in self.query(ExplorePane):
            explore.reload_runs()
        self.refresh_bindings()

    # --- actions ------------------------------------------------------------------------------
    def action_show_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_start(self) -> None:
        self.query_one(TrainPane).start()
        self.refresh_bindings()

    def action_stop(self) -> None:
        self.query_one(TrainPane).stop()

    def action_resume(self) -> None:
        self.query_one(TrainPane).start(resume=True)
        self.refresh_bindings()

    def action_sort(self) -> None:
        self.query_one(ResultsPane).cycle_sort()

    def action_show_study(self, name: str) -> None:
        """The Results tab with study `name` picked."""
        self.action_show_tab("results")
        self.query_one(ResultsPane).pick_study(name)

    def action_feature_maps(self) -> None:
        self.query_one(ExplorePane).show_feature_maps()

    def action_reload(self) -> None:
        self.post_message(RunsChanged())
        self.query_one(ClassifyPane).reload_models()

    async def action_quit(self) -> None:
        """Quit; while a training runs, ask first, then stop it (saving its state) before leaving."""
        pane = self.query_one(TrainPane)
        if not pane.running:
            self.exit()
            return

        def answered(stop: bool | None) -> None:
            if stop:
                pane.stop()
                self.notify("Stopping the training and saving its state…")
                self.run_worker(self._exit_when_stopped(pane), group="quit")

        self.push_screen(
            ConfirmScreen(
                "A training is running. Stop it (its state is saved; Resume continues it later) and quit?",
                yes="Stop and quit",
                no="Keep training",
            ),
            answered,
        )

    async def _exit_when_stopped(self, pane: TrainPane) -> None:
        if pane.worker is not None:
            await pane.worker.wait()
        self.exit()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every action in the command palette (ctrl+p)."""
        yield from super().get_system_commands(screen)
        for i, tab in enumerate(TABS):
            yield SystemCommand(
                f"Show {tab.title()}",
                f"Switch to the {tab.title()} tab ({i + 1})",
                lambda tab=tab: self.action_show_tab(tab),
            )
        yield SystemCommand("Start training", "Train the recipe in the Train form (s)", self.action_start)
        yield SystemCommand("Stop training", "Stop after this batch and save the state (x)", self.action_stop)
        yield SystemCommand("Resume training", "Continue or extend the run the form names (r)", self.action_resume)
        yield SystemCommand("Sort results", "Sort the results table by the next column (o)", self.action_sort)
        for name, spec in STUDIES.items():
            yield SystemCommand(
                f"Study: {name}",
                f"{spec.title} on the Results tab: its table, figure and verdicts",
                lambda name=name: self.action_show_study(name),
            )
        yield SystemCommand("Reload runs and models", "Re-read checkpoints/ and export/", self.action_reload)
        yield SystemCommand(
            "Feature maps", "conv1/conv2 maps of the chosen image and run (f)", self.action_feature_maps
        )
        yield SystemCommand("Help", "Keys and the CLI twin of each screen (?)", self.action_help)


def create_app(
    runs: Path = Path("checkpoints"),
    export: Path | None = None,
    images: Path = Path("."),
    data_dir: Path | None = None,
    services: Services | None = None,
) -> FmnistApp:
    """The app for these folders (`export` None: ./export where it holds models, else the shipped ones);
    `services` replaces the library calls (tests inject fakes)."""
    from ..inference.session import models_folder

    folder = models_folder() if export is None else Path(export)
    return FmnistApp(Settings(Path(runs), folder, Path(images), data_dir), services)
