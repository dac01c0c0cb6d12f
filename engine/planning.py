"""Planning a directive: its first plan, and replans that keep what passed.

A plan is work: it counts against the wall-time limit and every call the
planner pays for is charged as it is made. A plan that cannot be made
pauses the directive (the first one) or leaves the current chain standing
and puts the step that asked for it to a person (a replan): a failing
planner never loops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib

from engine import approvals
from engine.breakers import breaker_reason, budget_for
from engine.chains import LIVE_STEP, build_chain, charge_planning
from engine.core import EngineCore
from engine.events import ChainCreated, Notice
from engine.models import (
    REVIEW_OPTIONS,
    ApprovalKind,
    ApprovalRequest,
    Autonomy,
    Chain,
    Directive,
    DirectiveStatus,
    PlannerKind,
    Severity,
    Step,
    StepStatus,
)
from engine.planner import PlannedChain, ReplanContext
from engine.refusals import EngineError
from engine.rows import list_steps
from engine.store import Tx
from engine.text import clip
from engine.transitions import DIRECTIVE_TERMINAL

D, S = DirectiveStatus, StepStatus


class Planning(EngineCore):
    """The first plan and replans (`regenerate_chain`). Stops and restarts
    steps with the driver's `_cancel_steps`, `_launch_driver`, `_wake` and
    `_trip` (engine.engine)."""

    async def regenerate_chain(
        self, directive_id: str, reason: str, failed_step_id: str | None = None
    ) -> Chain | None:
        """Replan: keep passed steps, supersede the old chain, count it.
        Returns None when the regeneration breaker trips instead. Only an
        active or paused directive with a chain can be replanned; replans
        of one directive run one after the other."""
        rt = self._runtime(directive_id)
        async with rt.replan_lock:
            try:
                return await self._regenerate(directive_id, reason, failed_step_id)
            finally:
                self._wake(directive_id)  # the driver runs again once the lock is free

    async def _regenerate(
        self, directive_id: str, reason: str, failed_step_id: str | None
    ) -> Chain | None:
        d = await self.store.get_directive(directive_id)
        old = await self.store.current_chain(directive_id)
        if d.status not in (D.ACTIVE, D.PAUSED) or old is None:
            raise EngineError(
                f"cannot replan a {d.status.value} directive: only an active or paused one"
                " with a chain (a draft is planned when it starts)"
            )
        if not d.replans_left:
            await self._replans_ran_out(d, old, reason, failed_step_id)
            return None
        await self._cancel_steps(directive_id)
        d = await self.store.get_directive(directive_id)
        if self.runs_steps:  # an engine serving one command would leave it running after
            # A plan is work: its clock runs (it stood while a person chose).
            d = await self._set_clock(directive_id, running=True, reason="replanning")
            self._wake(directive_id)  # its wall-time timer, set while the clock stood, is not
        old_steps = await self.store.list_steps(old.id)
        kept = [s for s in old_steps if s.status is S.PASSED]
        failed = _asking_step(old_steps, failed_step_id)
        context = ReplanContext(reason=reason, kept=kept, failed=failed)
        planned = await self._run_planner(d, context)
        if planned is None:
            return None
        from engine.planner import compose_replan

        try:
            specs = compose_replan([s.spec for s in kept], planned.steps)
        except ValueError as exc:
            await self._replan_failed(
                directive_id,
                context,
                f"the new chain is invalid: {exc}",
                planned.cost_usd - planned.charged_usd,
            )
            return None
        planned = planned.model_copy(update={"steps": specs})
        chain, steps = build_chain(d, planned, generation=old.generation + 1, reason=reason)
        _carry_passed(steps, kept)

        def swap(tx: Tx) -> D:
            return _swap_chain(tx, d, (old, old_steps), (chain, steps), planned, reason)

        status = await self._write(directive_id, swap)
        if status not in (D.ACTIVE, D.PAUSED):
            return None
        if status is D.ACTIVE:
            self._launch_driver(directive_id)
        return chain

    async def _replans_ran_out(
        self, d: Directive, old: Chain, reason: str, failed_step_id: str | None
    ) -> None:
        """No replan is left: the breaker pauses the directive and, once it
        is resumed, a person decides about the step instead."""
        limit = d.spec.limits.max_chain_regenerations
        why = f"chain regeneration limit reached ({d.regenerations}/{limit}) while replanning: {reason}"
        await self._trip(d.id, "regenerations", why)
        failed = _asking_step(await self.store.list_steps(old.id), failed_step_id)
        await self._write(d.id, lambda tx: _ask_again(tx, d.id, failed, why))

    async def _plan(self, d: Directive) -> None:
        """The first plan. Planning counts against the wall-time limit, so
        the planner gets only the time left: a hung API pauses the
        directive on its wall-time breaker, instead of holding it in
        `planning` for as long as the client's timeouts and retries last."""
        tripped = breaker_reason(d)
        if tripped:
            await self._trip(d.id, *tripped)
            return
        planning = asyncio.ensure_future(self._run_planner(d, None))
        try:
            # The time left is read again when it runs out: a limit raised,
            # or a pause (its time does not count), gives the planner more.
            while not (await asyncio.wait({planning}, timeout=budget_for(d).wall_time_s))[0]:
                d = await self.store.get_directive(d.id)
                ended = d.status in DIRECTIVE_TERMINAL  # stopped meanwhile: no wait for it
                if ended or breaker_reason(d) is not None:
                    planning.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await planning
                    if not ended:
                        await self._planning_ran_out(d.id)
                    return
        except asyncio.CancelledError:
            planning.cancel()  # and wait for it to charge what it spent
            await asyncio.wait({planning})
            raise
        planned = planning.result()
        if planned is None:
            return
        chain, steps = build_chain(d, planned, generation=0, reason=None)

        def commit(tx: Tx) -> None:
            charge_planning(tx, d.id, planned)  # spent whatever became of the plan
            status = tx.directive(d.id).status
            if status is not D.PLANNING and status is not D.PAUSED:
                return  # stopped or failed while the planner worked: no chain to add
            tx.add_chain(chain, steps)
            tx.emit(
                ChainCreated(
                    directive_id=d.id,
                    chain_id=chain.id,
                    generation=0,
                    steps=[s.name for s in steps],
                    layers=[s.layer for s in steps],
                )
            )
            if status is D.PLANNING:  # paused meanwhile: stays paused, resumes active
                tx.directive_status(d.id, D.ACTIVE)
            _ask_plan_approval(tx, d, steps)

        await self._write(d.id, commit)

    async def _planning_ran_out(self, directive_id: str) -> None:
        d = await self.store.get_directive(directive_id)
        why = breaker_reason(d) or ("wall_time", "the wall-time limit was reached")
        said = f"planning did not finish in the wall time left ({why[1]})"
        notice = Notice(directive_id=directive_id, message=said, severity=Severity.ERROR)
        await self._write(directive_id, lambda tx: tx.emit(notice))
        await self._trip(directive_id, *why)

    async def _run_planner(self, d: Directive, replan: ReplanContext | None) -> PlannedChain | None:
        from engine.planner import validate_chain

        planner = None
        charged = 0.0  # what the planner's calls were charged as it made them

        async def on_cost(cost: float) -> None:
            nonlocal charged
            charged += cost  # the write lands even if planning is cut off now
            paid = PlannedChain(steps=[], cost_usd=cost)
            await asyncio.shield(self._write(d.id, lambda tx: charge_planning(tx, d.id, paid)))

        try:
            llm = self._llm(d) if d.spec.planner is PlannerKind.ANTHROPIC else None
            planner = self.services.planner(d.spec.planner, llm)
            if hasattr(planner, "on_cost"):
                planner.on_cost = on_cost
            if hasattr(planner, "on_retry"):  # the SDK waits out a 429 in silence otherwise
                planner.on_retry = lambda line: self._spawn(
                    self.record_note(d.id, f"planning: {line}", Severity.WARNING)
                )
            planned: PlannedChain = await planner.plan(d, replan)
            validate_chain(planned.steps)
        except asyncio.CancelledError:
            # Cut off (the wall-time deadline, the app closing): the calls it
            # finished were paid for all the same (charged as they were made,
            # by a planner that reports them).
            due = getattr(planner, "spent_usd", 0.0) - charged
            if due > 0:
                rest = PlannedChain(steps=[], cost_usd=due)
                with contextlib.suppress(Exception):
                    await asyncio.shield(
                        self._write(d.id, lambda tx: charge_planning(tx, d.id, rest))
                    )
            raise
        except Exception as exc:
            # A planner that gave up may still have spent money: charge it.
            cost = max(getattr(exc, "cost_usd", 0.0) - charged, 0.0)
            if replan is None:
                await self._planning_failed(d.id, f"planning failed: {exc}", cost)
            else:
                await self._replan_failed(d.id, replan, str(exc), cost)
            return None
        return planned.model_copy(update={"charged_usd": charged})

    async def _planning_failed(self, directive_id: str, reason: str, cost: float) -> None:
        """The first plan could not be made (an overloaded API, a missing
        key, a plan still invalid after the corrections): nothing is lost,
        so the directive pauses with the reason instead of failing for
        good, and resuming plans again once the cause is fixed."""

        def pause(tx: Tx) -> None:
            charge_planning(tx, directive_id, PlannedChain(steps=[], cost_usd=cost))
            tx.emit(Notice(directive_id=directive_id, message=reason, severity=Severity.ERROR))
            if tx.directive(directive_id).status is D.PLANNING:
                tx.directive_status(
                    directive_id, D.PAUSED, reason=f"{reason} (resume to plan again)"
                )

        await self._write(directive_id, pause)

    async def _replan_failed(
        self, directive_id: str, replan: ReplanContext, error: str, cost: float = 0.0
    ) -> None:
        """A replan that could not be made (an overloaded API, an invalid
        plan) ends nothing: the current chain stays, and the step that asked
        for it is put to a person again, whatever the autonomy, so a failing
        planner cannot loop by itself. With no step behind it (changes a
        person asked of the plan, or their replan), the plan as it stands is
        put to them again under manual autonomy: it was never approved as
        it is, and no plan runs unseen there."""
        failed = replan.failed

        def keep(tx: Tx) -> None:
            charge_planning(tx, directive_id, PlannedChain(steps=[], cost_usd=cost))
            tx.emit(
                Notice(
                    directive_id=directive_id,
                    message=f"replanning failed, the current chain stays: {error}",
                    severity=Severity.ERROR,
                )
            )
            why = f"replanning failed: {clip(error, 300)}"
            _ask_again(tx, directive_id, failed, why)
            chain = tx.current_chain(directive_id)
            if (
                failed is None
                and chain is not None
                and not approvals.plan_pending(tx, directive_id)
            ):
                steps = list_steps(tx.conn, "s.chain_id = ?", (chain.id,))
                _ask_plan_approval(tx, tx.directive(directive_id), steps, f"{why}; as it stands")

        await self._write(directive_id, keep)
        self._wake(directive_id)


