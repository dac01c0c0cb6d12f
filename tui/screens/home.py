"""Home: every directive (status, progress, cost, time, approvals) and the
pending approvals of all of them."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Static

from engine.models import ApprovalRequest, Directive
from tui.applicable import DIRECTIVE_ACTIONS
from tui.messages import EngineBatch
from tui.screens.base import APPROVAL_BINDINGS, PAUSE_BINDINGS, EngineScreen, refusable
from tui.widgets.approvals import ApprovalsPanel
from tui.widgets.directive_table import DirectiveTable

# Events that change what the home screen shows (step output does not).
HOME_EVENTS = frozenset(
    {
        "directive_created",
        "directive_status_changed",
        "step_status_changed",
        "cost_updated",
        "chain_created",
        "approval_required",
        "approval_resolved",
        "limits_changed",
        "breaker_tripped",
        "clock_changed",
    }
)


# Keys that act on the selected directive.
SELECTION_ACTIONS = DIRECTIVE_ACTIONS | {"open"}


class HomeScreen(EngineScreen):
    BINDINGS = [
        Binding("enter,o", "open", "Open"),
        Binding("n", "new", "New"),
        *refusable("s", "start", "Start"),
        *PAUSE_BINDINGS,
        *refusable("x", "stop", "Stop"),
        *refusable("delete", "delete", "Delete"),
        *APPROVAL_BINDINGS,
        Binding("q", "app.quit", "Quit"),
        Binding("tab", "app.focus_next", "Next pane", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.directives: dict[str, Directive] = {}
        self._stale = False  # events arrived while another screen was on top

    def compose(self) -> ComposeResult:
        yield Static("directive-tui", id="home-title")
        with Vertical(id="home-directives", classes="pane"):
            yield DirectiveTable(id="directives")
        with Vertical(id="home-approvals", classes="pane"):
            yield ApprovalsPanel(id="approvals")
        yield Static("Opening the database…", id="home-empty")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#home-directives").border_title = "Directives"
        self.query_one("#home-approvals").border_title = "Pending approvals"
        self.set_interval(1.0, self._tick)

    # -- data -----------------------------------------------------------------

    async def load(self) -> None:
        directives = await self.store.list_directives()
        progress = await self.store.progress()
        self.directives = {d.id: d for d in directives}
        self.show_title()
        table = self.query_one(DirectiveTable)
        table.show(directives, progress, self.dapp.clock())
        empty = self.query_one("#home-empty", Static)
        empty.display = not directives
        # The database by its path (a forgotten DIRECTIVE_TUI_DB shows here),
        # and a demo command that fills this one, not the default database.
        from tui.cli.program import command_line

        demo = f"{command_line(self.dapp.db_path)} demo"
        empty.update(
            f"No directives in {self.dapp.db_path} yet: press n to create one, or run `{demo}`."
        )
        await self._load_approvals()
        self._follow_bindings()

    def show_title(self) -> None:
        """Who runs the engine (when another process does), where the
        demo's repository is (when this app runs the demo), and last, what
        a narrow title gives up first, the database (its file's name; the
        empty home names its whole path)."""
        notes = [self.dapp.role_note]
        if self.dapp.demo_repository is not None:
            notes.append(f"demo repository {self.dapp.demo_repository}")
        notes.append(self.dapp.db_path.name)
        title = Text("directive-tui")
        for note in filter(None, notes):
            title.append(f"  · {note}", "dim")
        self.query_one("#home-title", Static).update(title)

    async def _load_approvals(self) -> None:
        pending = await self.store.pending_approvals()
        self.query_one(ApprovalsPanel).show(pending, self.directives)
        self.query_one("#home-approvals").border_title = f"Pending approvals ({len(pending)})"

    async def apply(self, batch: EngineBatch) -> None:
        if not any(e.type in HOME_EVENTS for e in batch.events):
            return
        # On top only: Textual's is_current holds for the screen under the top
        # one too, so home read every directive and redrew its table after
        # each batch while a directive ran on the screen above (5x slower
        # steps, keys frozen up to 0.9 s, with 130 directives).
        if self.app.screen is self:
            await self.load()
        else:  # under a directive screen: read once when it shows again, not per batch
            self._stale = True

    async def on_screen_resume(self) -> None:
        if self._stale and self.ready:
            self._stale = False
            await self.load()

    def _tick(self) -> None:
        if self.ready and self.directives:
            self.query_one(DirectiveTable).tick(list(self.directives.values()), self.dapp.clock())

    # -- the selection --------------------------------------------------------

    def _approvals_focused(self) -> bool:
        panels = self.query(ApprovalsPanel)  # asked before the first compose too
        return bool(panels) and self.focused is panels.first()

    @property
    def selected(self) -> Directive | None:
        """The directive the keys act on: the one the focused pane points
        at. With the approvals panel focused, the highlighted approval's
        directive (the table's row, out of focus, is not what a person looks
        at); otherwise the table's selected row."""
        if self._approvals_focused():
            approval = self.query_one(ApprovalsPanel).selected
            return self.directives.get(approval.directive_id) if approval else None
        tables = self.query(DirectiveTable)
        directive_id = tables.first().selected_id if tables else None
        return self.directives.get(directive_id) if directive_id else None

    def current_approval(self) -> ApprovalRequest | None:
        """The approvals panel's highlighted row when it has the focus;
        otherwise the selected directive's oldest approval (never another
        directive's)."""
        if self._approvals_focused():
            return self.query_one(ApprovalsPanel).selected
        mine = self.approvals_here()
        return mine[0] if mine else None

    def approvals_here(self) -> list[ApprovalRequest]:
        """Every pending approval while the approvals panel has the focus;
        otherwise the selected directive's, oldest first."""
        panels = self.query(ApprovalsPanel)  # asked before the first compose too
        if not panels:
            return []
        pending = panels.first().approvals
        if self._approvals_focused():
            return pending
        d = self.selected
        return [a for a in pending if d is not None and a.directive_id == d.id]

    def command_directive(self) -> Directive | None:
        return self.selected

    def refusal(self, action: str) -> str | None:
        """With no directive (none yet, or the last one deleted) the keys
        that act on one are not offered."""
        if action in SELECTION_ACTIONS and self.selected is None:
            return "No directive selected."
        if action == "approval" and not self.approvals_here():
            d = self.selected
            if d is not None:
                return f"No pending approval for {d.title}."
        return super().refusal(action)

    def _follow_bindings(self) -> None:
        """The keys depend on the selected directive's status, not on which
        one it is (moving between rows of one status redraws nothing), on
        whether an approval is pending for the focused pane (any, in the
        approvals panel; the selected directive's, in the table), and on
        whether the one the keys answer is an escalation (`a` is Decide then)."""
        d = self.selected
        self.follow_bindings((d.status if d else None, self.approval_keys()))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._follow_bindings()  # a directive's keys, or the approval the keys answer

    def on_descendant_focus(self) -> None:
        self._follow_bindings()  # the approvals panel's row, or the directive's first

    def _need_selection(self) -> Directive | None:
        if self.not_ready():
            return None
        d = self.selected
        if d is None:
            self.notify("No directive selected.", severity="warning")
        return d

    # -- actions --------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "directives":
            self.action_open()
        elif event.data_table.id == "approvals":
            self.action_approval("approve")

    def action_open(self) -> None:
        d = self._need_selection()
        if d is not None:
            self.dapp.open_directive_screen(d.id)

    @work(group="home")
    async def action_new(self) -> None:
        if self.not_ready():
            return
        from tui.screens.new_directive import NewDirectiveScreen

        created = await self.app.push_screen_wait(NewDirectiveScreen())
        if created is not None:
            await self.load()
            # Selected and focused: with the approvals panel focused before,
            # enter answered a request instead of opening what was made.
            table = self.query_one(DirectiveTable)
            table.select(created)
            table.focus()

    async def action_start(self) -> None:
        d = self._need_selection()
        if d is not None:
            await self.start(d)

    @work(group="home")
    async def action_pause(self) -> None:
        d = self._need_selection()
        if d is not None:
            await self.pause(d)

    @work(group="home")
    async def action_resume(self) -> None:
        d = self._need_selection()
        if d is not None:
            await self.resume(d)

    @work(group="home")
    async def action_stop(self) -> None:
        d = self._need_selection()
        if d is not None:
            await self.stop(d)

    @work(group="home")
    async def action_delete(self) -> None:
        d = self._need_selection()
        if d is not None and await self.delete(d):
            await self.load()

    @work(group="approval", exclusive=True)
    async def action_approval(self, intent: str) -> None:
        await super().action_approval(intent)
