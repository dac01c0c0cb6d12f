"""The directive's event log: severity colours, timestamps, bounded."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.widgets import RichLog

from engine.events import EngineEvent
from tui.format import clock
from tui.presentation import SEVERITY_CSS
from tui.widgets.looks import LOOK_CLASSES, Looks

MAX_LINES = 2_000
# Progress lines go to the step panel's live tail, not the log.
HIDDEN_TYPES = frozenset({"step_output"})


class EventLog(Looks, RichLog):
    COMPONENT_CLASSES = LOOK_CLASSES

    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_lines=MAX_LINES, wrap=False, markup=False, **kwargs)  # type: ignore[arg-type]

    def add_events(self, events: Iterable[EngineEvent]) -> None:
        """One write per batch, not per event: each write measures, renders,
        trims and scrolls the log, which at a thousand events a second was
        most of the app's time."""
        muted = self.look("look--muted")
        lines = [
            Text.assemble(
                (clock(e.ts), muted),
                " ",
                (e.describe(), self.look(f"sev--{SEVERITY_CSS[e.severity]}")),
            )
            for e in events
            if e.type not in HIDDEN_TYPES
        ]
        if lines:
            self.write(Text("\n", no_wrap=True, overflow="ellipsis").join(lines))
