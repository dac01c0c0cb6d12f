"""Pending approvals of every directive, oldest first."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.events import Resize
from textual.widgets import DataTable

from engine.models import ApprovalKind, ApprovalRequest, Directive
from tui.format import clock
from tui.presentation import APPROVAL_KIND_LABEL
from tui.widgets.directive_table import ID_ROOM, SHORT_ID, shared_titles, with_short_id
from tui.widgets.looks import LOOK_CLASSES, Looks

KIND_LOOK = {
    ApprovalKind.STEP_REVIEW: "look--awaiting",
    ApprovalKind.ESCALATION: "look--blocked",
    ApprovalKind.PLAN: "look--evaluating",
}


SUMMARY_MIN = 12  # the Request column's narrowest: it gives way to the view, down to this
DIRECTIVE_MAX = 30  # a long title gives way to the request it waits on:
DIRECTIVE_SHARE = 4  # at most this part of the view (a quarter), not under SUMMARY_MIN


class ApprovalsPanel(Looks, DataTable):
    COMPONENT_CLASSES = LOOK_CLASSES
    HELP_TITLE = "Pending approvals"
    BINDINGS = [
        Binding("enter", "select_cursor", "Answer the highlighted request", show=False),
        # DataTable binds them to scrolling sideways, which a table that
        # fits its pane never does: to the first and last request.
        Binding("home", "first_row", show=False),
        Binding("end", "last_row", show=False),
    ]

    """Rows keyed by approval id. `a`, `d`, `c` act on the highlighted row
    (the keys belong to the screen, which asks this panel for the row).

    Every column has a set width: the Request column takes what the others
    leave of the view and its text ends in "…" (Enter or `a` shows it all).
    Left to size themselves the columns took the whole text, so the
    ellipsis never came, a horizontal scrollbar did, and the widths of rows
    long answered stayed after `clear()`."""

    def __init__(self, *, show_directive: bool = True, **kwargs: object) -> None:
        super().__init__(cursor_type="row", **kwargs)  # type: ignore[arg-type]
        self.show_directive = show_directive
        self._approvals: list[ApprovalRequest] = []
        self._rows: list[list[Text]] = []  # the cells as shown, in column order
        self._with_id: set[str] = set()  # directive cells that end in a short id

    def on_mount(self) -> None:
        for key, label in self._labels:
            self.add_column(label, key=key, width=len(label))
        self._fit()

    def action_first_row(self) -> None:
        self.action_scroll_top()  # DataTable's ctrl+home: the cursor to the first row

    def action_last_row(self) -> None:
        self.action_scroll_bottom()

    @property
    def _labels(self) -> list[tuple[str, str]]:
        labels = [("since", "Since"), ("kind", "Kind")]
        if self.show_directive:
            labels.append(("directive", "Directive"))
        return [*labels, ("summary", "Request")]

    @property
    def approvals(self) -> list[ApprovalRequest]:
        return self._approvals

    @property
    def selected(self) -> ApprovalRequest | None:
        if not self._approvals:
            return None
        return self._approvals[min(max(self.cursor_row, 0), len(self._approvals) - 1)]

    def show(self, approvals: list[ApprovalRequest], titles: dict[str, Directive]) -> None:
        """Show these rows, the cursor on the request it was on; when that
        one went (answered), on the same row, where the next request moved
        up: a person works down the queue."""
        keep = self.selected.id if self.selected else None
        row = self.cursor_row
        self._approvals = list(approvals)
        waiting = {a.directive_id for a in approvals if a.directive_id in titles}
        shared = shared_titles(titles[did].title for did in waiting)
        self._with_id.clear()
        rows = []
        for a in self._approvals:
            cells = [
                Text(clock(a.created_at), style=self.look("look--muted")),
                Text(APPROVAL_KIND_LABEL[a.kind], style=self.look(KIND_LOOK[a.kind])),
            ]
            if self.show_directive:
                cells.append(self._directive_cell(a.directive_id, titles, shared))
            cells.append(Text(a.summary, overflow="ellipsis", no_wrap=True))
            rows.append(cells)
        self._rebuild(rows, keep, row)

    def _directive_cell(self, did: str, titles: dict[str, Directive], shared: set[str]) -> Text:
        """The title; with the short id after it when another directive
        waiting here has the same title (as home's table does)."""
        d = titles.get(did)
        if d is None:
            return Text(did, overflow="ellipsis", no_wrap=True)
        if d.title not in shared:
            return Text(d.title, overflow="ellipsis", no_wrap=True)
        cell = Text.assemble(d.title, (" " + did[:SHORT_ID], self.look("look--muted")))
        self._with_id.add(cell.plain)
        return cell

    def _fit_ids(self, rows: list[list[Text]]) -> list[list[Text]]:
        """The directive cells that end in a short id, cut in their title
        (not in the id) to the column's width now: the id is what tells
        two of one title apart, and it went first when the column was
        narrow."""
        if not self.show_directive:
            return rows
        width = list(self.columns.values())[2].width
        fitted = []
        for cells in rows:
            cell = cells[2]
            if cell.plain in self._with_id and cell.cell_len > width:
                title, short_id = cell.plain[:-ID_ROOM], cell.plain[-SHORT_ID:]
                cell = with_short_id(Text(title), short_id, width, self.look("look--muted"))
            fitted.append([*cells[:2], cell, *cells[3:]])
        return fitted

    def on_resize(self, event: Resize) -> None:
        if self._widths() != [c.width for c in self.columns.values()]:
            self._rebuild(self._rows, self.selected.id if self.selected else None)

    def _widths(self) -> list[int]:
        """Each column as wide as its widest cell (the directive's at most
        DIRECTIVE_MAX and a quarter of the view), the Request column what is
        left of the view."""
        natural = [
            max([len(label), *(row[i].cell_len for row in self._rows)])
            for i, (_, label) in enumerate(self._labels)
        ]
        pad = 2 * self.cell_padding
        # The view less the vertical scrollbar the rows are about to need
        # (its coming sends no resize).
        view = self.content_region.width
        if len(self._rows) + self.header_height > self.content_region.height:
            view -= self.styles.scrollbar_size_vertical
        if self.show_directive:
            share = max(view // DIRECTIVE_SHARE, SUMMARY_MIN)
            natural[2] = min(natural[2], DIRECTIVE_MAX, share)
        others = sum(width + pad for width in natural[:-1])
        natural[-1] = max(SUMMARY_MIN, view - others - pad) if view else natural[-1]
        return natural

    def _fit(self) -> None:
        for column, width in zip(self.columns.values(), self._widths(), strict=True):
            column.width = width
            column.auto_width = False

    def _rebuild(self, rows: list[list[Text]], keep: str | None, row: int = 0) -> None:
        """All rows again at widths that fit the view, the cursor on the
        approval `keep` if it is still there, else on `row` (or the last)."""
        self._rows = rows
        self.clear()
        self._fit()
        for a, cells in zip(self._approvals, self._fit_ids(rows), strict=True):
            self.add_row(*cells, key=a.id)
        ids = [a.id for a in self._approvals]
        if keep in ids:
            self.move_cursor(row=ids.index(keep))
        elif ids:
            self.move_cursor(row=min(max(row, 0), len(ids) - 1))