def _carry_passed(steps: list[Step], kept: list[Step]) -> None:
    """The new chain's steps that passed in the old one pass as they did,
    with the rework it took still visible (↻N)."""
    carried = {s.name: s for s in kept}
    for s in steps:
        if s.name in carried:
            k = carried[s.name]
            s.status, s.carried_from = S.PASSED, k.id
            s.confidence, s.level, s.attempts = k.confidence, k.level, k.attempts
            s.rework_count = k.rework_count


def _swap_chain(
    tx: Tx,
    d: Directive,
    before: tuple[Chain, list[Step]],
    after: tuple[Chain, list[Step]],
    planned: PlannedChain,
    reason: str,
) -> D:
    """The new chain replaces the old one in one transaction, unless the
    directive ended while it was planned: then it is not used, and what the
    plan cost is still charged. Returns the directive's status as it is."""
    (old, old_steps), (chain, steps) = before, after
    status = tx.directive(d.id).status
    if status not in (D.ACTIVE, D.PAUSED):
        charge_planning(tx, d.id, planned)
        tx.emit(
            Notice(
                directive_id=d.id,
                message="the new chain was not used: the directive ended while it was planned",
                severity=Severity.WARNING,
            )
        )
        return status
    tx.update("directive_chains", old.id, superseded=True)
    for s in old_steps:
        if tx.step(s.id).status in LIVE_STEP:  # as it is now, not before planning
            tx.step_status(s.id, S.SUPERSEDED, reason="chain regenerated")
    approvals.supersede(tx, d.id, f"chain regenerated: {reason}", chain_id=old.id)
    tx.add_chain(chain, steps)
    tx.update("directives", d.id, regenerations=d.regenerations + 1)
    charge_planning(tx, d.id, planned)
    tx.emit(
        ChainCreated(
            directive_id=d.id,
            chain_id=chain.id,
            generation=chain.generation,
            steps=[s.name for s in steps],
            layers=[s.layer for s in steps],
            old_chain_id=old.id,
            reason=reason,
        )
    )
    _ask_plan_approval(tx, d, steps, reason=reason)
    return status


