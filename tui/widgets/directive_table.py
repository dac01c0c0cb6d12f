"""Home: every directive in the database, one row each."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from engine.breakers import duration
from engine.models import Directive, DirectiveStatus
from tui.format import money
from tui.presentation import DIRECTIVE_LOOK
from tui.widgets.looks import LOOK_CLASSES, Looks

COLUMNS = (
    ("title", "Directive"),
    ("status", "Status"),
    ("progress", "Steps"),
    ("cost", "Cost / limit"),
    ("elapsed", "Time"),
    ("approvals", "Approvals"),
)

Progress = tuple[int, int, int]  # passed or skipped, total, pending approvals


class DirectiveTable(Looks, DataTable):
    COMPONENT_CLASSES = LOOK_CLASSES

    """Rows keyed by directive id; `show` refreshes them in place."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)  # type: ignore[arg-type]
        self._ids: list[str] = []

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def selected_id(self) -> str | None:
        if not self._ids or self.cursor_row < 0:
            return None
        return self._ids[min(self.cursor_row, len(self._ids) - 1)]

    def select(self, directive_id: str) -> None:
        if directive_id in self._ids:
            self.move_cursor(row=self._ids.index(directive_id))

    def show(self, directives: list[Directive], progress: dict[str, Progress], at: float) -> None:
        """Rebuild the rows (keeping the cursor on the same directive)."""
        keep = self.selected_id
        ids = [d.id for d in directives]
        if ids != self._ids:
            self.clear()
            for d in directives:
                self.add_row(*self._cells(d, progress.get(d.id), at), key=d.id)
            self._ids = ids
            if keep in ids:
                self.move_cursor(row=ids.index(keep))
            return
        for d in directives:
            for (key, _), cell in zip(COLUMNS, self._cells(d, progress.get(d.id), at), strict=True):
                self.update_cell(d.id, key, cell, update_width=True)

    def tick(self, directives: list[Directive], at: float) -> None:
        """Only the time column of running directives: what a clock tick changes."""
        for d in directives:
            if d.status is DirectiveStatus.ACTIVE and d.id in self._ids:
                self.update_cell(d.id, "elapsed", self._elapsed(d, at), update_width=True)

    def _elapsed(self, d: Directive, at: float) -> Text:
        limit = d.spec.limits.max_wall_time_minutes
        used = duration(d.wall_time_s(at))
        return Text(used if limit is None else f"{used} / {duration(limit * 60)}")

    def _cells(self, d: Directive, prog: Progress | None, at: float) -> list[Text]:
        look = DIRECTIVE_LOOK[d.status]
        done, total, waiting = prog or (0, 0, 0)
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
