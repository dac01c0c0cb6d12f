"""`G` on a directive: what it did in git. Its checkpoints (a commit per
passed step on the integration branch), the final diff (`--stat` on top,
the whole diff below), fast-forwarding your branch to it (`m`) and going
back to a checkpoint (`r` / enter), or to where the directive started (the
first row), both after a confirmation. Only the keys that apply are
offered: an ended directive runs nothing again, so it has no reset, and a
branch that cannot be fast-forwarded has no `m`; pressed anyway, each says
why in a sentence.

Everything comes from git through the engine, in a worker after the first
frame; a directive without a git workspace says so in a notification."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Static

from engine.checkpoints import START_LABEL, Checkpoint
from engine.models import Actor, Directive, DirectiveStatus, Step
from engine.store import StoreError
from engine.user_branch import FastForwardOffer
from engine.worktree_names import step_slug
from tui.format import undo_command
from tui.messages import EngineBatch
from tui.modals.confirm import ConfirmModal
from tui.screens.base import EngineScreen, refusable
from tui.widgets.diff_log import DiffLog

# Events after which the result may have changed.
RESULT_EVENTS = frozenset({"checkpoint_recorded", "directive_status_changed"})
ENDED = frozenset({DirectiveStatus.COMPLETED, DirectiveStatus.FAILED, DirectiveStatus.STOPPED})


@dataclass
class Result:
    directive: Directive
    steps: list[Step]
    checkpoints: list[Checkpoint]  # the start point first, then one per passed step
    stat: str
    diff: str
    offer: FastForwardOffer


class ResultScreen(EngineScreen):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("q", "app.quit", "Quit", show=False),  # as on the home screen
        *refusable("m", "merge", "Fast-forward your branch"),
        *refusable("r", "reset", "Reset to checkpoint"),
        Binding("tab", "app.focus_next", "Next pane", show=False),
    ]

    def __init__(self, directive_id: str) -> None:
        super().__init__()
        self.directive_id = directive_id
        self.result: Result | None = None
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("Result", id="result-title")
        yield Static("", id="result-offer")
        with Vertical(id="result-checkpoints", classes="pane"):
            table: DataTable[str] = DataTable(
                id="checkpoints", cursor_type="row", zebra_stripes=True
            )
            table.add_columns("Checkpoint", "#", "Step", "Attempt")
            yield table
        with Vertical(id="result-diff", classes="pane"):
            yield DiffLog(id="final-diff")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#result-checkpoints").border_title = "Checkpoints"
        self.query_one("#result-diff").border_title = "Diff"
        self.query_one(DataTable).focus()
        super().on_mount()

    # -- loading ----------------------------------------------------------------

    async def load(self) -> None:
        self.refresh_result()

    async def apply(self, batch: EngineBatch) -> None:
        mine = batch.of(self.directive_id)
        if any(e.type in RESULT_EVENTS for e in mine) or any(
            e.type == "notice" and e.actor is Actor.USER for e in mine
        ):
            self.refresh_result()

    @work(exclusive=True, group="result")
    async def refresh_result(self) -> None:
        """Read everything first, then draw it at once."""
        from engine.engine import EngineError

        try:
            directive = await self.store.get_directive(self.directive_id)
            chain = await self.store.current_chain(self.directive_id)
            steps = await self.store.list_steps(chain.id) if chain else []
            checkpoints = [
                await self.engine.start_point(self.directive_id),
                *await self.engine.checkpoints(self.directive_id),
            ]
            stat = await self.engine.final_diff(self.directive_id, stat=True)
            diff = await self.engine.final_diff(self.directive_id)
            offer = await self.engine.offer_fast_forward(self.directive_id)
        except (EngineError, StoreError) as exc:
            self._show_error(str(exc))
            return
        if not self.is_attached:
            return
        self.error = None
        self.result = Result(directive, steps, checkpoints, stat, diff, offer)
        self._show(self.result)

    def _show_error(self, message: str) -> None:
        first = self.error is None
        self.error = message
        self.notify(f"No result to show: {message}", severity="error", timeout=10)
        if not self.is_attached:
            return
        self._follow_bindings()
        if first:
            log = self.query_one(DiffLog)
            log.clear()
            log.note(f"No result to show: {message}", "sev--error")

    def _show(self, r: Result) -> None:
        d = r.directive
        self.query_one("#result-title", Static).update(
            Text.assemble(" Result · ", d.title, "  ", d.status.value, "  ", self.dapp.role_note)
        )
        offer = Text()
        if r.offer.possible:
            offer.append(" m: ")
            offer.append(r.offer.reason)
        else:
            offer.append(f" {r.offer.reason}")
        self.query_one("#result-offer", Static).update(offer)
        self.query_one("#result-offer", Static).set_class(not r.offer.possible, "-muted")
        # "Final" only once no step runs again: before, it is the result so far.
        diff_pane = self.query_one("#result-diff")
        diff_pane.border_title = "Final diff" if d.status in ENDED else "Diff so far"
        names = {step_slug(s.name): s.name for s in r.steps}
        table: DataTable[str] = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for cp in r.checkpoints:
            table.add_row(cp.sha[:12], str(cp.seq), _step_label(cp, names), _attempt_label(cp))
        table.move_cursor(row=min(row, len(r.checkpoints) - 1))
        # The first row is where the directive started, not a checkpoint.
        passed = len(r.checkpoints) - 1
        pane = self.query_one("#result-checkpoints")
        pane.border_title = f"Checkpoints (start + {passed})" if passed else "Checkpoints (start)"
        # (it read "r / enter: reset to", as if cut)
        pane.border_subtitle = (
            "r / enter: reset to the selected checkpoint" if self.refusal("reset") is None else ""
        )
        self._follow_bindings()
        log = self.query_one(DiffLog)
        log.clear()
        if not r.diff.strip():
            if d.status in ENDED:  # "yet" promised more from a directive that runs no more
                log.note(f"No changes: {d.title} is {d.status.value} and no step changed anything.")
            else:
                log.note("No changes yet: the integration branch is where your branch was.")
            return
        log.stat(r.stat)
        log.add(Text(""))
        db = shlex.quote(str(self.dapp.db_path.absolute()))  # the default one may be another
        log.diff(r.diff, more=f"directive-tui --db {db} diff {d.id}")

    # -- the selection --------------------------------------------------------------

    def selected_checkpoint(self) -> Checkpoint | None:
        if self.result is None or not self.result.checkpoints:
            return None
        row = self.query_one(DataTable).cursor_row
        cps = self.result.checkpoints
        return cps[row] if 0 <= row < len(cps) else None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_reset()

    # -- actions ----------------------------------------------------------------

    def action_back(self) -> None:
        self.app.pop_screen()

    # -- which keys apply -----------------------------------------------------

    def refusal(self, action: str) -> str | None:
        if action not in ("merge", "reset"):
            return super().refusal(action)
        if self.error is not None:
            return f"No result to show: {self.error}"
        r = self.result
        if r is None:
            return "Still reading the result…"
        if action == "merge":
            return None if r.offer.possible else f"Cannot fast-forward: {r.offer.reason}"
        d = r.directive
        if d.status in ENDED:
            return (
                f"{d.title} is {d.status.value}: its steps will not run again, "
                "so there is nothing to reset."
            )
        if len(r.checkpoints) < 2:
            return "Nothing to go back to: no step has passed yet."
        return None

    def _follow_bindings(self) -> None:
        self.follow_bindings((self.refusal("merge") is None, self.refusal("reset") is None))

    def _unavailable(self, action: str) -> bool:
        """Not now, and said why (enter on a row gets here without the key's check)."""
        if self.not_ready():
            return True
        refusal = self.refusal(action)
        if refusal is not None:
            self.notify(refusal, severity="error" if self.error else "warning", timeout=8)
            return True
        return False

    @work(group="result-action", exclusive=True)
    async def action_merge(self) -> None:
        if self._unavailable("merge"):
            return
        offer = await self.dapp.command_value(self.engine.offer_fast_forward(self.directive_id))
        if offer is None:
            return
        if not offer.possible:
            self.notify(f"Cannot fast-forward: {offer.reason}", severity="warning", timeout=10)
            self.refresh_result()  # the line above the checkpoints still offered `m`
            return
        d = self.result.directive if self.result else None
        question = (
            f"Fast-forward your branch {offer.branch} to the directive's result "
            f"({offer.target_sha[:12]})?\n{offer.reason}"
        )
        if d is not None and d.status not in ENDED:
            question += f"\nThe directive is still {d.status.value}: this takes the result so far."
        # Where the branch was and how to put it back, as `merge` says.
        old = offer.current_sha
        undo = undo_command(offer, d.spec.repo, old[:12]) if old and d is not None else ""
        if undo:
            question += f"\nIt is at {old[:12]} now; to undo afterwards: {undo}"
        if not await self.app.push_screen_wait(ConfirmModal(question, "Fast-forward")):
            return
        sha = await self.dapp.command_value(self.engine.fast_forward_user_branch(self.directive_id))
        if sha is None:
            return
        said = f"Your branch {offer.branch} now points at {sha[:12]}"
        if undo:
            said += f" (it was at {old[:12]}).\nTo undo: {undo}"  # type: ignore[index]
        # Paths and names are not markup; long enough to copy the command.
        self.notify(said, title="Fast-forwarded", timeout=20 if undo else 5, markup=False)
        self.refresh_result()

    @work(group="result-action", exclusive=True)
    async def action_reset(self) -> None:
        if self._unavailable("reset") or self.result is None:
            return
        cp = self.selected_checkpoint()
        if cp is None:
            return
        r = self.result
        names = {step_slug(s.name): s.name for s in r.steps}
        # refused for an ended directive: nothing would run again
        preview = await self.dapp.command_value(
            self.engine.preview_reset(self.directive_id, cp.seq)
        )
        if preview is None:
            return
        where = (
            f"where it started ({cp.sha[:12]}, before any step)"
            if cp.is_start
            else f"checkpoint {cp.sha[:12]} (#{cp.seq} {_step_label(cp, names)}, "
            f"attempt {cp.attempt})"
        )
        question = (
            f"Reset the directive to {where}?\n"
            "Its integration branch moves back there; later steps go back to pending"
            + (
                f" and run again: {', '.join(preview)}."
                if preview
                else " (none: it is the latest)."
            )
        )
        if not await self.app.push_screen_wait(ConfirmModal(question, "Reset", danger=True)):
            return
        rerun = await self.dapp.command_value(
            self.engine.reset_to_checkpoint(self.directive_id, cp.seq)
        )
        if rerun is None:
            return
        self.notify(
            f"Back to {cp.sha[:12]}; to run again: {', '.join(rerun) or 'nothing'}.",
            title="Reset",
        )
        self.refresh_result()


def _step_label(cp: Checkpoint, names: dict[str, str]) -> str:
    return START_LABEL if cp.is_start else names.get(cp.step_slug, cp.step_slug)


def _attempt_label(cp: Checkpoint) -> str:
    return "" if cp.is_start else str(cp.attempt)
