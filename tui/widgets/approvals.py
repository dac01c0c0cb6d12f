"""Pending approvals of every directive, oldest first."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from engine.models import ApprovalKind, ApprovalRequest, Directive
from tui.format import clock
from tui.presentation import APPROVAL_KIND_LABEL
from tui.widgets.looks import LOOK_CLASSES, Looks

KIND_LOOK = {
    ApprovalKind.STEP_REVIEW: "look--awaiting",
    ApprovalKind.ESCALATION: "look--blocked",
    ApprovalKind.PLAN: "look--evaluating",
}


class ApprovalsPanel(Looks, DataTable):
    COMPONENT_CLASSES = LOOK_CLASSES
    HELP_TITLE = "Pending approvals"
    BINDINGS = [Binding("enter", "select_cursor", "Answer the highlighted request", show=False)]

    """Rows keyed by approval id. `a`, `d`, `c` act on the highlighted row
    (the keys belong to the screen, which asks this panel for the row)."""

    def __init__(self, *, show_directive: bool = True, **kwargs: object) -> None:
        super().__init__(cursor_type="row", **kwargs)  # type: ignore[arg-type]
        self.show_directive = show_directive
        self._approvals: list[ApprovalRequest] = []

    def on_mount(self) -> None:
        self.add_column("Since", key="since")
        self.add_column("Kind", key="kind")
        if self.show_directive:
            self.add_column("Directive", key="directive")
        self.add_column("Request", key="summary")

    @property
    def approvals(self) -> list[ApprovalRequest]:
        return self._approvals

    @property
    def selected(self) -> ApprovalRequest | None:
        if not self._approvals:
            return None
        return self._approvals[min(max(self.cursor_row, 0), len(self._approvals) - 1)]

    def show(self, approvals: list[ApprovalRequest], titles: dict[str, Directive]) -> None:
        keep = self.selected.id if self.selected else None
        self._approvals = list(approvals)
        self.clear()
        for a in self._approvals:
            cells = [
                Text(clock(a.created_at), style=self.look("look--muted")),
                Text(APPROVAL_KIND_LABEL[a.kind], style=self.look(KIND_LOOK[a.kind])),
            ]
            if self.show_directive:
                d = titles.get(a.directive_id)
                cells.append(
                    Text(d.title if d else a.directive_id, overflow="ellipsis", no_wrap=True)
                )
            cells.append(Text(a.summary, overflow="ellipsis", no_wrap=True))
            self.add_row(*cells, key=a.id)
        ids = [a.id for a in self._approvals]
        if keep in ids:
            self.move_cursor(row=ids.index(keep))