def _asking_step(steps: list[Step], step_id: str | None) -> Step | None:
    """The step a replan is for: the one named, else the first blocked or
    failed one."""
    return next(
        (s for s in steps if s.id == step_id),
        next((s for s in steps if s.status in (S.BLOCKED, S.FAILED)), None),
    )


def _ask_again(tx: Tx, directive_id: str, failed: Step | None, why: str) -> None:
    """A replan that did not happen leaves the step that asked for it where
    it was: put it to a person again (once), whatever the autonomy, so
    nothing waits on a replan that will not come."""
    if failed is None:
        return
    step = tx.step(failed.id)
    if step.status in (S.BLOCKED, S.FAILED) and not approvals.pending_for_step(tx, step.id):
        approvals.escalate(tx, directive_id, step, why, None)


def _ask_plan_approval(tx: Tx, d: Directive, steps: list[Step], reason: str | None = None) -> None:
    """Under manual autonomy no plan runs unseen: the first one, and every
    replan (requested changes, a person's or an escalation's replan), waits
    for approval. Steps a replan keeps are marked so."""
    if d.spec.autonomy is not Autonomy.MANUAL:
        return
    names = _layers_text(steps)
    summary = f"approve the plan: {names}"
    if reason:
        summary = f"approve the new plan ({reason}): {names}"
    approvals.request_approval(
        tx,
        ApprovalRequest(
            directive_id=d.id, kind=ApprovalKind.PLAN, summary=summary, options=list(REVIEW_OPTIONS)
        ),
    )


def _layers_text(steps: list[Step]) -> str:
    """The plan in one line, layer by layer: steps that run side by side are
    listed with commas, "->" leads to the next layer ("a -> b, c -> d"),
    never a chain where there is none."""
    layers: dict[int, list[str]] = {}
    for s in steps:
        layers.setdefault(s.layer, []).append(s.name + (" (kept)" if s.carried_from else ""))
    return " -> ".join(", ".join(names) for _, names in sorted(layers.items()))
