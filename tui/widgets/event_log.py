"""The directive's event log: severity colours, timestamps, bounded.

A line-API widget: each event is kept as a few strings and drawn only while
on screen. A `RichLog` kept every line as rendered strips with their caches;
at a thousand events a second that heap made the garbage collector's full
passes the app's longest pauses. Lines are cut to the view's width (never
narrower than MIN_WIDTH) and laid out again when that width changes: a
line written at 80 columns shows in full once the terminal is wider.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from rich.segment import Segment
from rich.text import Text
from textual.events import Resize
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from engine.events import EngineEvent
from tui.format import clock
from tui.presentation import SEVERITY_CSS
from tui.widgets.looks import LOOK_CLASSES, Looks

MAX_LINES = 2_000
MIN_WIDTH = 78
# Progress lines go to the step panel's live tail, not the log.
HIDDEN_TYPES = frozenset({"step_output"})

# (clock, message, severity css, full width in cells, laid-out width or 0
# until the view has a size)
Row = tuple[str, str, str, int, int]


class EventLog(Looks, ScrollView, can_focus=True):
    COMPONENT_CLASSES = LOOK_CLASSES
    DEFAULT_CSS = """
    EventLog {
        background: $surface;
        color: $foreground;
        overflow-y: scroll;
        &:focus { background-tint: $foreground 5%; }
    }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.lines: deque[Row] = deque(maxlen=MAX_LINES)
        self._widest = 0
        self._view = 0  # the width lines were laid out for

    def add_events(self, events: Iterable[EngineEvent]) -> None:
        view = self._view
        rows = []
        for e in events:
            if e.type in HIDDEN_TYPES:
                continue
            at, message = clock(e.ts), e.describe()
            cells = len(at) + 1 + Text(message).cell_len
            rows.append((at, message, SEVERITY_CSS[e.severity], cells, self._fit(cells, view)))
        if rows:
            self.lines.extend(rows)
            self._resized()

    def clear(self) -> None:
        self.lines.clear()
        self._widest = 0
        self._resized()

    def on_resize(self, event: Resize) -> None:
        """Lay every line out again for the new width (the first size too)."""
        view = self.scrollable_content_region.width if event.size.width else 0
        if view == self._view:
            return
        self._view = view
        self.lines = deque(((*r[:4], self._fit(r[3], view)) for r in self.lines), maxlen=MAX_LINES)
        self._resized()

    def _fit(self, cells: int, view: int) -> int:
        if not view:
            return 0
        return max(min(cells, view), MIN_WIDTH)

    def _resized(self) -> None:
        self._widest = max((r[4] for r in self.lines), default=0)
        self.virtual_size = Size(self._widest, len(self.lines))
        self.refresh()
        self.scroll_end(animate=False, immediate=False, x_axis=False)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        index = scroll_y + y
        if index >= len(self.lines) or not self.lines[index][4]:
            return Strip.blank(width, self.rich_style)
        at, message, severity, _, line_width = self.lines[index]
        text = Text.assemble(
            (at, self.look("look--muted")),
            " ",
            (message, self.look(f"sev--{severity}")),
            no_wrap=True,
            overflow="ellipsis",
        )
        console = self.app.console
        options = console.options.update(width=line_width, overflow="ignore", no_wrap=True)
        segments = next(iter(Segment.split_lines(console.render(text, options))), [])
        strip = Strip(segments).adjust_cell_length(line_width)
        strip = strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)
        return strip.apply_style(self.rich_style)
