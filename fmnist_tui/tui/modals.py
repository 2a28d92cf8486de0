"""Modal screens: the help page and the 'a training is running, quit anyway?' question."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

HELP = """\
[b]fmnist tui[/b] · keys
  1 2 3 4        Train · Results · Classify · Explore
  s / x / r      start / stop / resume a training (Train)
  o              sort results by the next column (or click a header)
  f              feature maps of the chosen image and run (Explore)
  ctrl+p         command palette: every action
  ? / escape     open / close this help
  q / ctrl+q     quit (asks first while a training runs)

[b]CLI twins[/b]
  Train     fmnist train        Results   fmnist results
  Classify  fmnist predict      Explore   fmnist featuremaps / report
Stop saves the state like Ctrl-C in `fmnist train`; Resume, or
`fmnist train --resume --name RUN`, continues it.
"""


class HelpScreen(ModalScreen[None]):
    """Key bindings and the CLI twins of each screen."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(HELP)

    # a key's action takes no result, unlike Screen.action_dismiss(result): it closes with None
    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; dismisses with True for yes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "answer(False)", "No"),
        Binding("y", "answer(True)", "Yes"),
    ]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.question, id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error", compact=True)
                yield Button(f"{self.no} (n)", id="no", variant="primary", compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
