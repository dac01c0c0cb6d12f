"""DirectiveEngine: takes a directive from its plan to completion.

One driver task per active directive launches ready steps (bounded by
`max_parallel_steps`), each step attempt is its own task (execute, evaluate,
act on the confidence level), and every change goes through the store in one
transaction with its event before it is published on the bus. The database
is the truth: the in-memory state (`engine.core.Runtime`) is only which
tasks are running, so a fresh engine on an existing file picks up where the
last one stopped.

This module holds the commands, the engine's start and close, and the
driver; the rest is one module per part: `core` (state, writing and
publishing), `following` (the lease, other processes' writes), `planning`,
`attempts` (one step attempt to its verdict), `workspace_ops` (the git
workspace, merges, the end's tidying) and `resets`. The names callers use
are imported from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from enum import StrEnum
from typing import Any

from engine import approvals, pricing
from engine.attempts import Attempts
from engine.breakers import breaker_reason
from engine.chains import (
    MERGED_UNRECORDED,
    DriverView,
    drive,
    passed_unrecorded,
    record_checkpoint,
    recover,
    recover_after_death,
)
from engine.core import Runtime
from engine.events import BreakerTripped, DirectiveCreated, LimitsChanged, Notice
from engine.following import Following
from engine.lease import EngineLease, LeaseHolder, still_held_by
from engine.models import (
    Actor,
    ApprovalDecision,
    ApprovalKind,
    ApprovalRequest,
    Directive,
    DirectiveSpec,
    DirectiveStatus,
    Limits,
    Severity,
)
from engine.planning import Planning
from engine.refusals import (
    ApprovalAlreadyResolved,
    EngineError,
    NeedsForce,
    RepoGone,
    ResultOnlyHere,
)
from engine.resets import Resets
from engine.services import EngineServices
from engine.store import StoreError, Tx
from engine.transitions import DIRECTIVE_TERMINAL, DIRECTIVE_TRANSITIONS, RETRYABLE, STEP_ACTIVE
from engine.workspace_ops import WorkspaceOps, missing_repo
from engine.worktrees import GitError

__all__ = [
    "ApprovalAlreadyResolved",
    "DirectiveEngine",
    "EngineError",
    "EngineServices",
    "NeedsForce",
    "Outcome",
    "RepoGone",
    "ResultOnlyHere",
]

log = logging.getLogger(__name__)

D = DirectiveStatus
# What can be deleted: never started, or ended (nothing runs, nothing waits).
DELETABLE = frozenset({D.DRAFT}) | DIRECTIVE_TERMINAL


class Outcome(StrEnum):
    """Where a directive has come to rest (what the headless command reports)."""

    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"
    PAUSED = "paused"
    AWAITING_APPROVAL = "awaiting_approval"


class DirectiveEngine(Following, Planning, Attempts, Resets, WorkspaceOps):
    """The engine as its callers see it: the commands, starting and closing,
    and one driver task per active directive. Its parts are mixins on
    `EngineCore` (see `engine.core`), one module each."""

    # ------------------------------------------------------------------
    # Lifecycle
    # ------------------------------------------------------------------

    async def start(
        self,
        only: list[str] | None = None,
        *,
        label: str = "engine",
        watch_if_held: bool = False,
    ) -> None:
        """Take the database's lease, then recover: steps caught running or
        evaluating by a crash go back to ready (their open attempts are closed
        as interrupted), and drivers resume for every planning or active
        directive (or just `only`).

        One running engine per file: when another live engine holds the
        lease, `LeaseHeld` names it, or with `watch_if_held` this engine
        *watches* instead (`watching` says whom): it publishes the other
        engine's events, its commands are written for that engine to carry
        out, and it takes the lease over by itself once the holder is gone."""
        self._only = only
        if self.services.take_lease:
            from engine.lease import LeaseHeld

            try:
                await self._take_lease(label)
            except LeaseHeld as exc:
                if not watch_if_held:
                    raise
                self.watching = exc.holder.brief()
                self._label = label
        await self.watch_external()
        if self.watching is None:
            await self._recover_all()

    async def recover(self, directive_id: str) -> None:
        """Pick up one directive that `start(only=...)` left out (the headless
        command takes the lease before it knows, or creates, its directive)."""
        if self._only is not None and directive_id not in self._only:
            self._only.append(directive_id)
        await self._recover(await self.store.get_directive(directive_id))

    async def _recover_all(self) -> None:
        for d in await self.store.list_directives():
            if self._only is None or d.id in self._only:
                await self._recover(d)

    async def _recover(self, d: Directive) -> None:
        if not self.runs_steps:
            return
        if d.status in DIRECTIVE_TERMINAL:
            if self._left_to_tidy(d):  # it ended while no engine could tidy up
                await self._finish_workspace(d.id)
            return

        dead_since = self._lease.dead_since if self._lease is not None else None
        chain = await self.store.current_chain(d.id)
        caught = await self.store.steps_in(chain.id, STEP_ACTIVE) if chain else []
        merged = await self._merged_unrecorded(d, caught)

        def recovering(tx: Tx) -> None:
            for step_id, sha in merged:  # passed: not run again
                passed_unrecorded(tx, step_id, sha, f"{MERGED_UNRECORDED} (engine restarted)")
            if dead_since is None:
                recover(tx, d.id)
            else:
                recover_after_death(tx, d.id, dead_since)
            current = tx.directive(d.id)
            if d.status is D.PLANNING:  # its clock stopped when the last engine closed
                tx.clock(current, running=True, reason="planning again")

        await self._write(d.id, recovering)
        await self._finish_cut_off_reset(d)
        await self._prune_worktrees(d)
        if d.status in (D.ACTIVE, D.PLANNING):
            self._launch_driver(d.id)

    async def close(self) -> None:
        """Stop every task; running steps are left ready to run again."""
        self._closing = True
        tasks = [t for rt in self._rt.values() for t in rt.tasks()]
        tasks += list(self._background)
        if self._watcher is not None:
            tasks.append(self._watcher)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*self._inflight, return_exceptions=True)
        for rt in self._rt.values():
            await self._release_unstarted(rt)
        for rt in self._rt.values():
            if rt.llm is not None and hasattr(rt.llm, "aclose"):
                with contextlib.suppress(Exception):
                    await rt.llm.aclose()
        await self._stop_clocks()
        for did, rt in self._rt.items():
            if rt.flush:
                rt.flush.cancel()
            if rt.output:
                with contextlib.suppress(Exception):
                    await self._write(did, lambda tx: None)
        if self._lease is not None:
            await self._lease.release()

    async def _stop_clocks(self) -> None:
        """No engine runs the directives this one drove once it has closed:
        their wall-time clocks stop (the next engine runs them again when it
        starts a step), so a night with the app closed does not use up the
        limit. Not when another engine took the database over."""
        if self._lease is not None and self._lease.lost.is_set():
            return
        for did, rt in self._rt.items():
            if rt.driver is None:
                continue
            with contextlib.suppress(Exception):  # closing: a broken database says so elsewhere
                await self._set_clock(did, running=False, reason="no engine runs it")

    async def running_steps(self) -> list[str]:
        """Names of the steps whose attempts run in this process now: what
        closing the engine would interrupt (they run again from the start)."""
        ids = [sid for rt in self._rt.values() for sid, task in rt.steps.items() if not task.done()]
        return sorted([(await self.store.get_step(sid)).name for sid in ids])

    async def __aenter__(self) -> DirectiveEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------
    # Commands
    # ------------------------------------------------------------------

    async def create_directive(self, spec: DirectiveSpec) -> Directive:
        d = Directive(spec=spec)
        await self._write(
            d.id,
            lambda tx: (
                tx.add_directive(d),
                tx.emit(DirectiveCreated(directive_id=d.id, title=spec.title)),
            ),
        )
        return await self.store.get_directive(d.id)

    async def start_directive(self, directive_id: str) -> None:
        """Plan a draft; a paused directive resumes instead."""
        await self._refuse_without_repo(directive_id, "start")
        await self._write(directive_id, lambda tx: _go(tx, directive_id, starting=True))
        self._launch_driver(directive_id)

    async def pause_directive(self, directive_id: str, reason: str = "paused by user") -> None:
        dead = await self._dead_holder()

        def pause(tx: Tx) -> None:
            _tidy_after(dead, tx, directive_id)
            tx.directive_status(directive_id, D.PAUSED, reason=reason, actor=Actor.USER)

        await self._write(directive_id, pause)
        await self._halt(directive_id)

    async def resume_directive(self, directive_id: str) -> None:
        await self._refuse_without_repo(directive_id, "resume")
        await self._write(directive_id, lambda tx: _go(tx, directive_id, starting=False))
        self._launch_driver(directive_id)

    async def _refuse_without_repo(self, directive_id: str, doing: str) -> None:
        """Nothing can run without the repository folder: say so, rather than
        run steps that fail over it."""
        gone = missing_repo(await self.store.get_directive(directive_id))
        if gone:
            raise RepoGone(f"cannot {doing}: {gone}; put it back first")

    async def stop_directive(self, directive_id: str, reason: str = "stopped by user") -> None:
        dead = await self._dead_holder()

        def stop(tx: Tx) -> None:
            _tidy_after(dead, tx, directive_id)
            tx.directive_status(directive_id, D.STOPPED, reason=reason, actor=Actor.USER)
            approvals.supersede(tx, directive_id, reason)

        await self._write(directive_id, stop)
        await self._halt(directive_id)
        await self._finish_workspace(directive_id)

    async def delete_directive(self, directive_id: str, *, force: bool = False) -> list[str]:
        """Delete a directive that has ended or never started: its rows and
        events, and in the repository its worktrees, hidden refs and
        integration branch. Git goes first, so a failure there leaves a
        directive to delete again, not refs that nothing knows of. Refused
        while the branch holds a result merged nowhere, unless `force`.
        Returns what was done, in words."""
        d = await self.store.get_directive(directive_id)
        if d.status not in DELETABLE:
            raise EngineError(
                f"{d.title!r} is {d.status.value}: stop it first (deleting removes"
                " its history for good)"
            )
        done: list[str] = []
        gone = None if d.status is D.DRAFT else missing_repo(d)  # a draft made no refs
        if gone and not force:
            raise NeedsForce(f"{gone}: put it back, so that its branch and refs go with it")
        ws = None if gone or d.status is D.DRAFT else await self._workspace(d)
        if ws is not None:
            checkout = await ws.checked_out_by_user()
            if checkout is not None:  # forced too: git would leave it on no commit
                raise EngineError(
                    f"branch {ws.integration_branch} is checked out at {checkout}: switch"
                    " that checkout to another branch first"
                )
            if not force and await ws.result_only_here():
                offer = await ws.offer_fast_forward()
                raise ResultOnlyHere(
                    f"the result of {d.title!r} is on branch {ws.integration_branch} and"
                    " nowhere else" + ("" if offer.possible else f" ({offer.reason})"),
                    fast_forward=offer.possible,
                )
            await ws.discard()
            done.append(f"removed branch {ws.integration_branch} and the directive's refs")
        elif gone:
            done.append(
                f"{gone}: its branch directive/{d.id}/integration and refs under"
                f" refs/directive-tui/{d.id}/ stay in it"
            )
        folder = self._worktrees_dir(directive_id)
        if folder.exists():
            await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)
        try:  # straight to the store: its log goes with it, nothing to publish
            await self.store.write(lambda tx: tx.delete_directive(directive_id, DELETABLE))
        except StoreError as exc:
            raise EngineError(str(exc)) from exc
        self._rt.pop(directive_id, None)
        self._seen.pop(directive_id, None)
        return [f"deleted {d.title!r} ({d.id})", *done]

    async def raise_limits(self, directive_id: str, **changes: Any) -> Limits:
        """Change limits (validated as a whole); a paused directive can then
        resume. Read and written in one transaction, so a change made
        meanwhile elsewhere is built on, not overwritten; an ended
        directive's limits no longer change anything, and are refused."""

        def apply(tx: Tx) -> Limits:
            d = tx.directive(directive_id)
            if d.status in DIRECTIVE_TERMINAL:
                raise EngineError(
                    f"{d.title!r} is {d.status.value}: its limits no longer change anything"
                )
            limits = Limits.model_validate({**d.spec.limits.model_dump(), **changes})
            if limits == d.spec.limits:  # the values it has: nothing written, nothing said
                return limits
            tx.set_spec(directive_id, d.spec.model_copy(update={"limits": limits}))
            # The values as validated (`inf` is None, as stored), so the live
            # event reads as the stored one does.
            made = {k: getattr(limits, k) for k in changes}
            tx.emit(LimitsChanged(directive_id=directive_id, limits=made, actor=Actor.USER))
            return limits

        limits: Limits = await self._write(directive_id, apply)
        # A limit lowered below what is used trips now, not when the steps
        # running end: the driver's wall-time timer was set from the old one.
        self._wake(directive_id)
        return limits

    async def set_model(
        self, directive_id: str, model: str | None
    ) -> tuple[str | None, str | None]:
        """Set the directive's Claude model (None: back to DIRECTIVE_MODEL or
        the default) for its next call: planning, the agent, the judge. For a
        model the API does not know (404), which paused the directive: no
        directive file edit reaches a directive already made. The old and
        new values, as the spec holds them; refused once it has ended."""
        from engine.directive_file import model_name_problem

        if model is not None:
            problem = model_name_problem(model)
            if problem:
                raise EngineError(f"model {problem}")
            model = model.strip()

        def apply(tx: Tx) -> str | None:
            d = tx.directive(directive_id)
            if d.status in DIRECTIVE_TERMINAL:
                raise EngineError(f"{d.title!r} is {d.status.value}: its model no longer matters")
            tx.set_spec(directive_id, d.spec.model_copy(update={"model": model}))
            shown = model or f"the default (DIRECTIVE_MODEL, or {pricing.DEFAULT_MODEL})"
            was = d.spec.model or "the default"
            message = (
                f"model set to {shown} (was {was}): for the plans, steps and judging that"
                " start from now on (a step at work keeps its model)"
            )
            tx.emit(Notice(directive_id=directive_id, message=message, actor=Actor.USER))
            return d.spec.model

        old: str | None = await self._write(directive_id, apply)
        return old, model

    async def record_note(
        self, directive_id: str, message: str, severity: Severity = Severity.INFO
    ) -> None:
        """Keep a line for people in the directive's event log (a notice,
        written and published like every event): what a front end knows and
        the log should not lose, such as where the demo's repository is."""
        if not message.strip():
            raise EngineError("a note needs some words")
        notice = Notice(directive_id=directive_id, message=message.strip(), severity=severity)

        def note(tx: Tx) -> None:
            tx.directive(directive_id)  # NotFound for an unknown directive
            tx.emit(notice)

        await self._write(directive_id, note)

    async def retry_step(self, step_id: str) -> None:
        """Run a blocked or failed step again. Nothing else: a pending step
        made ready would run before its dependencies, and a running or
        reworking one is already on its way."""
        step = await self.store.get_step(step_id)

        def retry(tx: Tx) -> None:
            s = tx.step(step_id)
            if s.status not in RETRYABLE:
                raise EngineError(
                    f"step {s.name} is {s.status.value}: only a blocked or failed step"
                    " can be retried"
                )
            if tx.directive(s.directive_id).status in DIRECTIVE_TERMINAL:
                raise EngineError(f"step {s.name} cannot be retried: its directive has ended")
            approvals.retry_step(tx, s)

        await self._write(step.directive_id, retry)
        self._wake(step.directive_id)

    async def skip_step(self, step_id: str) -> None:
        step = await self.store.get_step(step_id)
        await self._write(
            step.directive_id,
            lambda tx: approvals.skip_step(tx, step_id),
        )
        self._wake(step.directive_id)

    async def resolve_approval(
        self,
        approval_id: str,
        decision: ApprovalDecision | str,
        comment: str | None = None,
    ) -> ApprovalRequest:
        """Answer an approval. A second answer to a resolved approval raises
        `ApprovalAlreadyResolved` and changes nothing. While the repository
        folder is gone only deny and stop are taken: the others would merge,
        or run a step that could only pause the directive again, using the
        answer up."""
        decision = ApprovalDecision(decision)
        approval = await self.store.get_approval(approval_id)
        if decision not in TAKEN_WITHOUT_REPO:  # the others run or merge something
            gone = missing_repo(await self.store.get_directive(approval.directive_id))
            if gone:
                raise RepoGone(
                    f"cannot answer: {gone}; put it back first (deny and stop need no folder)"
                )
        if decision is ApprovalDecision.REQUEST_CHANGES and not (comment or "").strip():
            becomes = (
                "what the planner is asked to change"
                if approval.kind is ApprovalKind.PLAN
                else "the rework instructions"
            )
            raise EngineError(f"requesting changes needs a comment: it becomes {becomes}")
        follow_up: list[tuple[str, str]] = []
        merged, problem, attempt = await self._merge_approved(approval, decision)

        def resolve(tx: Tx) -> ApprovalRequest:
            a = approvals.record_answer(tx, approval_id, decision, comment)
            follow_up.extend(approvals.apply_decision(tx, a, decision, comment, problem))
            if a.step_id and problem is None and decision is ApprovalDecision.APPROVE:
                record_checkpoint(tx, tx.step(a.step_id), merged)
            return a

        resolved: ApprovalRequest = await self._write(approval.directive_id, resolve)
        if attempt is not None and decision is not ApprovalDecision.DENY:
            with contextlib.suppress(GitError):  # answered: the worktree has served
                await self._runtime(approval.directive_id).workspace.remove_attempt(attempt)
        for action, reason in follow_up:
            if action == "replan":
                await self.regenerate_chain(approval.directive_id, reason)
            elif action == "stop":
                await self.stop_directive(approval.directive_id, reason)
        self._wake(approval.directive_id)
        return resolved

    # ------------------------------------------------------------------
    # Waiting (headless command and tests)
    # ------------------------------------------------------------------

    async def wait_settled(self, directive_id: str, timeout: float | None = None) -> Outcome:
        """Wait until the directive is done (and its ending's own writes
        landed), paused, or waiting only for a person."""

        async def wait() -> Outcome:
            while True:
                outcome = await self._outcome(directive_id)
                if outcome is not None:
                    return outcome
                rt = self._runtime(directive_id)
                if rt.settled.is_set():  # resting but not decided: a follow-up is in flight
                    await asyncio.sleep(0.05)
                else:
                    await rt.settled.wait()

        return await asyncio.wait_for(wait(), timeout)

    async def _outcome(self, directive_id: str) -> Outcome | None:
        if self._lease is not None and self._lease.lost.is_set():
            raise EngineError(
                f"this engine lost the database to {self.watching} (its heartbeat had gone quiet) "
                "and stopped running steps; that engine carries on"
            )
        d = await self.store.get_directive(directive_id)
        rt = self._runtime(directive_id)
        if d.status in (D.COMPLETED, D.FAILED, D.STOPPED):
            # An ending still has work that writes: the driver tidying the
            # workspace (its closing notice), a replan finishing after a stop.
            if (rt.driver is not None and not rt.driver.done()) or rt.replanning:
                return None
            return Outcome(d.status.value)
        if rt.steps or (rt.driver and not rt.driver.done() and not rt.settled.is_set()):
            return None
        if d.status is D.PAUSED:
            return Outcome.PAUSED
        if (
            d.status is D.ACTIVE
            and rt.settled.is_set()
            and await self.store.pending_approvals(directive_id)
        ):
            return Outcome.AWAITING_APPROVAL
        return None

    # ------------------------------------------------------------------
    # The driver
    # ------------------------------------------------------------------

    def _launch_driver(self, directive_id: str) -> None:
        if not self.runs_steps:  # the engine holding the lease picks it up from the database
            return
        rt = self._runtime(directive_id)
        rt.settled.clear()
        rt.rescan = True
        if rt.driver is None or rt.driver.done():
            rt.driver = asyncio.create_task(self._drive(directive_id), name=f"drive-{directive_id}")
        rt.wake.set()

    def _wake(self, directive_id: str) -> None:
        rt = self._runtime(directive_id)
        rt.settled.clear()
        rt.rescan = True
        rt.wake.set()
        if rt.driver is None or rt.driver.done():
            rt.settled.set()

    async def _drive(self, directive_id: str) -> None:
        rt = self._runtime(directive_id)
        try:
            while not self._closing:
                rt.wake.clear()
                view = await self._look(rt, directive_id)
                d = view.directive
                if d.status is D.PLANNING:
                    await self._plan(d)
                    continue
                if d.status is not D.ACTIVE:
                    await self._cancel_steps(directive_id)  # paused or stopped elsewhere too
                    break
                tripped = breaker_reason(d)
                if tripped:
                    await self._trip(directive_id, *tripped)
                    break
                if view.chain is None:
                    await self._fail(directive_id, "active directive has no chain")
                    break
                if view.completed:
                    await self._finish_workspace(directive_id)
                    break
                if rt.steps or rt.replanning:
                    rt.settled.clear()
                else:  # only a person can move it now: time waiting for them is not counted
                    if d.active_since is not None:
                        reason = "nothing runs until a person answers"
                        d = await self._set_clock(directive_id, running=False, reason=reason)
                    rt.settled.set()
                await self._sleep(rt, d)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a broken database: say so, don't hang
            log.exception("driver for %s crashed", directive_id)
            notice = Notice(
                directive_id=directive_id, message=f"engine error: {exc!r}", severity=Severity.ERROR
            )
            with contextlib.suppress(Exception):
                await self._write(directive_id, lambda tx: tx.emit(notice))
        finally:
            rt.settled.set()

    async def _sleep(self, rt: Runtime, d: Directive) -> None:
        """Until something happens, or the wall-time limit comes due (not
        while the clock is stopped)."""
        timeout = None
        if d.spec.limits.max_wall_time_minutes is not None and d.active_since is not None:
            timeout = max(d.spec.limits.max_wall_time_minutes * 60 - d.wall_time_s(), 0.0) + 0.01
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rt.wake.wait(), timeout)

    async def _look(self, rt: Runtime, directive_id: str) -> DriverView:
        """The driver's transaction: the directive, its chain, and the steps
        it starts now (see `chains.drive`)."""
        rescan, rt.rescan = rt.rescan, False
        busy = frozenset(rt.steps)
        try:
            view: DriverView = await self._write(
                directive_id,
                lambda tx: drive(
                    tx,
                    directive_id,
                    busy=busy,
                    done=None if rescan else set(),
                    launch=not rt.replanning,
                    complete=True,
                ),
                then=self._start_claims,
            )
        except BaseException:
            rt.rescan = True
            raise
        if rescan and not view.promoted:
            rt.rescan = True  # nothing was looked at: look at everything next time
        return view

    def _start_claims(self, view: DriverView) -> None:
        """Give each claimed step its task. Runs right after the claiming
        transaction commits, even when the caller was cancelled meanwhile, so
        no claim is lost; an engine closing (or no longer holding the lease)
        starts none, and `_release_unstarted` puts them back."""
        for claim in view.claims:
            rt = self._runtime(claim.directive.id)
            rt.unstarted[claim.step.id] = claim
            if self._closing or (self._lease is not None and self._lease.lost.is_set()):
                continue
            rt.steps[claim.step.id] = asyncio.create_task(
                self._run_step(claim), name=f"step-{claim.step.name}"
            )

    # ------------------------------------------------------------------
    # Breakers and stopping steps
    # ------------------------------------------------------------------

    async def _trip(self, directive_id: str, breaker: str, reason: str) -> None:
        def trip(tx: Tx) -> None:
            d = tx.directive(directive_id)
            if d.status not in (D.ACTIVE, D.PLANNING):
                return
            tx.emit(BreakerTripped(directive_id=directive_id, breaker=breaker, reason=reason))
            tx.directive_status(directive_id, D.PAUSED, reason=f"{breaker} breaker: {reason}")

        await self._write(directive_id, trip)
        await self._halt(directive_id)

    async def _fail(self, directive_id: str, reason: str) -> None:
        def fail(tx: Tx) -> None:
            tx.emit(Notice(directive_id=directive_id, message=reason, severity=Severity.ERROR))
            d = tx.directive(directive_id)
            if D.FAILED in DIRECTIVE_TRANSITIONS[d.status]:
                tx.directive_status(directive_id, D.FAILED, reason=reason)

        await self._write(directive_id, fail)
        await self._finish_workspace(directive_id)

    async def _dead_holder(self) -> LeaseHolder | None:
        """The engine that held this database and died (`kill -9`, a reboot),
        when this one runs no step and no other lives: the steps it left
        marked running are leftovers, and a pause or stop tidies them as the
        next engine would, or they would show as running for good."""
        if self.runs_steps:
            return None
        return await EngineLease.dead_holder(self.store.path, self.services.lease_stale_after_s)

    async def _halt(self, directive_id: str) -> None:
        await self._cancel_steps(directive_id)
        rt = self._runtime(directive_id)
        rt.wake.set()

    async def _cancel_steps(self, directive_id: str) -> None:
        rt = self._runtime(directive_id)
        me = asyncio.current_task()
        tasks = [t for t in rt.steps.values() if t is not me]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._release_unstarted(rt)

    async def _release_unstarted(self, rt: Runtime) -> None:
        """Steps claimed by the driver whose task was cancelled before it
        began: their attempt never ran its own clean-up, so put them back
        to ready here."""
        claims, rt.unstarted = list(rt.unstarted.values()), {}
        for claim in claims:
            await self._interrupt(claim.directive.id, claim.step.id, claim.run.id, [])


