"""Resetting a directive's integration branch to a checkpoint: the steps
merged after it, and everything downstream, run again.

The preview and the reset compute the same effects, so what a person is
shown is what happens; a step another process runs refuses the reset.
"""

from __future__ import annotations

from engine import approvals
from engine.chains import steps_to_rerun
from engine.core import EngineCore
from engine.events import Notice
from engine.models import Actor, Directive, Step, StepStatus, now
from engine.refusals import EngineError
from engine.store import Tx
from engine.transitions import DIRECTIVE_TERMINAL, STEP_ACTIVE
from engine.workspace_ops import missing_repo
from engine.worktrees import Checkpoint, GitError, Workspace

S = StepStatus


class Resets(EngineCore):
    """Reset to a checkpoint, and its preview. Uses the workspace from
    `_require_workspace` (engine.workspace_ops), the lease check
    `_another_engine_lives` (engine.following), and the driver's
    `_cancel_steps` and `_wake` (engine.engine)."""

    async def preview_reset(self, directive_id: str, point: str | int) -> list[str]:
        """The steps `reset_to_checkpoint(point)` would run again, changing
        nothing: what the reset itself reports, so the two agree. Refused,
        as the reset would be, while another process runs one of its steps
        (said before git is touched: that process may be opening it)."""
        interrupted = await self._refuse_reset_while_busy(directive_id)
        ws = await self._resettable(directive_id)
        try:
            target, dropped = await ws.dropped_by_reset(point)
        except (GitError, ValueError) as exc:
            raise EngineError(f"cannot reset to {_point(point)}: {exc}") from exc
        steps, rerun, kept = await self._reset_effects(ws, directive_id, target, dropped)
        moot = {s.id for s in steps if s.status is S.AWAITING_APPROVAL and s.id not in kept}
        return [s.name for s in steps if s.id in rerun | moot | interrupted]

    async def _refuse_reset_while_busy(self, directive_id: str) -> set[str]:
        """A reset cannot interrupt a step another process runs: refused
        while there is one, naming it. Returns the ids of the steps this
        engine runs, which the reset interrupts (they run again)."""
        chain = await self.store.current_chain(directive_id)
        active = await self.store.steps_in(chain.id, STEP_ACTIVE) if chain else []
        rt = self._runtime(directive_id)
        mine = {sid for sid, t in rt.steps.items() if not t.done()} | set(rt.unstarted)
        elsewhere = ", ".join(s.name for s in active if s.id not in mine)
        if elsewhere and not await self._another_engine_lives():
            raise EngineError(
                f"cannot reset while {elsewhere} is marked running: the directive-tui that"
                " ran it stopped without putting it back; open the app on this database"
                " (or `resume` the directive), which puts it back to run again, then reset"
            )
        if elsewhere:
            raise EngineError(
                f"cannot reset while {elsewhere} runs in another directive-tui: pause the"
                " directive there (or wait for the step), then reset"
            )
        return {s.id for s in active if s.id in mine}

    async def _reset_effects(
        self, ws: Workspace, directive_id: str, target: str, dropped: list[Checkpoint]
    ) -> tuple[list[Step], set[str], set[str]]:
        """What a reset to `target`, dropping `dropped`, does to the current
        chain: its steps; the ids it sends back to pending (the dropped
        steps and everything downstream); and the ids of steps awaiting
        approval whose attempt started from a commit `target` holds, so
        their review stands (the others could not merge: reworked)."""
        chain = await self.store.current_chain(directive_id)
        steps = await self.store.list_steps(chain.id) if chain else []
        names = set(steps_to_rerun(steps, [c.step_slug for c in dropped]))
        rerun = {s.id for s in steps if s.name in names}
        kept = {
            s.id
            for s in steps
            if s.status is S.AWAITING_APPROVAL
            and s.id not in rerun
            and await self._started_within(ws, s, target)
        }
        return steps, rerun, kept

    async def _stale_carries(
        self, ws: Workspace, steps: list[Step], rerun: set[str], target: str
    ) -> set[str]:
        """Steps left as they are whose carried commit (the start of their
        next attempt) was built on a commit the reset drops: carried, it
        would bring the dropped work back."""
        return {
            s.id
            for s in steps
            if s.carry_sha
            and s.id not in rerun
            and not await self._started_within(ws, s, target, made=s.carry_sha)
        }

    async def _started_within(
        self, ws: Workspace, step: Step, target: str, made: str | None = None
    ) -> bool:
        """Whether the step's attempt that made commit `made` (default: its
        last attempt) started from a commit `target` holds: what a reset to
        `target` leaves of its work. False when no such attempt is known."""
        runs = await self.store.list_runs(step.id)
        if made is None:
            run = runs[-1] if runs else None
        else:
            run = next((r for r in runs if r.commit_sha == made), None)
        return bool(run and run.base_sha and await ws.holds(run.base_sha, target))

    async def _resettable(self, directive_id: str) -> Workspace:
        d = await self.store.get_directive(directive_id)
        if d.status in DIRECTIVE_TERMINAL:
            raise EngineError(
                f"directive {d.id} has ended ({d.status.value}): nothing would run again, "
                "so its branch stays as it is; reset a directive while it is active or paused"
            )
        return await self._require_workspace(directive_id)

    async def reset_to_checkpoint(self, directive_id: str, point: str | int) -> list[str]:
        """Reset the integration branch to a checkpoint, by number (0: where
        the directive started) or commit; the steps merged after it, and
        everything downstream, go back to pending to run again, a step
        awaiting approval whose attempt started from a dropped commit is
        reworked (its review closed), and the steps this engine runs are
        interrupted. Returns the names of all of those."""
        # Held as a replan holds it: the driver claims no step meanwhile,
        # so none starts from the commit about to be dropped.
        async with self._runtime(directive_id).replan_lock:
            try:
                return await self._reset(directive_id, point)
            finally:
                self._wake(directive_id)  # the driver runs again once the lock is free

    async def _reset(self, directive_id: str, point: str | int) -> list[str]:
        """`reset_to_checkpoint` under the replan lock."""
        # Before git is touched, as in the preview.
        interrupted = await self._refuse_reset_while_busy(directive_id)
        ws = await self._resettable(directive_id)
        await self._cancel_steps(directive_id)
        await self._refuse_reset_while_busy(directive_id)  # started elsewhere meanwhile
        try:
            tip, dropped = await ws.move_back(point)
        except (GitError, ValueError) as exc:
            raise EngineError(f"cannot reset to {_point(point)}: {exc}") from exc
        return await self._record_reset(ws, directive_id, _point(point), tip, dropped, interrupted)

    async def _finish_cut_off_reset(self, d: Directive) -> None:
        """At recovery: a reset that moved the branch and was cut off (a kill,
        a database busy past the wait) before the database heard of it. Its
        dropped checkpoints are still there, on no branch: their steps must
        run again, or their work is gone while they read passed."""
        if missing_repo(d) or await self.store.current_chain(d.id) is None:
            return
        ws = await self._workspace(d)
        if ws is None:
            return
        tip, dropped = await ws.unreached()
        if dropped:
            await self._record_reset(
                ws, d.id, f"{tip[:10]} (a reset cut off, finished)", tip, dropped
            )

    async def _record_reset(
        self,
        ws: Workspace,
        directive_id: str,
        point: str,
        tip: str,
        dropped: list[Checkpoint],
        interrupted: set[str] | None = None,
    ) -> list[str]:
        """The database's half of a reset whose branch is at `tip`, then the
        dropped checkpoints go. Returns the names, in chain order, of the
        steps to run again: those it sends back, reworks or `interrupted`.
        Until this is written, `Workspace.unreached` finds the checkpoints."""
        steps, rerun, kept = await self._reset_effects(ws, directive_id, tip, dropped)
        stale = await self._stale_carries(ws, steps, rerun, tip)

        def reset(tx: Tx) -> set[str]:
            why = f"integration branch reset to {point}"
            reworked = set()
            for s in steps:
                current = tx.step(s.id)
                if current.status in STEP_ACTIVE:
                    continue  # claimed since the check: its merge is checked against the reset
                if s.id in stale and current.carry_sha == s.carry_sha:
                    tx.update("chain_steps", s.id, carry_sha=None, updated_at=now())
                    tx.emit(
                        Notice(
                            directive_id=directive_id,
                            step_id=s.id,
                            message=f"step {s.name} starts its next attempt afresh: its"
                            " carried attempt was built on work the reset dropped",
                            actor=Actor.USER,
                        )
                    )
                if s.id in rerun and current.status is not S.PENDING:
                    approvals.supersede_for_step(tx, current, why)
                    tx.step_status(
                        s.id,
                        S.PENDING,
                        reason=why,
                        carry_sha=None,
                        rework_count=0,
                        rework_instructions=None,  # runs afresh: no old review's comment
                    )
                elif current.status is S.AWAITING_APPROVAL and not (
                    s.id in kept and current.attempts == s.attempts
                ):  # cut from a dropped commit (or not known not to be): it cannot merge
                    approvals.supersede_for_step(tx, current, why)
                    tx.step_status(
                        s.id, S.REWORK, reason=why, rework_instructions=why, carry_sha=None
                    )
                    reworked.add(s.id)
            tx.emit(Notice(directive_id=directive_id, message=why, actor=Actor.USER))
            return reworked

        again = rerun | (interrupted or set()) | await self._write(directive_id, reset)
        await ws.forget_checkpoints(dropped)
        return [s.name for s in steps if s.id in again]


def _point(point: str | int) -> str:
    """A reset target as a person names it: `#2`, or a commit's short form."""
    return f"checkpoint #{point}" if isinstance(point, int) else point[:10]
