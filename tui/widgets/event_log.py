"""The directive's event log: severity colours, timestamps, bounded.

A line-API widget: each event is kept as a few strings and drawn only while
on screen. A `RichLog` kept every line as rendered strips with their caches;
at a thousand events a second that heap made the garbage collector's full
passes the app's longest pauses. Lines are cut to the view's width (never
narrower than MIN_WIDTH) and laid out again when that width changes: a
line written at 80 columns shows in full once the terminal is wider.

With the focus, a highlighted line moves with the arrow, home/end and page
keys, and Enter asks for its whole text (the screen shows it in a dialog):
a cut line is otherwise readable only with `directive-tui events`. The
highlight starts on the newest line and follows new ones there; moved up,
it stays on its event and the view stays put. Without the focus there is
no highlight and the view follows the end, as before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from rich.segment import Segment
from rich.text import Text
from textual.binding import Binding
from textual.events import Blur, Focus, Resize
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from engine.events import EngineEvent
from tui.format import clock
from tui.presentation import SEVERITY_CSS
from tui.widgets.looks import LOOK_CLASSES, Looks

MAX_LINES = 2_000
HINT = "↑ ↓ pick an event · enter: its full text"
MIN_WIDTH = 78
# Progress lines go to the step panel's live tail, not the log.
HIDDEN_TYPES = frozenset({"step_output"})

# (clock, message, severity css, full width in cells, laid-out width or 0
# until the view has a size, the event's seq: what enter asks to read whole)
Row = tuple[str, str, str, int, int, int]


class EventLog(Looks, ScrollView, can_focus=True):
    COMPONENT_CLASSES = LOOK_CLASSES | {"event-log--cursor"}
    HELP_TITLE = "The event log"
    DEFAULT_CSS = """
    EventLog {
        background: $surface;
        color: $foreground;
        overflow-y: scroll;
        &:focus { background-tint: $foreground 5%; }
    }
    """
    BINDINGS = [
        Binding("up,k", "move(-1)", "Older event", show=False),
        Binding("down,j", "move(1)", "Newer event", show=False),
        Binding("pageup", "page(-1)", "Page of older events", show=False),
        Binding("pagedown", "page(1)", "Page of newer events", show=False),
        Binding("home", f"move({-MAX_LINES})", "Oldest event", show=False),
        Binding("end", f"move({MAX_LINES})", "Newest event (follows new ones)", show=False),
        # Out of the screen's footer (it would push `?` off an 80-column
        # one): the log's top border says it while the log has the focus.
        Binding("enter", "read", "Full text of the event", show=False),
    ]

    class Read(Message):
        """Enter on a line: show the whole of it."""

        def __init__(self, at: str, message: str, severity: str, seq: int = 0) -> None:
            super().__init__()
            self.at = at
            self.message = message
            self.severity = severity
            self.seq = seq  # the event's, to read what its line had to cut

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.lines: deque[Row] = deque(maxlen=MAX_LINES)
        self._widest = 0
        self._view = 0  # the width lines were laid out for
        self.cursor: int | None = None  # the highlighted line; None: the newest

    def add_events(self, events: Iterable[EngineEvent]) -> None:
        view = self._view
        rows = []
        for e in events:
            if e.type in HIDDEN_TYPES:
                continue
            at, message = clock(e.ts), e.describe()
            cells = len(at) + 1 + Text(message).cell_len
            css = SEVERITY_CSS[e.severity]
            rows.append((at, message, css, cells, self._fit(cells, view), e.seq))
        if rows:
            self._dropped(len(self.lines) + len(rows) - MAX_LINES)
            self.lines.extend(rows)
            self._resized()

    def clear(self) -> None:
        self.lines.clear()
        self._widest = 0
        self.cursor = None
        self._resized()

    def on_resize(self, event: Resize) -> None:
        """Lay every line out again for the new width (the first size too)."""
        view = self.scrollable_content_region.width if event.size.width else 0
        if view == self._view:
            return
        self._view = view
        self.lines = deque(
            ((*r[:4], self._fit(r[3], view), r[5]) for r in self.lines), maxlen=MAX_LINES
        )
        self._resized()

    def _fit(self, cells: int, view: int) -> int:
        if not view:
            return 0
        return max(min(cells, view), MIN_WIDTH)

    def _resized(self) -> None:
        self._widest = max((r[4] for r in self.lines), default=0)
        self.virtual_size = Size(self._widest, len(self.lines))
        self.refresh()
        if self.cursor is None:
            self.scroll_end(animate=False, immediate=False, x_axis=False)

    def _dropped(self, count: int) -> None:
        """`count` oldest lines are about to go: keep the highlighted event,
        and the ones around it, where they are on screen."""
        if count > 0 and self.cursor is not None:
            self.cursor = max(self.cursor - count, 0)
            self.scroll_to(y=max(self.scroll_y - count, 0), animate=False, immediate=True)

    # -- the highlight ------------------------------------------------------

    def _highlighted(self) -> int:
        return len(self.lines) - 1 if self.cursor is None else self.cursor

    def action_move(self, by: int) -> None:
        self.focus()  # from the palette too: the highlight shows only with the focus
        if not self.lines:
            return
        last = len(self.lines) - 1
        at = min(max(self._highlighted() + by, 0), last)
        self.cursor = None if at == last else at
        top, height = self.scroll_y, self.scrollable_content_region.height
        if at < top:
            self.scroll_to(y=at, animate=False, immediate=True)
        elif at >= top + height:
            self.scroll_to(y=at - height + 1, animate=False, immediate=True)
        self.refresh()

    def action_page(self, direction: int) -> None:
        self.action_move(direction * max(self.scrollable_content_region.height - 1, 1))

    def action_read(self) -> None:
        if self.lines:
            at, message, severity, *_, seq = self.lines[self._highlighted()]
            self.post_message(self.Read(at, message, severity, seq))

    def on_focus(self, event: Focus) -> None:
        self.border_title = HINT

    def on_blur(self, event: Blur) -> None:
        """Back to following the end: a hidden highlight must not hold the view."""
        self.border_title = None
        if self.cursor is not None:
            self.cursor = None
            self.scroll_end(animate=False, immediate=False, x_axis=False)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        index = scroll_y + y
        if index >= len(self.lines) or not self.lines[index][4]:
            return Strip.blank(width, self.rich_style)
        style = self.rich_style
        if self.has_focus and index == self._highlighted():
            style = style + self.look("event-log--cursor")
        at, message, severity, _, line_width, _ = self.lines[index]
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
        strip = strip.crop_extend(scroll_x, scroll_x + width, style)
        return strip.apply_style(style)