# Answers that run and merge nothing: taken while the repository folder is
# gone (a denied plan stops the directive, a denied step is escalated).
TAKEN_WITHOUT_REPO = frozenset({ApprovalDecision.DENY, ApprovalDecision.STOP})


def _tidy_after(dead: LeaseHolder | None, tx: Tx, directive_id: str) -> None:
    """Recover what the dead engine `dead` left of the directive, unless an
    engine took its lease over since it was read (the steps are its own)."""
    if dead is not None and still_held_by(tx.conn, dead):
        recover_after_death(tx, directive_id, dead.heartbeat)


def _go(tx: Tx, directive_id: str, *, starting: bool) -> None:
    """Start or resume, decided on what this transaction reads: between a
    read and a later write a breaker could pause the directive, or its first
    plan land, and planning it again would add a second first chain. A
    paused directive goes back to where it was (active with a chain,
    planning without) once no breaker trips; `start` plans a draft, and
    what the transition table refuses is refused with its message."""
    d = tx.directive(directive_id)
    if d.status is D.DRAFT and not starting:
        raise EngineError(f"{d.title!r} has not started yet: start it instead")
    if d.status is D.PAUSED:
        tripped = breaker_reason(d)
        if tripped:
            raise EngineError(f"cannot resume: {tripped[1]}; raise the limit first")
    if starting and d.status is not D.PAUSED:
        target = D.PLANNING
    else:
        target = D.ACTIVE if tx.current_chain(directive_id) is not None else D.PLANNING
    tx.directive_status(directive_id, target, actor=Actor.USER)
