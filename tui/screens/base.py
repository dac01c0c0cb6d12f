"""What every engine-backed screen shares: access to the engine, event
batches from the app, engine commands with errors as notifications, the
directive keys (start, pause or resume, stop), offered only where they
apply, and the approval keys (`a`, `d`, `c`), which act on "the current
approval" each screen defines and are offered only while one is pending
there."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.screen import Screen

from engine.events import ApprovalResolved
from engine.models import (
    ApprovalDecision,
    ApprovalKind,
    ApprovalRequest,
    Directive,
    DirectiveStatus,
    Step,
    StepRun,
)
from engine.store import NotFound, Store
from tui.applicable import DIRECTIVE_ACTIONS, directive_refusal
from tui.messages import EngineBatch, EngineReady
from tui.modals.approval import Answer, ApprovalModal
from tui.modals.confirm import ConfirmModal
from tui.modals.limits import LimitsModal
from tui.presentation import DECISION_DONE, stop_question
from tui.widgets.budgets import breaker_holds, tripped_breaker

if TYPE_CHECKING:
    from engine.engine import DirectiveEngine
    from tui.app import DirectiveApp

D = ApprovalDecision

# Offered while an approval is pending on the screen (`pending_approvals`);
# otherwise the same keys say there is none. While the approval the keys
# answer (`current_approval`) is an escalation (a blocked or failed step:
# retry, skip, replan or stop, never approve or deny) the footer offers `a`
# as Decide, and `d`, `c` open the same choice.
APPROVAL_BINDINGS = [
    Binding("a", "approval('approve')", "Approve"),
    Binding("d", "approval('deny')", "Deny"),
    Binding("c", "approval('request_changes')", "Changes"),
    Binding("a", "approval('decide')", "Decide"),
    Binding("d,c", "approval('decide')", show=False),
    Binding("a,d,c", "refuse('approval')", show=False),
]
DECIDE = "decide"  # the intent of the keys on an escalation
NO_APPROVAL = "No pending approval here."


def refusable(key: str, action: str, description: str, *, show: bool = True) -> list[Binding]:
    """`key` runs `action` where it applies (`check_action`); elsewhere the
    same key says why not (a binding tried only when the first is off)."""
    return [
        Binding(key, action, description, show=show),
        Binding(key, f"refuse('{action}')", show=False),
    ]


# `p` pauses or resumes: the footer, the help and the palette name the one
# that applies.
PAUSE_BINDINGS = [
    Binding("p", "pause", "Pause"),
    Binding("p", "resume", "Resume"),
    Binding("p", "refuse('pause')", show=False),
]


class EngineScreen(Screen[None]):
    """Base for screens that show engine state. Subclasses implement
    `load` (everything from the store) and `apply` (a batch of events)."""

    @property
    def dapp(self) -> DirectiveApp:
        return self.app  # type: ignore[return-value]

    @property
    def engine(self) -> DirectiveEngine:
        assert self.dapp.engine is not None, "engine not started yet"
        return self.dapp.engine

    @property
    def store(self) -> Store:
        return self.engine.store

    @property
    def ready(self) -> bool:
        return self.dapp.engine_ready

    def on_mount(self) -> None:
        if self.ready:
            self.post_message(EngineReady())

    async def on_engine_ready(self, message: EngineReady) -> None:
        await self.load()

    async def on_engine_batch(self, message: EngineBatch) -> None:
        if not self.ready:
            return
        await self._follow_open_approval(message)
        if message.lagged:
            await self.load()
        else:
            await self.apply(message)

    _open_approval: ApprovalModal | None = None  # the dialog this screen opened, while open

    async def _follow_open_approval(self, batch: EngineBatch) -> None:
        """Close the approval dialog this screen opened when its request was
        answered elsewhere (`approve ID` in another terminal, the engine
        closing it on a stop): left open, its key only said "already
        answered"."""
        modal = self._open_approval
        if modal is None or modal not in self.app.screen_stack:
            return
        approval_id = modal.approval.id
        if batch.lagged:  # the events were lost: the store says
            try:
                approval = await self.store.get_approval(approval_id)
            except NotFound:
                return
            if approval.pending:
                return
            decision = approval.decision
            comment = approval.comment
        else:
            resolved = [
                e
                for e in batch.events
                if isinstance(e, ApprovalResolved) and e.approval_id == approval_id
            ]
            if not resolved:
                return
            decision = D(resolved[-1].decision)
            comment = resolved[-1].comment
        if self._open_approval is not modal or modal not in self.app.screen_stack:
            return  # answered here meanwhile
        self._open_approval = None
        modal.dismiss(None)
        if decision is D.SUPERSEDED or decision is None:
            why = f": {comment}" if comment else ""
            self.notify(f"Approval {approval_id} closed unanswered{why}", severity="warning")
        else:
            said = DECISION_DONE.get(decision, decision.value)
            self.notify(f"Approval {approval_id} answered elsewhere: {said}", severity="warning")

    async def load(self) -> None:
        raise NotImplementedError

    # -- which keys apply -------------------------------------------------------

    _binding_state: object = None

    def command_directive(self) -> Directive | None:
        """The directive the directive keys act on (None: not known yet)."""
        return None

    def refusal(self, action: str) -> str | None:
        """Why `action` does not apply here, or None when it does."""
        if action == "approval":
            return None if self.pending_approvals() else NO_APPROVAL
        if action in DIRECTIVE_ACTIONS:
            d = self.command_directive()
            return directive_refusal(d, action) if d is not None else None
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "resume" and self.command_directive() is None:
            return False  # `p` says "pause" until there is something to resume
        if action == "approval" and self.pending_approvals():
            return (parameters == (DECIDE,)) == self.escalation_in_hand()
        return self.refusal(action) is None

    def action_refuse(self, action: str) -> None:
        refusal = self.refusal(action)
        if refusal is not None:
            self.notify(refusal, severity="warning")

    def follow_bindings(self, state: object) -> None:
        """Refresh the footer and the palette when what the keys act on
        changed (`state` sums it up)."""
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    async def apply(self, batch: EngineBatch) -> None:
        raise NotImplementedError

    # -- commands -------------------------------------------------------------

    async def command(self, work: Awaitable[object], done: str | None = None) -> bool:
        return await self.dapp.run_command(work, done)

    def not_ready(self) -> bool:
        if not self.ready:
            self.notify("Still opening the database…", severity="warning")
            return True
        return False

    async def start(self, d: Directive) -> None:
        await self.dapp.start_or_resume(d, starting=True)

    async def pause(self, d: Directive) -> None:
        async with self.dapp.directive_command:
            if await self._already(d, DirectiveStatus.PAUSED):
                return
            self.dapp.forget_sent(d.id)
            await self.command(self.engine.pause_directive(d.id), f"paused: {d.title}")

    async def resume(self, d: Directive) -> None:
        """Resume; paused by a breaker whose limit stands, the limits dialog first."""
        if breaker_holds(d):
            await self.raise_limits(d)
            return
        async with self.dapp.directive_command:
            if await self._already(d, DirectiveStatus.ACTIVE, DirectiveStatus.PLANNING):
                return
            await self.dapp.start_or_resume(d, starting=False)

    async def stop(self, d: Directive) -> None:
        if await self.app.push_screen_wait(
            ConfirmModal(stop_question(d.title), "Stop", danger=True)
        ):
            async with self.dapp.directive_command:
                if await self._already(d, DirectiveStatus.STOPPED):
                    return
                self.dapp.forget_sent(d.id)
                await self.command(self.engine.stop_directive(d.id), f"stopped: {d.title}")

    async def _already(self, d: Directive, *statuses: DirectiveStatus) -> bool:
        """Whether `d` is already so: a second `p` pressed before the screen
        heard of the first one's pause is not an error ("cannot move from
        'paused' to 'paused'"), it is done."""
        return (await self.store.get_directive(d.id)).status in statuses

    async def delete(self, d: Directive) -> bool:
        """Delete for good, asked first; what the engine keeps unless forced
        (a result on the directive's branch only, refs in a repository folder
        that is gone) is asked about again. Whether it went."""
        from engine.engine import NeedsForce, ResultOnlyHere

        question = (
            f"Delete {d.title} for good? Its history goes, and from the repository"
            " its worktrees, refs and branch."
        )
        if not await self.app.push_screen_wait(ConfirmModal(question, "Delete", danger=True)):
            return False
        said = await self.dapp.command_value(self._delete(d.id, force=False))
        if isinstance(said, NeedsForce):
            why = str(said)
            again = f"{why[:1].upper()}{why[1:]}. Delete it anyway?"
            if isinstance(said, ResultOnlyHere) and said.fast_forward:
                again += " (Its screen's G shows the result and takes it to your branch.)"
            if not await self.app.push_screen_wait(
                ConfirmModal(again, "Delete anyway", danger=True)
            ):
                return False
            said = await self.dapp.command_value(self._delete(d.id, force=True))
        if not isinstance(said, list):
            return False
        self.notify("; ".join(said), title="Deleted")
        return True

    async def _delete(self, directive_id: str, *, force: bool) -> list[str] | Exception:
        """The engine's delete; what it keeps unless forced comes back as the
        value, for the second question (not as an error notification)."""
        from engine.engine import NeedsForce

        try:
            return await self.engine.delete_directive(directive_id, force=force)
        except NeedsForce as exc:
            return exc

    async def raise_limits(self, d: Directive) -> None:
        tripped = tripped_breaker(d)
        focus = tripped[0].limit_field if tripped else None
        changes = await self.app.push_screen_wait(LimitsModal(d, focus))
        if changes is None:
            return
        # It may have ended while the dialog was open: then nothing is saved.
        refusal = directive_refusal(await self.store.get_directive(d.id), "limits")
        if refusal is not None:
            self.notify(f"{refusal} Nothing saved.", severity="warning")
            return
        if not changes and tripped is None:
            self.notify("No limit changed.")
            return
        if changes and not await self.command(
            self.engine.raise_limits(d.id, **changes), "limits saved"
        ):
            return
        if tripped is not None:
            await self.dapp.start_or_resume(d, starting=False)

    # -- approvals --------------------------------------------------------------

    def current_approval(self) -> ApprovalRequest | None:
        raise NotImplementedError

    def approvals_here(self) -> list[ApprovalRequest]:
        """The approvals the keys could answer here, as last loaded (what
        the footer follows; the answer reads each again)."""
        raise NotImplementedError

    def pending_approvals(self) -> bool:
        return bool(self.approvals_here())

    def escalation_in_hand(self) -> bool:
        """Whether the approval the keys answer now is an escalation."""
        approval = self.current_approval() if self.pending_approvals() else None
        return approval is not None and approval.kind is ApprovalKind.ESCALATION

    def approval_keys(self) -> tuple[bool, bool]:
        """What the approval keys in the footer depend on."""
        return self.pending_approvals(), self.escalation_in_hand()

    async def action_approval(self, intent: str) -> None:
        """Open the confirm modal for the current approval, then answer it."""
        if self.not_ready():
            return
        approval = self.current_approval()
        if approval is None:
            self.notify(NO_APPROVAL, severity="warning")
            return
        try:
            approval = await self.store.get_approval(approval.id)
        except NotFound as exc:
            self.notify(str(exc), severity="error")
            return
        if not approval.pending:
            self.notify(self.dapp.already_resolved(approval), severity="warning")
            return
        evaluation = step = None
        runs: list[StepRun] = []
        plan: list[Step] = []
        if approval.evaluation_id:
            evaluation = await self.store.get_evaluation(approval.evaluation_id)
        if approval.step_id:
            step = await self.store.get_step(approval.step_id)
            runs = await self.store.list_runs(step.id)  # what the attempt changed, its diff
        elif approval.kind is ApprovalKind.PLAN:  # what the plan will run
            chain = await self.store.current_chain(approval.directive_id)
            plan = await self.store.list_steps(chain.id) if chain else []
        directive = await self.store.get_directive(approval.directive_id)
        if intent == DECIDE:  # an escalation offers its own answers whatever the key
            intent = D.APPROVE.value  # (a review since: the footer had not caught up)
        modal = ApprovalModal(
            approval,
            intent=D(intent),
            evaluation=evaluation,
            step=step,
            directive_title=directive.title,
            runs=runs,
            plan=plan,
        )
        self._open_approval = modal
        try:
            answer: Answer | None = await self.app.push_screen_wait(modal)
        finally:
            if self._open_approval is modal:
                self._open_approval = None
        if answer is not None:
            await self.dapp.answer_approval(approval.id, answer.decision, answer.comment)
