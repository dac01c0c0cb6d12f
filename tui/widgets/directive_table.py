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
PROGRESS = [key for key, _ in COLUMNS].index("progress")
TITLE_MIN = 12
SHORT_ID = 6
ID_ROOM = SHORT_ID + 1  # the id and a space before it


class DirectiveTable(Looks, DataTable):
    COMPONENT_CLASSES = LOOK_CLASSES
    HELP_TITLE = "The directives"
    # DataTable binds them to scrolling sideways, which a table that fits
    # its pane never does: to the first and last directive.
    BINDINGS = [
        Binding("home", "first_row", show=False),
        Binding("end", "last_row", show=False),
    ]

    """Rows keyed by directive id; `show` refreshes them in place."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)  # type: ignore[arg-type]
        self._ids: list[str] = []
        self._rows: dict[str, list[Text]] = {}  # the cells (the title without its id), by id
        self._shared: set[str] = set()  # titles more than one directive has
        # The Steps cell of a directive with skipped steps, in full ("3/3 (1
        # skipped)", as the header and `list` say it) and short ("3/3»1",
        # the DAG's mark for a skip: where the full one leaves the title less
        # than TITLE_MIN, at 80 columns).
        self._steps: dict[str, tuple[Text, Text]] = {}

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key, width=TITLE_MIN if key == "title" else None)

    def action_first_row(self) -> None:
        self.action_scroll_top()  # DataTable's ctrl+home: the cursor to the first row

    def action_last_row(self) -> None:
        self.action_scroll_bottom()

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
        self._steps = {}
        rows = {d.id: self._cells(d, progress.get(d.id), at) for d in directives}
        rows = self._fit_steps(rows)
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
        self._relayout()

    def on_resize(self, event: Resize) -> None:
        self._relayout()

    def _relayout(self) -> None:
        """Laid out again when the view or the cells' widths call for
        another title width or another form of the Steps cells."""
        rows = self._fit_steps(self._rows)
        steps = [row[PROGRESS].plain for row in rows.values()]
        if (
            steps != [row[PROGRESS].plain for row in self._rows.values()]
            or self._title_width(rows) != self._title.width
        ):
            self._rebuild(rows)

    def _fit_steps(self, rows: dict[str, list[Text]]) -> dict[str, list[Text]]:
        """The rows with the Steps cells of skipping directives in full,
        or short where the full ones leave the title too little room."""
        if not self._steps:
            return rows

        def form(short: int) -> dict[str, list[Text]]:
            return {
                did: [*cells[:PROGRESS], self._steps[did][short], *cells[PROGRESS + 1 :]]
                if did in self._steps
                else cells
                for did, cells in rows.items()
            }

        full = form(0)
        room = self._room(full)
        return full if room is None or room >= TITLE_MIN else form(1)

    @property
    def _title(self) -> Column:
        return self.columns[ColumnKey("title")]

    def _title_width(self, rows: dict[str, list[Text]]) -> int:
        """As wide as the longest title and its id, as long as the other
        columns fit."""
        natural = max([len("Directive"), *(row[0].cell_len for row in rows.values())]) + ID_ROOM
        room = self._room(rows)
        return natural if room is None else max(TITLE_MIN, min(natural, room))

    def _room(self, rows: dict[str, list[Text]]) -> int | None:
        """What the other columns leave the title of the view (None before
        the table has a size)."""
        natural = [
            max([Text(label).cell_len, *(row[i].cell_len for row in rows.values())])
            for i, (_, label) in enumerate(COLUMNS)
        ]
        # The view less the vertical scrollbar the rows need (whether it is
        # there yet or not: its coming sends no resize, and at 80 columns the
        # header read "Approval" above a horizontal scrollbar).
        view = self.content_region.width
        if not view:
            return None
        if len(rows) + self.header_height > self.content_region.height:
            view -= self.styles.scrollbar_size_vertical
        pad = 2 * self.cell_padding
        others = sum(width + pad for width in natural[1:])
        return view - others - pad

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
        steps = Text(f"{done}/{total}" if total else "–")
        if prog.skipped:  # as the header and `list` say it: a skip is no pass
            skipped = self.look("look--skipped")
            self._steps[d.id] = (
                steps + Text(f" ({prog.skipped} skipped)", skipped),
                steps + Text(f"»{prog.skipped}", skipped),
            )
        limit = d.spec.limits.max_cost_usd
        cost = money(d.total_cost_usd) + ("" if limit is None else f" / {money(limit)}")
        return [
            Text(d.title, style=self.look("look--title"), overflow="ellipsis", no_wrap=True),
            Text(f"{look.icon} {look.label}", style=self.look(f"look--{look.css}")),
            steps,
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
