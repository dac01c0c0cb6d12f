"""Enter on an event-log line: the whole event, wrapped. The log cuts each
line at its width; an approval's summary with the evaluation, a long error
or the merge hint is read here (or with `directive-tui events`)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Footer, Static

from engine.models import StepRun
from tui.modals.dialog import Dialog


def error_in_full(runs: Sequence[StepRun], before: float, said: str) -> str:
    """What a line about a failure had to leave out: the engine keeps a
    status's reason to 200 characters and an escalation's summary to 300 (a
    long failure lost its end: "its files are kept in /tmp/…/bui…"); the
    attempt's error is kept whole. The error of the latest attempt that
    started by `before` (the event's time), nothing when `said` has it all."""
    failed = [r for r in runs if r.error and r.started_at <= before]
    error = failed[-1].error if failed else None
    if not error or error in said:
        return ""
    return f"The attempt's error in full:\n{error}"


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
