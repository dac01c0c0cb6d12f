"""Home: every directive in the database, one row each.

The title column gives way (down to TITLE_MIN cells, its text cut with an
ellipsis) so the others, the approvals waiting above all, fit the view: at
80 columns a long title would push them off the screen.

After the title, muted, the first SHORT_ID characters of the directive's id
(what the command line takes as an id): two directives of one title could
not be told apart. Where the title column is too narrow for the id beside
a readable title (80 columns), only titles that more than one directive has
keep it.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.events import Resize
from textual.widgets import DataTable
from textual.widgets.data_table import Column, ColumnKey

from engine.breakers import duration
from engine.models import CLOCK_RUNNING, Directive, Progress
from tui.format import money
from tui.presentation import DIRECTIVE_LOOK, clock_mark
from tui.widgets.looks import LOOK_CLASSES, Looks

COLUMNS = (
    ("title", "Directive"),
    ("status", "Status"),
    ("progress", "Steps"),
    ("cost", "Cost / limit"),
    ("elapsed", "Time"),
    ("approvals", "Approvals"),
)

ELAPSED = [key for key, _ in COLUMNS].index("elapsed")
TITLE_MIN = 12
SHORT_ID = 6
ID_ROOM = SHORT_ID + 1  # the id and a space before it


class DirectiveTable(Looks, DataTable):
    COMPONENT_CLASSES = LOOK_CLASSES
    HELP_TITLE = "The directives"
    # DataTable binds them to scrolling sideways, which a table that fits
    # its pane never does: to the first and last directive.
    BINDINGS = [
        Binding("home", "scroll_top", show=False),
        Binding("end", "scroll_bottom", show=False),
    ]

    """Rows keyed by directive id; `show` refreshes them in place."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)  # type: ignore[arg-type]
        self._ids: list[str] = []
        self._rows: dict[str, list[Text]] = {}  # the cells (the title without its id), by id
        self._shared: set[str] = set()  # titles more than one directive has

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key, width=TITLE_MIN if key == "title" else None)

    @property
    def selected_id(self) -> str | None:
        if not self._ids or self.cursor_row < 0:
            return None
        return self._ids[min(self.cursor_row, len(self._ids) - 1)]

    def select(self, directive_id: str) -> None:
        if directive_id in self._ids:
            self.move_cursor(row=self._ids.index(directive_id))

    def show(self, directives: list[Directive], progress: dict[str, Progress], at: float) -> None:
        """Show these rows: updated in place, or laid out again when the
        directives or the title column's width changed."""
        rows = {d.id: self._cells(d, progress.get(d.id), at) for d in directives}
        if (
            list(rows) != self._ids
            or self._title_width(rows) != self._title.width
            or shared_titles(row[0].plain for row in rows.values()) != self._shared
        ):
            self._rebuild(rows)
            return
        self._rows = rows
        for directive_id, cells in rows.items():
            cells = [self._titled(directive_id, cells[0]), *cells[1:]]
            for (key, _), cell in zip(COLUMNS, cells, strict=True):
                self.update_cell(directive_id, key, cell, update_width=True)

    def tick(self, directives: list[Directive], at: float) -> None:
        """Only the time column of working directives (planning or active):
        what a clock tick changes."""
        for d in directives:
            if d.status in CLOCK_RUNNING and d.id in self._rows:
                cell = self._rows[d.id][ELAPSED] = self._elapsed(d, at)
                self.update_cell(d.id, "elapsed", cell, update_width=True)
        if self._title_width(self._rows) != self._title.width:
            self._rebuild(self._rows)

    def on_resize(self, event: Resize) -> None:
        if self._title_width(self._rows) != self._title.width:
            self._rebuild(self._rows)

    @property
    def _title(self) -> Column:
        return self.columns[ColumnKey("title")]

    def _title_width(self, rows: dict[str, list[Text]]) -> int:
        """As wide as the longest title and its id, as long as the other
        columns fit."""
        natural = [
            max([Text(label).cell_len, *(row[i].cell_len for row in rows.values())])
            for i, (_, label) in enumerate(COLUMNS)
        ]
        natural[0] += ID_ROOM
        view = self.scrollable_content_region.width
        if not view:
            return natural[0]
        pad = 2 * self.cell_padding
        others = sum(width + pad for width in natural[1:])
        return max(TITLE_MIN, min(natural[0], view - others - pad))

    def _rebuild(self, rows: dict[str, list[Text]]) -> None:
        """All rows again (keeping the cursor on the same directive, or on
        its row when that one went: deleted)."""
        keep = self.selected_id
        row = self.cursor_row
        self._title.width = self._title_width(rows)
        self._shared = shared_titles(row[0].plain for row in rows.values())
        self._rows = rows
        self._ids = list(rows)
        self.clear()
        # A column sized to its cells keeps its widest ever (clear() does not
        # forget it): when a wider cell went (the clock's ⏸ on a paused row),
        # the title's room, worked out from the cells now, overflowed the
        # table at 80 columns. Back to its header's width, as add_column
        # starts it: from 0, cells narrower than the header ("2/2", "–")
        # cut it to "Ste" and "A".
        for column in self.columns.values():
            if column.auto_width:
                column.content_width = column.label.cell_len
        for directive_id, cells in rows.items():
            self.add_row(self._titled(directive_id, cells[0]), *cells[1:], key=directive_id)
        if keep in self._ids:
            self.move_cursor(row=self._ids.index(keep))
        elif self._ids:
            self.move_cursor(row=min(max(row, 0), len(self._ids) - 1))

    def _titled(self, directive_id: str, title: Text) -> Text:
        """The title cell as shown: the title (cut to leave room) and the
        short id, muted, in a column of their own at the cell's end; the
        title alone where the ids do not fit and this title is no other's."""
        room = self._title.width - ID_ROOM
        longest = max((row[0].cell_len for row in self._rows.values()), default=0)
        if room < min(TITLE_MIN, longest) and title.plain not in self._shared:
            return title
        return with_short_id(title, directive_id, self._title.width, self.look("look--muted"))

    def _elapsed(self, d: Directive, at: float) -> Text:
        limit = d.spec.limits.max_wall_time_minutes
        used = duration(d.wall_time_s(at))
        shown = used if limit is None else f"{used} / {duration(limit * 60)}"
        return Text(shown + clock_mark(d))

    def _cells(self, d: Directive, prog: Progress | None, at: float) -> list[Text]:
        look = DIRECTIVE_LOOK[d.status]
        prog = prog or Progress()
        done, total, waiting = prog.done, prog.total, prog.pending_approvals
        limit = d.spec.limits.max_cost_usd
        cost = money(d.total_cost_usd) + ("" if limit is None else f" / {money(limit)}")
        return [
            Text(d.title, style=self.look("look--title"), overflow="ellipsis", no_wrap=True),
            Text(f"{look.icon} {look.label}", style=self.look(f"look--{look.css}")),
            Text(f"{done}/{total}" if total else "–"),
            Text(cost),
            self._elapsed(d, at),
            Text(f"⚑ {waiting}", style=self.look("look--awaiting")) if waiting else Text("–"),
        ]


def with_short_id(title: Text, directive_id: str, width: int, style: Style) -> Text:
    """`width` cells: the title, cut with an ellipsis where it must be, then
    the directive's short id in `style`. The title gives way, never the id
    (it is what tells two of one title apart)."""
    shown = title.copy()
    shown.truncate(max(width - ID_ROOM, 1), overflow="ellipsis", pad=True)
    shown.append(" " + directive_id[:SHORT_ID], style)
    return shown


def shared_titles(titles: Iterable[str]) -> set[str]:
    """The titles given more than once (one per directive)."""
    seen: set[str] = set()
    shared: set[str] = set()
    for title in titles:
        (shared if title in seen else seen).add(title)
    return shared
