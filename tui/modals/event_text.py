"""Enter on an event-log line: the whole event, wrapped. The log cuts each
line at its width; an approval's summary with the evaluation, a long error
or the merge hint is read here (or with `directive-tui events`)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Footer, Static

from tui.modals.dialog import Dialog


class EventText(Dialog[None]):
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("enter,q", "close", show=False),
    ]

    def __init__(self, at: str, message: str, severity: str) -> None:
        super().__init__()
        self.at = at
        self.message = message
        self.severity = severity

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="event-dialog"):
            yield Static(f"Event at {self.at}", classes="dialog-title")
            with VerticalScroll(id="event-body"):
                # Event text is not markup: names and output may hold `[...]`.
                yield Static(Text(self.message), id="event-text", classes=f"sev--{self.severity}")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#event-body").focus()  # the arrows and page keys scroll a long one

    def action_close(self) -> None:
        self.dismiss(None)
