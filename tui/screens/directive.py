"""One directive: the DAG, the focused step, approvals, budgets, the log.

Everything is loaded once from the store, then kept current from engine
event batches: step boxes change from the events themselves (status,
rework count, confidence); the directive row is re-read once per batch;
the chain is re-read only when a new one is created.
"""

from __future__ import annotations

import re
from collections import deque

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, TabbedContent, TabPane

from engine.events import (
    ApprovalRequired,
    CostUpdated,
    DirectiveStatusChanged,
    EvaluationCompleted,
    StepOutput,
    StepStatusChanged,
)
from engine.models import (
    CLOCK_RUNNING,
    ApprovalKind,
    ApprovalRequest,
    ConfidenceLevel,
    Directive,
    DirectiveStatus,
    Evaluation,
    Step,
    StepRun,
    StepStatus,
)
from engine.store import NotFound
from engine.transitions import DIRECTIVE_TERMINAL
from tui.applicable import STEP_ACTIONS, step_refusal
from tui.messages import EngineBatch
from tui.modals.confirm import ConfirmModal
from tui.modals.diff import AttemptDiffs
from tui.modals.event_text import EventText, error_in_full
from tui.screens.base import APPROVAL_BINDINGS, PAUSE_BINDINGS, EngineScreen, refusable
from tui.widgets.approvals import ApprovalsPanel
from tui.widgets.budgets import BudgetBars
from tui.widgets.dag import DagView
from tui.widgets.event_log import EventLog
from tui.widgets.header import DirectiveHeader
from tui.widgets.step_detail import TAIL_LINES, StepDetail

# Where the focus lands when the screen opens, first match wins.
ATTENTION = (
    StepStatus.AWAITING_APPROVAL,
    StepStatus.BLOCKED,
    StepStatus.FAILED,
    StepStatus.RUNNING,
)
ATTEMPT = re.compile(r"\battempt (\d+)")  # a running status's reason: "attempt 2 (rework)"
# A step's status whose reason is its attempt's error (cut by the engine).
FAILING = frozenset({StepStatus.FAILED.value, StepStatus.BLOCKED.value})
LOG_HISTORY = 300  # events read back into the log when the screen opens
OUTPUT_HISTORY = 1_000  # recent events searched for step output lines
# Events after which the directive's row (status, cost, counters) is read
# again; a failed step counts too (failed_steps). Anything else, notices and
# output above all, never costs a database read.
DIRECTIVE_ROW_EVENTS = frozenset(
    {
        "directive_status_changed",
        "cost_updated",
        "chain_created",
        "breaker_tripped",
        "limits_changed",
        "clock_changed",
    }
)
APPROVAL_EVENTS = frozenset({"approval_required", "approval_resolved", "directive_status_changed"})
# Events the header shows (it counts steps by status, and approvals, as well).
HEADER_EVENTS = DIRECTIVE_ROW_EVENTS | APPROVAL_EVENTS | {"step_status_changed"}


