"""Yes or no, before something that cannot be undone (stop, replan, skip)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Static

from tui.modals.dialog import Dialog


class ConfirmModal(Dialog[bool]):
    # The footer names the keys as the buttons do ("Delete [y]", "Cancel
    # [esc]"), whatever the question.
    BINDINGS = [
        Binding("y", "answer(True)", "Confirm"),
        Binding("escape,n", "answer(False)", "Cancel"),
    ]

    def __init__(self, question: str, confirm: str = "Yes", *, danger: bool = False) -> None:
        super().__init__()
        self.question = question
        self.confirm = confirm
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(self.question), classes="dialog-title")  # names are not markup
            with Horizontal(classes="dialog-buttons"):
                yield Button(
                    Text(f"{self.confirm} [y]"),
                    id="yes",
                    variant="error" if self.danger else "primary",
                )
                yield Button(Text("Cancel [esc]"), id="no")
        yield Footer(compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