class DirectiveScreen(EngineScreen):
    BINDINGS = [
        Binding("escape", "back", "Back"),  # to the screen it was opened from
        Binding("q", "app.quit", "Quit", show=False),  # as on the home screen (asks first)
        *APPROVAL_BINDINGS,
        *PAUSE_BINDINGS,
        *refusable("s", "start", "Start"),  # a draft's, where Pause would be
        *refusable("x", "stop", "Stop"),
        *refusable("L", "limits", "Limits"),
        *refusable("r", "replan", "Replan", show=False),
        *refusable("R", "retry_step", "Retry step", show=False),
        *refusable("S", "skip_step", "Skip step", show=False),
        Binding("1", "side('tab-step')", "Step panel", show=False),
        Binding("2", "side('tab-approvals')", "Approvals panel", show=False),
        Binding("g", "focus_dag", "Focus DAG", show=False),
        # Not in the footer (it would push `?` off an 80-column one): the
        # step panel's "Attempts" heading names them when there is a diff.
        Binding("D", "attempt_diffs", "Diff of attempt", show=False),
        # In the footer once the directive has ended (the result is what is
        # left to look at); a key that works at any time all the same.
        Binding("G", "result_ended", "Result"),
        Binding("G", "result", "Result", show=False),
    ]

    def __init__(self, directive_id: str) -> None:
        super().__init__()
        self.directive_id = directive_id
        self.directive: Directive | None = None
        self.approvals: list[ApprovalRequest] = []
        self.tails: dict[str, deque[tuple[str, str]]] = {}
        self.tail_attempts: dict[str, str] = {}  # "attempt 2": whose lines the tail holds
        self.seen_seq = 0  # events up to here are already shown (read back or live)
        self._gone = False  # the directive was deleted (by another process)
        self._result_toast: str | None = None  # what the result-ready toast says

    def compose(self) -> ComposeResult:
        yield DirectiveHeader(id="directive-title")
        yield BudgetBars(id="budgets")
        with Horizontal(id="directive-main"):
            yield DagView(id="dag")
            with TabbedContent(id="side", initial="tab-step"):
                with TabPane("Step", id="tab-step"):
                    yield StepDetail(id="detail")
                with TabPane("Approvals", id="tab-approvals"):
                    yield ApprovalsPanel(show_directive=False, id="approvals")
        yield EventLog(id="log")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(DagView).focus()
        self.set_interval(1.0, self._tick)

    @property
    def dag(self) -> DagView:
        return self.query_one(DagView)

    # -- loading ----------------------------------------------------------------

    async def load(self) -> None:
        # History first: whatever happens after it arrives as a batch (and is
        # applied on top of the reads below); whatever happened before it is
        # in those reads. Reading it last could hide a chain made in between.
        history = await self.store.last_events(self.directive_id, OUTPUT_HISTORY)
        self.seen_seq = history[-1].seq if history else 0
        try:
            self.directive = await self.store.get_directive(self.directive_id)
        except NotFound:  # deleted by another process (or before it opened)
            self._deleted()
            return
        await self._load_chain()
        self.tails.clear()
        self.tail_attempts.clear()
        for e in history:
            self._follow_tail(e)
        log = self.query_one(EventLog)
        log.clear()
        log.add_events([e for e in history if not isinstance(e, StepOutput)][-LOG_HISTORY:])
        await self._load_approvals()
        self._show_directive()
        self.show_detail()

    async def _load_chain(self) -> None:
        chain = await self.store.current_chain(self.directive_id)
        steps = await self.store.list_steps(chain.id) if chain else []
        first_look = not self.dag.steps
        self.dag.set_steps(steps)
        if first_look:  # open on what needs a person, else on what is at work
            for wanted in ATTENTION:
                step = next((s for s in steps if s.status is wanted), None)
                if step is not None:
                    self.dag.focus_step(step.id)
                    break

    async def _load_approvals(self) -> None:
        """This directive's pending approvals (home lists every directive's)."""
        self.approvals = await self.store.pending_approvals(self.directive_id)
        self.query_one(ApprovalsPanel).show(self.approvals, {})
        self.query_one(TabbedContent).get_tab("tab-approvals").label = (
            f"Approvals ({len(self.approvals)})" if self.approvals else "Approvals"
        )

    def _show_directive(self) -> None:
        d = self.directive
        if d is None:
            return
        self._follow_bindings()
        ended = d.status in DIRECTIVE_TERMINAL
        self.dag.set_ended(ended)
        detail = self.query_one(StepDetail)
        if detail.ended != ended:
            detail.ended = ended
            self.show_detail()
        self.query_one(DirectiveHeader).show(
            d, self.dag.steps, len(self.approvals), self.dapp.role_note
        )
        self.query_one(BudgetBars).show(d, self.dapp.clock())

    def _deleted(self) -> None:
        """The directive is no more: say so and close, now or as soon as the
        screen on top of this one (its result, say) closes."""
        if not self._gone:
            what = repr(self.directive.title) if self.directive else self.directive_id
            self.notify(f"{what} was deleted", severity="warning", timeout=10)
        self._gone = True
        if self.app.screen is self:  # not is_current: true under the top screen too
            self.app.pop_screen()

    def on_screen_resume(self) -> None:
        if self._gone:
            self.app.pop_screen()

    def _tick(self) -> None:
        d = self.directive
        if self.ready and d is not None and d.status in CLOCK_RUNNING:
            self.query_one(BudgetBars).show(d, self.dapp.clock())

    def _tail(self, step_id: str) -> deque[tuple[str, str]]:
        tail = self.tails.get(step_id)
        if tail is None:
            tail = self.tails[step_id] = deque(maxlen=TAIL_LINES)
        return tail

    def _follow_tail(self, e: object) -> None:
        """A step's output lines go to its tail; an attempt that starts
        starts the tail afresh, named by its number (kept per step, the lines
        of attempts 1 and 2 came mixed: tick 1, tick 2, tick 1 ...)."""
        if isinstance(e, StepOutput):
            self._tail(e.step_id).append((e.source, e.line))
        elif isinstance(e, StepStatusChanged) and e.new_status == StepStatus.RUNNING.value:
            self._tail(e.step_id).clear()
            attempt = ATTEMPT.search(e.reason or "")
            self.tail_attempts[e.step_id] = f"attempt {attempt[1]}" if attempt else ""

    # -- live updates -------------------------------------------------------------

    async def apply(self, batch: EngineBatch) -> None:
        # Events published while `load` was reading are in both: skip those.
        mine = [e for e in batch.of(self.directive_id) if e.seq > self.seen_seq]
        if mine:
            self.seen_seq = mine[-1].seq
        focused = self.dag.focused_step
        detail_stale = False
        new_chain = False
        steps = {s.id: s for s in self.dag.steps}
        detail = self.query_one(StepDetail)
        for e in mine:
            if isinstance(e, StepStatusChanged) and e.step_id in steps:
                update: dict[str, object] = {
                    "status": StepStatus(e.new_status),
                    "rework_count": e.rework_count,
                }
                attempt = ATTEMPT.search(e.reason or "")
                if e.new_status == StepStatus.RUNNING.value and attempt:  # it ran
                    update["attempts"] = max(steps[e.step_id].attempts, int(attempt[1]))
                step = steps[e.step_id] = steps[e.step_id].model_copy(update=update)
                self.dag.update_step(step)
                self._follow_tail(e)
                detail_stale |= focused is not None and e.step_id == focused.id
            elif isinstance(e, EvaluationCompleted) and e.step_id in steps:
                step = steps[e.step_id] = steps[e.step_id].model_copy(
                    update={"confidence": e.score, "level": ConfidenceLevel(e.level)}
                )
                self.dag.update_step(step)
                detail_stale |= focused is not None and e.step_id == focused.id
            elif isinstance(e, CostUpdated) and focused is not None and e.step_id == focused.id:
                detail_stale = True  # the running attempt's cost, as the header's moves
            elif isinstance(e, StepOutput):
                self._follow_tail(e)
                if focused is not None and e.step_id == focused.id and not detail_stale:
                    detail.output(e.source, e.line)
            elif e.type == "chain_created":
                new_chain = True
            elif (
                isinstance(e, DirectiveStatusChanged)
                and e.new_status == DirectiveStatus.COMPLETED.value
            ):
                self.announce_result()
        self.query_one(EventLog).add_events(mine)
        if new_chain:
            await self._load_chain()
            detail_stale = True
        if any(e.type in APPROVAL_EVENTS for e in mine):
            await self._load_approvals()
        if any(e.type in DIRECTIVE_ROW_EVENTS or _step_failed(e) for e in mine):
            self.directive = await self.store.get_directive(self.directive_id)
        if any(e.type in HEADER_EVENTS for e in mine):
            self._show_directive()
        if detail_stale:
            self.show_detail()

    def on_dag_view_focused(self, message: DagView.Focused) -> None:
        self.show_detail()
        self._follow_bindings()  # the keys answer the focused step's approval

    def on_descendant_focus(self) -> None:
        self._follow_bindings()  # the approvals panel's row, or the focused step's

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if isinstance(event.data_table, ApprovalsPanel):
            self._follow_bindings()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a row of the approvals panel answers it, as on home."""
        if isinstance(event.data_table, ApprovalsPanel):
            self.action_approval("approve")

    def on_event_log_read(self, message: EventLog.Read) -> None:
        self._read_event(message)

    @work(group="event-text", exclusive=True)
    async def _read_event(self, message: EventLog.Read) -> None:
        text = message.message
        if message.seq and self.ready:
            text += await self._whole_error(message.seq, text)
        self.app.push_screen(EventText(message.at, text, message.severity))

    async def _whole_error(self, seq: int, said: str) -> str:
        """What the event's line had to leave out: the engine keeps a
        status's reason to a line of 200 characters and an escalation's
        summary to 300 (a long failure lost its end: "its files are kept in
        /tmp/…/bui…"); the attempt's error is kept whole. Nothing when the
        event said it all."""
        events = await self.store.list_events(self.directive_id, after_seq=seq - 1, limit=1)
        event = events[0] if events and events[0].seq == seq else None
        step_id = getattr(event, "step_id", None)
        failing = isinstance(event, StepStatusChanged) and event.new_status in FAILING
        asking = isinstance(event, ApprovalRequired) and event.kind == ApprovalKind.ESCALATION
        if step_id is None or not (failing or asking):
            return ""
        assert event is not None
        whole = error_in_full(await self.store.list_runs(step_id), event.ts, said)
        return f"\n\n{whole}" if whole else ""

    @work(exclusive=True, group="detail")
    async def show_detail(self) -> None:
        """Read the focused step's attempts and evaluations (one worker at a
        time: holding an arrow key never queues a pile of reads)."""
        if not self.ready:
            return
        focused = self.dag.focused_step
        detail = self.query_one(StepDetail)
        if focused is None:
            detail.show(None, [], [], [])
            return
        step = await self.store.get_step(focused.id)
        runs, evaluations = await self._history(step)
        if not detail.is_attached:  # the screen closed while reading
            return
        output = list(self.tails.get(step.id, ()))
        detail.show(step, runs, evaluations, output, self.tail_attempts.get(step.id, ""))

    async def _history(self, step: Step) -> tuple[list[StepRun], list[Evaluation]]:
        """The step's attempts and evaluations, oldest first, with those of
        the steps a replan carried it from: a kept step's history stays
        under the old chain's step."""
        ids = [step.id]
        origin = step.carried_from
        while origin is not None and origin not in ids:
            ids.append(origin)
            origin = (await self.store.get_step(origin)).carried_from
        runs: list[StepRun] = []
        evaluations: list[Evaluation] = []
        for step_id in reversed(ids):
            runs += await self.store.list_runs(step_id)
            evaluations += await self.store.list_evaluations(step_id)
        return runs, evaluations

    # -- the selection ------------------------------------------------------------

    def current_approval(self) -> ApprovalRequest | None:
        panel = self.query_one(ApprovalsPanel)
        if self.focused is panel:
            return panel.selected
        focused = self.dag.focused_step
        for a in self.approvals:
            if focused is not None and a.step_id == focused.id:
                return a
        return self.approvals[0] if self.approvals else None

    def approvals_here(self) -> list[ApprovalRequest]:
        return self.approvals

    # -- which keys apply -----------------------------------------------------

    def command_directive(self) -> Directive | None:
        return self.directive

    def refusal(self, action: str) -> str | None:
        if action == "result_ended":
            ended = self.directive is not None and self.directive.status in DIRECTIVE_TERMINAL
            return None if ended else "not ended"  # falls through to the plain G
        if action in STEP_ACTIONS:
            dags = self.query(DagView)
            step = dags.first().focused_step if dags else None
            return step_refusal(step, action) if step is not None else None
        if action == "replan" and self.directive is not None:
            dags = self.query(DagView)
            if dags and not dags.first().steps:  # the first plan failed: paused, no chain
                return f"{self.directive.title} has no plan to replace yet: resuming plans it."
        return super().refusal(action)

    def _follow_bindings(self) -> None:
        """The footer shows the directive's keys (pause or resume, stop) and
        the approval keys, so it is redrawn only when the directive's status
        changes, its approvals come or go (read on an approval's event, not
        per event), or the approval the keys answer turns from a review to
        an escalation or back (`a` is Approve or Decide). The step keys stay
        out of it and are checked when pressed: following the focused step
        redrew the footer on every arrow key, and the widgets it threw away
        doubled the longest garbage-collector pause during a burst."""
        status = self.directive.status if self.directive else None
        self.follow_bindings((status, self.approval_keys()))

    def _focused_step(self) -> Step | None:
        step = self.dag.focused_step
        if step is None:
            self.notify("No step focused.", severity="warning")
        return step

    # -- actions ----------------------------------------------------------------

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_focus_dag(self) -> None:
        self.dag.focus()

    def action_side(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        if tab == "tab-approvals":
            self.query_one(ApprovalsPanel).focus()

    async def action_start(self) -> None:
        if not self.not_ready() and self.directive is not None:
            await self.start(self.directive)

    @work(group="directive")
    async def action_pause(self) -> None:
        if not self.not_ready() and self.directive is not None:
            await self.pause(self.directive)

    @work(group="directive")
    async def action_resume(self) -> None:
        if not self.not_ready() and self.directive is not None:
            await self.resume(self.directive)

    @work(group="directive")
    async def action_stop(self) -> None:
        if not self.not_ready() and self.directive is not None:
            await self.stop(self.directive)

    @work(group="directive")
    async def action_limits(self) -> None:
        if not self.not_ready() and self.directive is not None:
            await self.raise_limits(self.directive)

    @work(group="directive")
    async def action_replan(self) -> None:
        if self.not_ready() or self.directive is None:
            return
        if await self.app.push_screen_wait(
            ConfirmModal(
                "Replan? Passed steps are kept; the rest of the chain is replaced.", "Replan"
            )
        ):
            self.notify("Replanning…")

            async def replan() -> bool:
                reason = "replan requested by user"
                return await self.engine.regenerate_chain(self.directive_id, reason) is not None

            made = await self.dapp.command_value(replan())  # None: refused, and said so
            if made:
                self.notify("Replanned: the new chain is on screen.")
            elif made is False:  # a breaker, a failed planner, the directive ended: logged
                self.notify("No new plan: the event log says why.", severity="warning")

    async def action_retry_step(self) -> None:
        step = self._focused_step()
        if step is not None and not self.not_ready():
            await self.command(self.engine.retry_step(step.id), f"retrying {step.name}")

    @work(group="directive")
    async def action_skip_step(self) -> None:
        step = self._focused_step()
        if step is None or self.not_ready():
            return
        if await self.app.push_screen_wait(
            ConfirmModal(
                f"Skip {step.name}? It will not run, and a skip cannot be undone: "
                "the steps after it run without it.",
                "Skip",
                danger=True,
            )
        ):
            await self.command(self.engine.skip_step(step.id), f"skipped {step.name}")

    @work(group="diff", exclusive=True)
    async def action_attempt_diffs(self) -> None:
        """The focused step's attempts, each with its diff (read by the modal)."""
        from engine.engine import EngineError

        step = self._focused_step()
        if step is None or self.not_ready():
            return
        runs, _ = await self._history(await self.store.get_step(step.id))
        if not runs:
            self.notify(f"{step.name} has no attempt yet.", severity="warning")
            return
        if not any(r.commit_sha for r in runs):
            try:  # why not: no git workspace, or nothing committed yet
                await self.engine.checkpoints(self.directive_id)
            except EngineError as exc:
                self.notify(f"No diff to show: {exc}", severity="warning", timeout=8)
                return
            self.notify(f"No attempt of {step.name} has a commit yet.", severity="warning")
            return
        self.app.push_screen(AttemptDiffs(self.engine, step.name, runs))

    def action_result_ended(self) -> None:
        self.action_result()

    def action_result(self) -> None:
        from tui.screens.result import ResultScreen

        if not self.not_ready():
            self._drop_result_toast()
            self.app.push_screen(ResultScreen(self.directive_id))

    @work(group="announce", exclusive=True)
    async def announce_result(self) -> None:
        """Completed: say where the result is (when there is one in git)."""
        from engine.engine import EngineError

        try:
            checkpoints = await self.engine.checkpoints(self.directive_id)
        except EngineError:
            self.notify("Directive completed.", title="Done", timeout=8)
            return
        # As long as other toasts: 15 s followed you home (where G does
        # nothing) and over the diff G opened; it goes with the screen, or
        # once G is pressed (`_drop_result_toast`).
        self._result_toast = (
            f"The result is ready ({len(checkpoints)} checkpoints): press G to see the diff "
            "and fast-forward your branch to it."
        )
        self.notify(self._result_toast, title="Directive completed", timeout=8)

    def _drop_result_toast(self) -> None:
        """The result-ready toast, off the screen: it says to press G."""
        said, self._result_toast = self._result_toast, None
        if said is None:
            return
        shown = self.app._notifications  # Textual's own: a toast clicked goes the same way
        for notification in list(shown):
            if notification.message == said:
                self.app._unnotify(notification)

    def on_unmount(self) -> None:
        self._drop_result_toast()

    @work(group="approval", exclusive=True)
    async def action_approval(self, intent: str) -> None:
        await super().action_approval(intent)


def _step_failed(event: object) -> bool:
    return isinstance(event, StepStatusChanged) and event.new_status == StepStatus.FAILED.value
