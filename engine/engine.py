"""DirectiveEngine: takes a directive from its plan to completion.

One driver task per active directive launches ready steps (bounded by
`max_parallel_steps`), each step attempt is its own task (execute, evaluate,
act on the confidence level), and every change goes through the store in one
transaction with its event before it is published on the bus. The database
is the truth: the in-memory state here is only which tasks are running, so a
fresh engine on an existing file picks up where the last one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from engine import approvals, pricing
from engine.breakers import breaker_reason, budget_for
from engine.bus import EventBus
from engine.chains import (
    LEVEL_SEVERITY,
    LIVE_STEP,
    Claim,
    DriverView,
    build_chain,
    charge_planning,
    drive,
    record_checkpoint,
    recover,
    steps_to_rerun,
)
from engine.evaluator import FOR_A_PERSON
from engine.events import (
    ApprovalResolved,
    BreakerTripped,
    ChainCreated,
    CostUpdated,
    DirectiveCreated,
    EngineEvent,
    EvaluationCompleted,
    LimitsChanged,
    Notice,
    StepOutput,
)
from engine.executors.base import ExecutionResult, StepContext
from engine.models import (
    REVIEW_OPTIONS,
    Actor,
    ApprovalDecision,
    ApprovalKind,
    ApprovalRequest,
    ApprovalStatus,
    Autonomy,
    Chain,
    ConfidenceLevel,
    Directive,
    DirectiveSpec,
    DirectiveStatus,
    Evaluation,
    ExecutorKind,
    Limits,
    PlannerKind,
    Severity,
    Step,
    StepRun,
    StepStatus,
    TokenUsage,
    VerifierResult,
    now,
)
from engine.planner import PlannedChain, ReplanContext
from engine.services import EngineServices
from engine.store import Store, StoreError, Tx, _list_steps
from engine.text import clip
from engine.transitions import DIRECTIVE_TERMINAL, DIRECTIVE_TRANSITIONS, RETRYABLE, STEP_ACTIVE
from engine.verdicts import VERDICTS, Verdict
from engine.verifiers.base import VerifyContext
from engine.worktrees import (
    Attempt,
    Checkpoint,
    FastForwardOffer,
    GitError,
    MergeResult,
    StaleAttemptError,
    Workspace,
)

log = logging.getLogger(__name__)

D, S = DirectiveStatus, StepStatus
# Why an attempt stopped halfway, as the log says it, by what the directive
# became (else the engine is closing: it runs again when one starts).
INTERRUPTED = {
    D.STOPPED: "interrupted: the directive stopped",
    D.PAUSED: "interrupted: runs again on resume",
}
# What can be deleted: never started, or ended (nothing runs, nothing waits).
DELETABLE = frozenset({D.DRAFT}) | DIRECTIVE_TERMINAL


class EngineError(RuntimeError):
    """A command the engine refuses, with the reason a person can act on."""


class ApprovalAlreadyResolved(EngineError):
    pass


class Outcome(StrEnum):
    """Where a directive has come to rest (what the headless command reports)."""

    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"
    PAUSED = "paused"
    AWAITING_APPROVAL = "awaiting_approval"


# --------------------------------------------------------------------------
# In-memory runtime of one directive: its tasks, nothing else.
# --------------------------------------------------------------------------


@dataclass
class _Runtime:
    driver: asyncio.Task[None] | None = None
    steps: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    output: list[EngineEvent] = field(default_factory=list)
    flush: asyncio.TimerHandle | None = None
    llm: Any | None = None
    llm_ready: bool = False
    workspace: Workspace | None = None  # git worktrees, when the repo is a git work tree
    workspace_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    workspace_ready: bool = False
    # Said in the log before the first attempt runs (read-only views write
    # nothing): the tree is shared, or holds changes the directive leaves out.
    workspace_note: str | None = None
    # Why there is no git workspace, for the views that need one.
    workspace_absent: str = ""
    # Held while a replan is made: the driver launches no step of the old
    # chain, and a second replan waits for the first (each reads the chain
    # it replaces).
    replan_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Whether the driver must look at every pending step: after anything from
    # outside the step tasks (a start, an answer, a skip, a replan). A step
    # that passes promotes its own dependents (see `_judge`).
    rescan: bool = True
    # Claimed by the driver (running in the database) but their task has not
    # begun: a cancel then never reaches the attempt's own clean-up.
    unstarted: dict[str, Claim] = field(default_factory=dict)
    # The end's tidying ran (worktrees gone, the result's notice written):
    # the driver, a view of the result and the app's announcement may each
    # ask for it at the end, and it is done and said once.
    finish_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    finished: bool = False

    @property
    def replanning(self) -> bool:
        return self.replan_lock.locked()

    def tasks(self) -> list[asyncio.Task[None]]:
        """The driver and the running step attempts."""
        return [t for t in (self.driver, *self.steps.values()) if t is not None]


class DirectiveEngine:
    def __init__(
        self,
        store: Store,
        bus: EventBus | None = None,
        services: EngineServices | None = None,
    ) -> None:
        self.store = store
        self.bus = bus or EventBus()
        self.services = services or EngineServices()
        self._rt: dict[str, _Runtime] = {}
        self._closing = False
        self._background: set[asyncio.Task[Any]] = set()
        self._inflight: set[asyncio.Future[Any]] = set()  # writes not yet committed
        self._lease: Any | None = None  # engine.lease.EngineLease once started
        self._watcher: asyncio.Task[None] | None = None
        self._seen: dict[str, int] = {}  # directive id -> last event seq published here
        self._only: list[str] | None = None
        self._label = "engine"
        # Who runs this database when this engine only watches (None: we do),
        # and who wants to know when that changes (the app's title line).
        self.watching: str | None = None
        self.on_role_change: Callable[[str | None], None] | None = None
        # Who wants to know of directives another process deleted (they leave
        # no event behind: their log goes with them).
        self.on_directives_gone: Callable[[list[str]], None] | None = None

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

    async def _take_lease(self, label: str) -> None:
        from engine.lease import EngineLease

        self._lease = await EngineLease.acquire(
            self.store,
            label,
            heartbeat_s=self.services.lease_heartbeat_s,
            stale_after_s=self.services.lease_stale_after_s,
            on_lost=self._lease_lost,
        )
        self.watching = None
        if self._lease.taken_over:
            log.warning("%s", self._lease.taken_over)

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

        def recovering(tx: Tx) -> None:
            recover(tx, d.id)
            current = tx.directive(d.id)
            if current.active_since is not None and dead_since is not None:
                # Its engine died with the clock running: it ran until the
                # engine's last heartbeat, not through the time nothing ran it.
                current = tx.clock(
                    current,
                    running=False,
                    reason="the engine that ran it stopped",
                    at=max(dead_since, current.active_since),
                )
            if d.status is D.PLANNING:  # its clock stopped when the last engine closed
                tx.clock(current, running=True, reason="planning again")

        await self._write(d.id, recovering)
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

    async def _set_clock(self, directive_id: str, *, running: bool, reason: str) -> Directive:
        """`Tx.clock` in a transaction of its own, on the directive as it is
        then; the directive as it is after."""
        return await self._write(
            directive_id,
            lambda tx: tx.clock(tx.directive(directive_id), running=running, reason=reason),
        )

    @property
    def runs_steps(self) -> bool:
        """Whether this engine carries out directives (it holds the lease,
        or was told not to take one), rather than watching another."""
        return self.watching is None

    async def running_steps(self) -> list[str]:
        """Names of the steps whose attempts run in this process now: what
        closing the engine would interrupt (they run again from the start)."""
        ids = [sid for rt in self._rt.values() for sid, task in rt.steps.items() if not task.done()]
        return sorted([(await self.store.get_step(sid)).name for sid in ids])

    async def watch_external(self) -> None:
        """Follow writes made by other processes on this database (an answer
        given with `directive-tui approve`, a directive started from a
        watching app, or the holder's own work when this engine watches):
        their events are published here as well. Cheap: SQLite's
        `data_version` moves only when another connection commits."""
        if self._watcher is not None:
            return
        for d in await self.store.list_directives():
            self._seen.setdefault(d.id, d.last_seq)
        self._watcher = asyncio.create_task(self._follow_external(), name="external-writes")

    async def _follow_external(self) -> None:
        version = await self.store.read(_data_version)
        next_try = 0.0
        while True:
            await asyncio.sleep(self.services.external_poll_s)
            if self.watching is not None and asyncio.get_running_loop().time() >= next_try:
                next_try = asyncio.get_running_loop().time() + self.services.lease_heartbeat_s
                await self._try_take_over()
            now_version = await self.store.read(_data_version)
            if now_version == version:
                continue
            version = now_version
            directives = await self.store.list_directives()
            self._forget_deleted({d.id for d in directives})
            for d in directives:
                events = await self.store.list_events(d.id, after_seq=self._seen.get(d.id, 0))
                if not events:
                    continue
                self._seen[d.id] = events[-1].seq
                self.bus.publish_many(events)
                if self.runs_steps:
                    await self._adopt(d)

    def _forget_deleted(self, present: set[str]) -> None:
        """Directives deleted by another process (only an ended or draft one
        can be: nothing of it runs here) are forgotten, and said."""
        gone = [did for did in self._seen if did not in present]
        for did in gone:
            self._seen.pop(did, None)
            rt = self._rt.get(did)
            if rt is not None and all(t.done() for t in rt.tasks()):
                self._rt.pop(did, None)
        if gone and self.on_directives_gone is not None:
            self.on_directives_gone(gone)

    async def _adopt(self, d: Directive) -> None:
        """Something else wrote to `d`: the running engine carries on with it
        (a directive started or resumed from a watching app or the command
        line gets a driver here; a running one re-reads, and stops its steps
        when it was paused or stopped elsewhere)."""
        rt = self._rt.get(d.id)
        if rt is not None and rt.driver is not None and not rt.driver.done():
            self._wake(d.id)
            return
        if d.status not in (D.ACTIVE, D.PLANNING):
            if rt is not None:
                self._wake(d.id)
            return
        if rt is not None and rt.steps:
            self._launch_driver(d.id)
        else:  # none of its steps runs here: close what a crash left open, then drive
            await self._recover(d)

    async def _try_take_over(self) -> None:
        """A watching engine becomes the running one once the holder is gone."""
        from engine.lease import LeaseError

        try:
            await self._take_lease(self._label)
        except (LeaseError, OSError) as exc:
            holder = getattr(exc, "holder", None)
            if holder is not None:
                self.watching = holder.brief()
            return
        self._only = None
        self._role_changed()
        await self._recover_all()

    def _role_changed(self) -> None:
        if self.on_role_change is not None:
            self.on_role_change(self.watching)

    def _lease_lost(self) -> None:
        """Another engine took this database over (ours had gone quiet too
        long): stop running anything, so no step runs twice, and watch."""
        log.error("engine lease lost: this engine stops running steps and watches")
        self.watching = "the engine that took this database over"
        self._role_changed()
        for rt in self._rt.values():
            for t in rt.tasks():
                t.cancel()

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
        await self._write(
            directive_id,
            lambda tx: tx.directive_status(directive_id, D.PAUSED, reason=reason, actor=Actor.USER),
        )
        await self._halt(directive_id)

    async def resume_directive(self, directive_id: str) -> None:
        await self._refuse_without_repo(directive_id, "resume")
        await self._write(directive_id, lambda tx: _go(tx, directive_id, starting=False))
        self._launch_driver(directive_id)

    async def _refuse_without_repo(self, directive_id: str, doing: str) -> None:
        """Nothing can run without the repository folder: say so, rather than
        run steps that fail over it."""
        gone = _missing_repo(await self.store.get_directive(directive_id))
        if gone:
            raise RepoGone(f"cannot {doing}: {gone}; put it back first")

    async def stop_directive(self, directive_id: str, reason: str = "stopped by user") -> None:
        def stop(tx: Tx) -> None:
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
        gone = None if d.status is D.DRAFT else _missing_repo(d)  # a draft made no refs
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
            gone = _missing_repo(await self.store.get_directive(approval.directive_id))
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
            a = tx.approval(approval_id)
            if a.status is ApprovalStatus.SUPERSEDED:
                raise ApprovalAlreadyResolved(
                    f"approval {a.id} was closed unanswered ({a.comment}): nothing to answer"
                )
            if not a.pending:
                raise ApprovalAlreadyResolved(
                    f"approval {a.id} is already {a.status.label}"
                    + (f" ({a.decision.label})" if a.decision else "")
                )
            if decision not in a.options:
                allowed = ", ".join(o.label for o in a.options)
                raise EngineError(
                    f"approval {a.id} ({a.kind.value}) takes {allowed}, not {decision.label}"
                )
            refused = approvals.refused_answers(a, tx.directive(a.directive_id)).get(decision)
            if refused:
                raise EngineError(refused)
            status = approvals.APPROVAL_STATUS.get(decision, ApprovalStatus.RESOLVED)
            tx.update(
                "approval_requests",
                a.id,
                status=status,
                decision=decision,
                comment=comment,
                resolved_at=now(),
            )
            tx.emit(
                ApprovalResolved(
                    directive_id=a.directive_id,
                    approval_id=a.id,
                    decision=decision.value,
                    step_id=a.step_id,
                    comment=comment,
                    actor=Actor.USER,
                )
            )
            follow_up.extend(approvals.apply_decision(tx, a, decision, comment, problem))
            if a.step_id and problem is None and decision is ApprovalDecision.APPROVE:
                record_checkpoint(tx, tx.step(a.step_id), merged)
            return a.model_copy(update={"status": status, "decision": decision, "comment": comment})

        resolved, _ = await self._write_with(approval.directive_id, resolve)
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
            limit = d.spec.limits.max_chain_regenerations
            why = f"chain regeneration limit reached ({d.regenerations}/{limit}) while replanning: {reason}"
            await self._trip(directive_id, "regenerations", why)
            # Paused; once resumed, a person decides about the step instead.
            failed = _asking_step(await self.store.list_steps(old.id), failed_step_id)
            await self._write(directive_id, lambda tx: _ask_again(tx, directive_id, failed, why))
            return None
        await self._cancel_steps(directive_id)
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
        carried = {s.name: s for s in kept}
        for s in steps:
            if s.name in carried:
                k = carried[s.name]
                s.status, s.carried_from = S.PASSED, k.id
                s.confidence, s.level, s.attempts = k.confidence, k.level, k.attempts
                s.rework_count = k.rework_count  # the rework it took stays visible (↻N)

        def swap(tx: Tx) -> D:
            status = tx.directive(directive_id).status
            if status not in (D.ACTIVE, D.PAUSED):
                # Completed, stopped or failed while the planner worked: the
                # plan is not used, what it cost is still charged.
                charge_planning(tx, directive_id, planned)
                tx.emit(
                    Notice(
                        directive_id=directive_id,
                        message="the new chain was not used: the directive ended while it was planned",
                        severity=Severity.WARNING,
                    )
                )
                return status
            tx.update("directive_chains", old.id, superseded=True)
            for s in old_steps:
                if tx.step(s.id).status in LIVE_STEP:  # as it is now, not before planning
                    tx.step_status(s.id, S.SUPERSEDED, reason="chain regenerated")
            approvals.supersede(tx, directive_id, f"chain regenerated: {reason}", chain_id=old.id)
            tx.add_chain(chain, steps)
            tx.update("directives", directive_id, regenerations=d.regenerations + 1)
            charge_planning(tx, directive_id, planned)
            tx.emit(
                ChainCreated(
                    directive_id=directive_id,
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

        status = await self._write(directive_id, swap)
        if status not in (D.ACTIVE, D.PAUSED):
            return None
        if status is D.ACTIVE:
            self._launch_driver(directive_id)
        return chain

    # ------------------------------------------------------------------
    # Git worktrees: checkpoints, the final diff, the user's branch
    # ------------------------------------------------------------------

    async def checkpoints(self, directive_id: str) -> list[Checkpoint]:
        return await (await self._require_workspace(directive_id)).checkpoints()

    async def start_point(self, directive_id: str) -> Checkpoint:
        """Checkpoint 0: resetting to it runs every step again."""
        return (await self._require_workspace(directive_id)).start_point()

    async def final_diff(self, directive_id: str, *, stat: bool = False) -> str:
        return await (await self._require_workspace(directive_id)).final_diff(stat=stat)

    async def run_diff(self, run: StepRun) -> str:
        """The diff of one attempt (its start commit to its own commit)."""
        if not (run.base_sha and run.commit_sha):
            return ""
        ws = await self._require_workspace(run.directive_id)
        return await ws.diff(run.base_sha, run.commit_sha)

    async def offer_fast_forward(self, directive_id: str) -> FastForwardOffer:
        return await (await self._require_workspace(directive_id)).offer_fast_forward()

    async def fast_forward_user_branch(self, directive_id: str) -> str:
        """Move the user's branch to the directive's result: only on request."""
        ws = await self._require_workspace(directive_id)
        try:
            sha = await ws.fast_forward_user_branch()
        except (GitError, ValueError) as exc:
            raise EngineError(f"cannot fast-forward your branch: {exc}") from exc
        notice = Notice(
            directive_id=directive_id,
            message=f"your branch {ws.user_branch} fast-forwarded to {sha[:10]}",
            severity=Severity.SUCCESS,
            actor=Actor.USER,
        )
        await self._write(directive_id, lambda tx: tx.emit(notice))
        return sha

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

    async def _another_engine_lives(self) -> bool:
        """Whether another engine holds this database's lease and lives (a
        step it left marked running is its to finish, not a leftover)."""
        from engine.lease import EngineLease, holder_gone

        if self._lease is not None:  # this engine holds it: no other runs here
            return False
        holder = await EngineLease.holder(self.store.path)
        if holder is None:
            return False
        gone = holder_gone(
            holder,
            host=socket.gethostname(),
            now=now(),
            stale_after_s=self.services.lease_stale_after_s,
        )
        return gone is None

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
            dropped = await ws.reset_to(point)
        except (GitError, ValueError) as exc:
            raise EngineError(f"cannot reset to {_point(point)}: {exc}") from exc
        tip = await ws.integration_tip()
        steps, rerun, kept = await self._reset_effects(ws, directive_id, tip, dropped)
        stale = await self._stale_carries(ws, steps, rerun, tip)

        def reset(tx: Tx) -> set[str]:
            why = f"integration branch reset to {_point(point)}"
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
                    tx.step_status(s.id, S.PENDING, reason=why, carry_sha=None, rework_count=0)
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

        again = rerun | interrupted | await self._write(directive_id, reset)
        return [s.name for s in steps if s.id in again]

    def _work_dir(self) -> Path:
        path = self.store.path
        return self.services.work_dir or path.parent / f"{path.stem}-work"

    async def _workspace(self, d: Directive) -> Workspace | None:
        """The directive's git workspace, opened once; None means attempts run
        in the repository itself (not a git work tree, or isolation is off).
        An ended directive's is opened to look only, creating nothing in the
        repository (see `Workspace.open`). RepoGone, and nothing kept, while
        the folder is missing: it may come back."""
        rt = self._runtime(d.id)
        async with rt.workspace_lock:
            if rt.workspace_ready:
                return rt.workspace
            _require_repo(d)
            rt.workspace_ready = True
            if not (self.services.isolate_steps and d.spec.workspace.isolate):
                rt.workspace_absent = (
                    "it runs in its folder without worktrees ([workspace] isolate is off)"
                )
                return None
            try:
                rt.workspace = await Workspace.open(
                    Path(d.spec.repo),
                    d.id,
                    self._work_dir(),
                    artifacts=d.spec.workspace.artifacts,
                    look_only=d.status in DIRECTIVE_TERMINAL,
                )
            except (GitError, ValueError) as exc:
                rt.workspace_absent = str(exc)
                rt.workspace_note = f"steps run in the repository itself: {exc}"
                return None
            if rt.workspace is None:
                rt.workspace_absent = f"{d.spec.repo} is not a git work tree"
                rt.workspace_note = (
                    f"{d.spec.repo} is not a git work tree: steps run in it directly"
                    " and parallel steps share one tree"
                )
            elif rt.workspace.dirty_at_open:
                rt.workspace_note = (
                    "uncommitted changes in your tree are not part of this directive: "
                    + ", ".join(rt.workspace.dirty_at_open[:8])
                )
            return rt.workspace

    async def _steps_workspace(self, d: Directive) -> Workspace | None:
        """The workspace an attempt runs in. The folder is looked for every
        time (it can go while the directive runs: RepoGone), and the first
        attempt writes the workspace's warning to the log."""
        _require_repo(d)
        ws = await self._workspace(d)
        rt = self._runtime(d.id)
        note, rt.workspace_note = rt.workspace_note, None
        if note:
            notice = Notice(directive_id=d.id, message=note, severity=Severity.WARNING)
            await self._write(d.id, lambda tx: tx.emit(notice))
        return ws

    def _worktrees_dir(self, directive_id: str) -> Path:
        """Where the directive's worktrees live (`Workspace.open` puts them
        there): its presence marks an end not tidied yet."""
        return self._work_dir() / "worktrees" / directive_id

    def _worktrees_left(self, directive_id: str) -> bool:
        return self._worktrees_dir(directive_id).exists()

    def _left_to_tidy(self, d: Directive) -> bool:
        """An ended directive whose worktrees are still there (its end came
        from another process, before a restart, or while its repository
        folder was gone), and whose folder is there to remove them from."""
        return (
            d.status in DIRECTIVE_TERMINAL and self._worktrees_left(d.id) and not _missing_repo(d)
        )

    async def _require_workspace(self, directive_id: str) -> Workspace:
        """For the git views and commands (diff, checkpoints, merge, reset):
        they refuse in plain words when there is nothing to show (the views
        write no event; merge and reset log what they did). The first to
        find the folder of a directive that ended while it was gone removes
        the worktrees left (and writes the notice the end could not)."""
        d = await self.store.get_directive(directive_id)
        if self._left_to_tidy(d):
            await self._finish_workspace(directive_id)
        ws = await self._workspace(d)
        if ws is None:
            why = self._runtime(directive_id).workspace_absent
            raise EngineError(f"this directive has no git workspace: {why}")
        return ws

    async def _prune_worktrees(self, d: Directive) -> None:
        """After a crash: remove every worktree no step still needs (those
        awaiting approval, and failed or blocked ones kept for inspection)."""
        chain = await self.store.current_chain(d.id)
        if chain is None or _missing_repo(d):  # gone: its first attempt pauses it
            return
        ws = await self._workspace(d)
        if ws is None:
            return
        keep_status = (S.AWAITING_APPROVAL, S.BLOCKED, S.FAILED)
        keep = [
            ws.attempt_path(s.name, s.attempts)
            for s in await self.store.steps_in(chain.id, keep_status)
            if s.attempts
        ]
        with contextlib.suppress(GitError):
            await ws.prune(keep=keep)

    async def _merge_approved(
        self, approval: ApprovalRequest, decision: ApprovalDecision
    ) -> tuple[MergeResult | None, str | None, Attempt | None]:
        """Before an answer to a step review is written: approving merges the
        waiting attempt (a conflict turns the approval into a rework)."""
        review = approval.kind is ApprovalKind.STEP_REVIEW
        if not (review and approval.pending and approval.step_id):
            return None, None, None
        ws = await self._workspace(await self.store.get_directive(approval.directive_id))
        if ws is None:
            return None, None, None
        step = await self.store.get_step(approval.step_id)
        attempt = await ws.resume_attempt(step.name, step.attempts)
        if attempt is None or decision is not ApprovalDecision.APPROVE:
            return None, None, attempt
        merged, problem = await self._merge(approval.directive_id, attempt)
        return merged, problem, attempt

    async def _finish_workspace(self, directive_id: str) -> None:
        rt = self._runtime(directive_id)
        async with rt.finish_lock:
            if not rt.finished:
                rt.finished = await self._finish(directive_id)

    async def _finish(self, directive_id: str) -> bool:
        """The directive ended: worktrees go, the integration branch stays,
        and the user is told how to take the result (never done for them).
        Not while the repository folder is gone: the log says so, and the
        engine's folder of worktrees stays, the mark `_left_to_tidy` finds
        once the repository is back. Whether it is done (False: left for the
        folder's return)."""
        gone = _missing_repo(await self.store.get_directive(directive_id))
        if gone and self._worktrees_left(directive_id):
            message = (
                f"{gone}, so its worktrees stay: the first command that finds it again"
                " (the app, diff, checkpoints or merge) removes them"
            )
            notice = Notice(directive_id=directive_id, message=message, severity=Severity.WARNING)
            await self._write(directive_id, lambda tx: tx.emit(notice))
            return False
        ws = self._runtime(directive_id).workspace
        if ws is None and self._worktrees_left(directive_id):
            # ended by a command of another process, or before a restart
            with contextlib.suppress(RepoGone):
                ws = await self._workspace(await self.store.get_directive(directive_id))
        if ws is None:
            return True
        try:
            await ws.close()
            offer = await ws.offer_fast_forward()
        except GitError as exc:
            message, severity = f"could not tidy the worktrees: {exc}", Severity.WARNING
        else:
            message, severity = self._result_notice(directive_id, ws, offer), Severity.INFO
        notice = Notice(directive_id=directive_id, message=message, severity=severity)
        await self._write(directive_id, lambda tx: tx.emit(notice))
        return True

    def _result_notice(self, directive_id: str, ws: Workspace, offer: FastForwardOffer) -> str:
        """Where the result is and the command that takes it, with this
        store's database (a bare command would open the default one); a
        directive that committed nothing has no result to point at."""
        if offer.target_sha == ws.base_sha:
            return "no step changed anything: nothing to merge"
        message = f"the result is on branch {ws.integration_branch}"
        if not offer.possible:
            return f"{message} ({offer.reason})"
        db = shlex.quote(str(self.store.path.absolute()))
        merge = f"directive-tui --db {db} merge {directive_id}"
        return f"{message}; `{merge}` fast-forwards {offer.branch}"

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

    def _runtime(self, directive_id: str) -> _Runtime:
        rt = self._rt.get(directive_id)
        if rt is None:
            rt = self._rt[directive_id] = _Runtime()
        return rt

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

    async def _sleep(self, rt: _Runtime, d: Directive) -> None:
        """Until something happens, or the wall-time limit comes due (not
        while the clock is stopped)."""
        timeout = None
        if d.spec.limits.max_wall_time_minutes is not None and d.active_since is not None:
            timeout = max(d.spec.limits.max_wall_time_minutes * 60 - d.wall_time_s(), 0.0) + 0.01
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rt.wake.wait(), timeout)

    async def _look(self, rt: _Runtime, directive_id: str) -> DriverView:
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
    # Planning
    # ------------------------------------------------------------------

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
                steps = _list_steps(tx.conn, "s.chain_id = ?", (chain.id,))
                _ask_plan_approval(tx, tx.directive(directive_id), steps, f"{why}; as it stands")

        await self._write(directive_id, keep)
        self._wake(directive_id)

    # ------------------------------------------------------------------
    # One step attempt
    # ------------------------------------------------------------------

    async def _run_step(self, claim: Claim) -> None:
        directive_id, step_id = claim.directive.id, claim.step.id
        rt = self._runtime(directive_id)
        rt.unstarted.pop(step_id, None)
        handed_on = False
        try:
            handed_on = await self._attempt(claim)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("step %s crashed", step_id)
            notice = Notice(
                directive_id=directive_id,
                step_id=step_id,
                message=f"engine error in step: {exc!r}",
                severity=Severity.ERROR,
            )
            with contextlib.suppress(Exception):
                await self._write(directive_id, lambda tx: tx.emit(notice))
        finally:
            if rt.steps.get(step_id) is asyncio.current_task():
                del rt.steps[step_id]
            if not handed_on:
                rt.wake.set()

    async def _attempt(self, claim: Claim) -> bool:
        """Run one attempt to its verdict. True when the verdict's transaction
        started the next steps itself, so the driver need not look."""
        d, step, run = claim.directive, claim.step, claim.run
        held: list[Attempt] = []  # the attempt's worktree, once it has one
        try:
            return await self._attempt_phases(d, step, run, held)
        except asyncio.CancelledError:
            # Any phase may have committed just before the cancel arrived:
            # the interrupt runs after it and puts the step back to ready.
            await asyncio.shield(self._interrupt(d.id, step.id, run.id, held))
            raise

    async def _attempt_phases(
        self,
        d: Directive,
        step: Step,
        run: StepRun,
        held: list[Attempt],
    ) -> bool:
        try:
            ws = await self._steps_workspace(d)
        except RepoGone as exc:
            await self._pause_without_repo(d, step, run, str(exc))
            return False
        workdir, attempt = Path(d.spec.repo), None
        if ws is not None:
            try:
                attempt = await ws.start_attempt(step.name, run.attempt, from_commit=step.carry_sha)
            except (GitError, StaleAttemptError) as exc:
                failure = ExecutionResult(
                    success=False, error=f"could not prepare a worktree: {exc}"
                )
                await self._step_failed(d, step, run, failure)
                return False
            held.append(attempt)
            workdir, run.base_sha = attempt.workdir, attempt.base_sha
            if attempt.carry_conflicts:
                self._emitter(d.id, step)(
                    "previous attempt could not be carried over (conflicts in "
                    + ", ".join(attempt.carry_conflicts)
                    + "): starting from the integration branch",
                    Severity.WARNING,
                )
        result = await self._execute(d, step, run, workdir)
        if attempt is not None and result.success:
            try:
                run.commit_sha = await ws.commit_attempt(
                    attempt, f"{step.name}: attempt {run.attempt}\n\n{result.summary}"
                )
                changed = (
                    await ws.changed_files(attempt.base_sha, run.commit_sha)
                    if run.commit_sha
                    else []
                )
                result.modified_files = changed
                left_out = await ws.left_out(attempt)
                if left_out:
                    shown = ", ".join(left_out[:5]) + (" ..." if len(left_out) > 5 else "")
                    self._emitter(d.id, step)(
                        f"not committed, git ignores it: {shown}; later steps will not see it"
                        " (have the step that needs it make it, list it in [workspace]"
                        " artifacts, or stop ignoring it)",
                        Severity.WARNING,
                        "workspace",
                    )
            except GitError as exc:
                result = ExecutionResult(
                    success=False, error=f"could not commit the attempt: {exc}"
                )
        if not result.success:
            if attempt is not None:  # what it did is not lost: say where it is
                error = result.error or "executor reported failure"
                run.commit_sha = await _commit_failed(ws, attempt, step, run, error)
                kept = f"its files are kept in {attempt.workdir} while the step waits"
                if run.commit_sha:
                    kept += f", committed as {run.commit_sha[:10]}" + (
                        " (a retry starts from it)" if d.spec.workspace.carry_rework else ""
                    )
                result.error = f"{error} ({kept})"
            await self._step_failed(d, step, run, result)
            if attempt is not None:
                await ws.remove_attempt(attempt, keep=True)  # kept for inspection
            return False

        def executed(tx: Tx) -> None:
            tx.update(
                "step_runs",
                run.id,
                status="succeeded",
                summary=result.summary,
                modified_files=result.modified_files,
                base_sha=run.base_sha,
                commit_sha=run.commit_sha,
                finished_at=now(),
            )
            tx.step_status(step.id, S.EVALUATING, known=step)

        # Queued, not awaited: the verifiers start at once, and when they
        # finish before the database thread takes the write (instant checks),
        # the verdict shares its commit. Writes commit in order, so nothing
        # can overtake it; the verdict waits for it.
        # (`executed` reads `step` and `run` on the database thread: the
        # copies below get names of their own.)
        evaluating = self._submit(d.id, executed)
        judged = step.model_copy(update={"status": S.EVALUATING})
        done = run.model_copy(
            update={"modified_files": result.modified_files, "summary": result.summary}
        )
        try:
            evaluation = await self._evaluate(d, judged, done, workdir)
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(evaluating)
            raise
        return await self._judge(d, judged, done, evaluation, attempt, evaluating)

    async def _execute(
        self, d: Directive, step: Step, run: StepRun, workdir: Path
    ) -> ExecutionResult:
        kind = run.executor
        try:
            llm = self._llm(d) if kind in (ExecutorKind.AGENT, ExecutorKind.CLAUDE_CODE) else None
            executor = self.services.executor(kind, llm)
        except Exception as exc:
            return ExecutionResult(success=False, error=f"cannot build executor {kind!r}: {exc}")
        ctx = StepContext(
            directive=d,
            step=step,
            attempt=run.attempt,
            workdir=workdir,
            rework_instructions=step.rework_instructions,
            budget=budget_for(d),
            emit=self._emitter(d.id, step),
            add_cost=lambda usage, cost: self._add_cost(d.id, step.id, run.id, usage, cost),
        )
        try:
            if self.services.track_changes and getattr(executor, "modifies_files", True):
                from engine.changes import ChangeTracker

                async with ChangeTracker(ctx.workdir) as tracker:
                    result = await executor.run(ctx)
                seen = set(result.modified_files) | set(tracker.modified_files)
                result.modified_files = sorted(seen)
            else:
                result = await executor.run(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            result = ExecutionResult(success=False, error=f"{type(exc).__name__}: {exc}")
        return result

    async def _evaluate(self, d: Directive, step: Step, run: StepRun, workdir: Path) -> Evaluation:
        try:
            llm = self._llm(d) if d.spec.verifiers.llm_judge else None
        except Exception as exc:  # a bad DIRECTIVE_LLM_* setting: the judge says so, no verdict
            from engine.verifiers.llm_judge import UnbuiltClient

            llm = UnbuiltClient(f"the Claude client could not be built: {exc}")
        # Verifiers see the attempt's tree as the repository (detection
        # included: a step may have just added the tests).
        seen_as = d.model_copy(update={"spec": d.spec.model_copy(update={"repo": workdir})})
        try:
            verifiers = self.services.verifiers(seen_as, step, llm)
        except Exception as exc:  # e.g. a step naming a tool this repository lacks
            # The directive's checks, not the attempt, are wrong: no rework
            # can fix that, so a person decides, told why in the log too.
            why = f"verifiers could not be set up: {exc}"
            return Evaluation(
                directive_id=d.id,
                step_id=step.id,
                run_id=run.id,
                score=0.0,
                level=ConfidenceLevel.RED,
                passed=False,
                results=[
                    VerifierResult(
                        name="setup",
                        kind="setup",
                        passed=False,
                        score=0.0,
                        weight=0.0,
                        summary=clip(why, 300),
                    )
                ],  # fmt: skip
                summary=why,
                flags=[FOR_A_PERSON],
            )
        evaluator = self.services.evaluator(verifiers, d)
        emit = self._emitter(d.id, step)
        ctx = VerifyContext(
            directive=d,
            step=step,
            run=run,
            workdir=workdir,
            modified_files=run.modified_files,
            diff_base=run.base_sha,
            emit=lambda source, line: emit(line, Severity.DEBUG, source),
            add_cost=lambda usage, cost: self._add_cost(d.id, step.id, run.id, usage, cost),
        )
        evaluation: Evaluation = await evaluator.evaluate(ctx)
        return evaluation.model_copy(
            update={"directive_id": d.id, "step_id": step.id, "run_id": run.id}
        )

    async def _judge(
        self,
        d: Directive,
        step: Step,
        run: StepRun,
        ev: Evaluation,
        attempt: Attempt | None,
        evaluating: asyncio.Future[Any],
    ) -> bool:
        """Act on the confidence level: pass (merging the attempt), ask a
        person, or rework; a merge conflict is a rework with the files named.
        `evaluating` is the write that moved the step to evaluating; limits
        and the replan count are read in the verdict's own transaction (a
        person may have raised them while the step ran).

        The same transaction then does the driver's work for the slot this
        step frees: a pass promotes the dependents it made ready, and steps
        waiting to run are started. True when it started any: the driver
        need not wake, and a chain of quick steps costs one transaction per
        step (this verdict, the next step's start and, sharing the commit,
        the move to evaluating)."""
        gone = _missing_repo(d)
        if gone:  # went while the step ran: the verdict would judge nothing
            await asyncio.shield(evaluating)
            await self._pause_without_repo(d, step, run, gone)
            return False
        autonomy = d.spec.autonomy
        verdict = VERDICTS[(ev.level, autonomy)]
        if FOR_A_PERSON in ev.flags:  # yellow, but unscored: full_auto may not pass it
            verdict = Verdict.ASK
        merged: MergeResult | None = None
        instructions = ev.rework_instructions
        carry = run.commit_sha if d.spec.workspace.carry_rework else None
        if verdict is Verdict.PASS and attempt is not None:
            merged, problem = await self._merge(d.id, attempt)
            if problem:
                verdict, instructions, carry = Verdict.REWORK, problem, run.commit_sha
        replan_after = False

        rt = self._runtime(d.id)
        busy = frozenset(rt.steps)  # this step among them: a rework goes through the driver

        status = S.EVALUATING

        def decide(tx: Tx) -> DriverView:
            nonlocal status
            now_d = tx.directive(d.id)
            status = settle(tx, now_d)
            return drive(
                tx,
                d.id,
                busy=busy,
                done={step.id} if status is S.PASSED else set(),
                launch=not rt.replanning,
                directive=now_d,  # the verdict changes steps, not the directive
            )

        def settle(tx: Tx, now_d: Directive) -> S:
            nonlocal replan_after
            limits = now_d.spec.limits
            tx.add_evaluation(ev)
            tx.emit(
                EvaluationCompleted(
                    directive_id=d.id,
                    step_id=step.id,
                    step_name=step.name,
                    evaluation_id=ev.id,
                    score=ev.score,
                    level=ev.level.value,
                    passed=ev.passed,
                    verifiers={r.name: r.score for r in ev.results},
                    failed_gating=[r.name for r in ev.results if r.gating and not r.passed],
                    problems={r.name: clip(r.summary, 120) for r in ev.results if not r.passed},
                    flags=ev.flags,
                    severity=LEVEL_SEVERITY[ev.level],
                )
            )
            scored = {"confidence": ev.score, "level": ev.level}
            said = f"{ev.level.value} {ev.score:.2f}"
            if verdict is Verdict.PASS:
                tx.step_status(step.id, S.PASSED, reason=said, known=step, carry_sha=None, **scored)
                record_checkpoint(tx, step, merged)
                return S.PASSED
            if verdict is Verdict.ASK:
                tx.step_status(step.id, S.AWAITING_APPROVAL, reason=said, known=step, **scored)
                approvals.request_approval(
                    tx,
                    ApprovalRequest(
                        directive_id=d.id,
                        step_id=step.id,
                        kind=ApprovalKind.STEP_REVIEW,
                        summary=f"step {step.name} scored {ev.score:.2f} ({ev.level.value}): {ev.summary}",
                        evaluation_id=ev.id,
                        options=list(REVIEW_OPTIONS),
                    ),
                )
                return S.AWAITING_APPROVAL
            if step.rework_count < limits.max_rework_cycles:
                tx.step_status(
                    step.id,
                    S.REWORK,
                    known=step,
                    reason=f"{said}, rework {step.rework_count + 1}/{limits.max_rework_cycles}"
                    + (" (merge conflict)" if merged and merged.conflicts else ""),
                    rework_count=step.rework_count + 1,
                    rework_instructions=instructions,
                    carry_sha=carry,
                    **scored,
                )
                return S.REWORK
            cycles = f"{step.rework_count} rework cycle" + ("" if step.rework_count == 1 else "s")
            why = f"still red after {cycles}"
            if merged and merged.conflicts:
                why = f"merge conflicts after {cycles}"
            tx.step_status(
                step.id,
                S.BLOCKED,
                reason=why,
                known=step,
                rework_instructions=instructions,
                **scored,
            )
            if autonomy is Autonomy.FULL_AUTO and now_d.replans_left:
                replan_after = True
            else:
                approvals.escalate(tx, d.id, step, why, ev.id)
            return S.BLOCKED

        decided = self._submit(d.id, decide, then=self._start_claims)
        try:
            await asyncio.shield(evaluating)
        except BaseException:  # the verdict, queued behind it, fails or lands: wait for it
            with contextlib.suppress(BaseException):
                await asyncio.shield(decided)
            raise
        view, _ = await asyncio.shield(decided)
        if not view.promoted:
            rt.rescan = True  # replanning, paused, tripped: the driver looks later
        if attempt is not None and verdict is not Verdict.ASK:
            # a blocked attempt's worktree stays for inspection
            await rt.workspace.remove_attempt(attempt, keep=status is S.BLOCKED)
        if replan_after:
            self._spawn(
                self.regenerate_chain(
                    d.id, f"step {step.name} blocked: still red after rework", step.id
                )
            )
        return bool(view.claims)

    async def _merge(
        self, directive_id: str, attempt: Attempt
    ) -> tuple[MergeResult | None, str | None]:
        """Merge a passed attempt into the integration branch. Returns the
        result and, when it could not merge, rework instructions saying why."""
        ws = self._runtime(directive_id).workspace
        try:
            result = await ws.merge(attempt)
        except (GitError, StaleAttemptError) as exc:
            return None, f"The attempt passed its checks but could not be merged: {exc}"
        if result.conflicts:
            files = ", ".join(result.conflicts)
            return result, (
                f"Your change passed its checks but conflicts with the integration branch in: "
                f"{files}. Other steps changed these files after your attempt started. The next "
                "attempt starts from the current integration branch with your previous commit "
                "merged in where it applies; redo the change so that it merges cleanly."
            )
        return result, None

    async def _step_failed(
        self, d: Directive, step: Step, run: StepRun, result: ExecutionResult
    ) -> None:
        gone = _missing_repo(d)
        if gone:  # the folder went while the step ran: no fault of the step's
            await self._pause_without_repo(d, step, run, gone)
            return
        error = result.error or "executor reported failure"

        # Its half-done work is the retry's start, as a red attempt's is.
        carry = run.commit_sha if d.spec.workspace.carry_rework else None

        def fail(tx: Tx) -> None:
            tx.update(
                "step_runs",
                run.id,
                status="failed",
                error=error,
                summary=result.summary,
                base_sha=run.base_sha,
                commit_sha=run.commit_sha,
                finished_at=now(),
            )
            tx.step_status(step.id, S.FAILED, reason=clip(error, 200), carry_sha=carry)
            failed_before = tx.one(
                "SELECT 1 FROM step_runs WHERE step_id = ? AND status = 'failed' AND id != ?",
                (step.id, run.id),
            )
            if failed_before is None:  # the breaker counts steps, not retries of one
                cur = tx.directive(d.id)
                tx.update("directives", d.id, failed_steps=cur.failed_steps + 1)
            tx.emit(
                Notice(
                    directive_id=d.id,
                    step_id=step.id,
                    message=f"step {step.name} failed: {error}",
                    severity=Severity.ERROR,
                )
            )
            approvals.escalate(tx, d.id, step, f"executor failed: {clip(error, 300)}", None)

        await self._write(d.id, fail)

    async def _interrupt(
        self, directive_id: str, step_id: str, run_id: str, held: list[Attempt]
    ) -> None:
        """A cancelled attempt: the step goes back to ready to run again, and
        its worktree goes (the next attempt starts fresh). Not when the lease
        was lost: the engine that took over owns these rows now."""
        if self._lease is not None and self._lease.lost.is_set():
            return

        def put_back(tx: Tx) -> None:
            status = tx.directive(directive_id).status
            _put_back(tx, step_id, run_id, INTERRUPTED.get(status, "interrupted"))

        with contextlib.suppress(Exception):
            await self._write(directive_id, put_back)
        ws = self._runtime(directive_id).workspace
        for attempt in held:
            with contextlib.suppress(Exception):
                await ws.remove_attempt(attempt)

    async def _pause_without_repo(self, d: Directive, step: Step, run: StepRun, gone: str) -> None:
        """The repository folder went (deleted or moved), before or during
        the attempt: no attempt can run there, and none should fail or be
        judged over it. The step waits to run again and the directive
        pauses, saying so; the driver then stops the others."""

        def pause(tx: Tx) -> None:
            _put_back(tx, step.id, run.id, gone)
            if tx.directive(d.id).status is D.ACTIVE:
                tx.directive_status(d.id, D.PAUSED, reason=f"{gone}: put it back, then resume")

        await self._write(d.id, pause)

    # ------------------------------------------------------------------
    # Cost and breakers
    # ------------------------------------------------------------------

    async def _add_cost(
        self, directive_id: str, step_id: str, run_id: str, usage: TokenUsage, cost: float
    ) -> None:
        def charge(tx: Tx) -> float:
            row = tx.one("SELECT usage, cost_usd FROM step_runs WHERE id = ?", (run_id,))
            total_usage = TokenUsage.model_validate_json(row[0]) + usage
            tx.update("step_runs", run_id, usage=total_usage, cost_usd=row[1] + cost)
            total = tx.add_cost(directive_id, cost)
            tx.emit(
                CostUpdated(
                    directive_id=directive_id, step_id=step_id, delta_usd=cost, total_usd=total
                )
            )
            return total

        await self._write(directive_id, charge)
        d = await self.store.get_directive(directive_id)
        tripped = breaker_reason(d)
        if tripped and d.status is D.ACTIVE:
            self._spawn(self._trip(directive_id, *tripped))

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

    async def _release_unstarted(self, rt: _Runtime) -> None:
        """Steps claimed by the driver whose task was cancelled before it
        began: their attempt never ran its own clean-up, so put them back
        to ready here."""
        claims, rt.unstarted = list(rt.unstarted.values()), {}
        for claim in claims:
            await self._interrupt(claim.directive.id, claim.step.id, claim.run.id, [])

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_report_failure)

    # ------------------------------------------------------------------
    # Writing and publishing
    # ------------------------------------------------------------------

    async def _write(
        self,
        directive_id: str,
        fn: Callable[[Tx], Any],
        then: Callable[[Any], None] | None = None,
    ) -> Any:
        result, _ = await self._write_with(directive_id, fn, then)
        return result

    async def _write_with(
        self,
        directive_id: str,
        fn: Callable[[Tx], Any],
        then: Callable[[Any], None] | None = None,
    ) -> tuple[Any, list[EngineEvent]]:
        return await self._submit(directive_id, fn, then)

    def _submit(
        self,
        directive_id: str,
        fn: Callable[[Tx], Any],
        then: Callable[[Any], None] | None = None,
    ) -> asyncio.Future[tuple[Any, list[EngineEvent]]]:
        """One transaction, queued now (writes queued before the caller
        yields share a commit): buffered output lines of this directive
        first (so sequence numbers follow what happened), then `fn`; publish
        after commit, then `then(result)`. Both run from the commit itself,
        so a waiter that is cancelled never leaves a write half-known
        (committed on the database thread but never published)."""
        rt = self._runtime(directive_id)
        pending, rt.output = rt.output, []
        if rt.flush is not None:
            rt.flush.cancel()
            rt.flush = None

        def work(tx: Tx) -> Any:
            for ev in pending:
                tx.emit(ev)
            return fn(tx)

        written = self.store.submit(work)
        landed: asyncio.Future[tuple[Any, list[EngineEvent]]] = (
            asyncio.get_running_loop().create_future()
        )

        def on_commit(f: asyncio.Future[Any]) -> None:
            self._inflight.discard(f)
            if f.cancelled():  # the loop is going away
                landed.cancel()
                return
            outcome: BaseException | tuple[Any, list[EngineEvent]]
            if f.exception() is not None:
                rt.output[:0] = pending  # not written: keep them for the next write
                outcome = f.exception()
            else:
                result, events = outcome = f.result()
                self.bus.publish_many(events)
                if events:
                    seen = self._seen.get(directive_id, 0)
                    self._seen[directive_id] = max(seen, events[-1].seq)
                try:
                    if then is not None:
                        then(result)
                except Exception as exc:
                    outcome = exc
            if landed.done():  # its waiter was cancelled
                if isinstance(outcome, Exception):
                    log.error("a write failed after its caller stopped waiting", exc_info=outcome)
            elif isinstance(outcome, BaseException):
                landed.set_exception(outcome)
            else:
                landed.set_result(outcome)

        self._inflight.add(written)
        written.add_done_callback(on_commit)
        return landed

    def _emitter(self, directive_id: str, step: Step) -> Callable[..., None]:
        rt = self._runtime(directive_id)
        loop = asyncio.get_running_loop()

        def emit(line: str, severity: Severity = Severity.DEBUG, source: str = "executor") -> None:
            rt.output.append(
                StepOutput(
                    directive_id=directive_id,
                    step_id=step.id,
                    step_name=step.name,
                    source=source,
                    line=line[:2000],
                    severity=severity,
                )
            )
            if rt.flush is None:
                rt.flush = loop.call_later(self.services.output_flush_s, self._flush, directive_id)

        return emit

    def _flush(self, directive_id: str) -> None:
        rt = self._runtime(directive_id)
        rt.flush = None
        if rt.output:
            self._spawn(self._write(directive_id, lambda tx: None))

    def _llm(self, d: Directive) -> Any | None:
        rt = self._runtime(d.id)
        if not rt.llm_ready:
            rt.llm = self.services.llm_provider(d.spec)
            rt.llm_ready = True
            model = getattr(rt.llm, "model", None)
            # Said once in the log, where the app's users look (stderr is
            # under the screen): no price known (costed at the highest
            # rate), or the model retires soon.
            for message in pricing.model_warnings(model) if isinstance(model, str) else []:
                self._spawn(self.record_note(d.id, message, Severity.WARNING))
        return rt.llm


def _data_version(conn: Any) -> int:
    return conn.execute("PRAGMA data_version").fetchone()[0]


def _report_failure(task: asyncio.Task[Any]) -> None:
    """A background task (full_auto's own replan, a breaker trip) that ended
    in an error: a refusal is logged as such, anything else as the bug it is."""
    if task.cancelled() or task.exception() is None:
        return
    exc = task.exception()
    if isinstance(exc, EngineError):
        log.warning("background command refused: %s", exc)
    else:
        log.error("background task failed", exc_info=exc)


class NeedsForce(EngineError):
    """A delete that would lose work or leave refs behind is refused unless
    forced; each front end names its own way to force it."""


class ResultOnlyHere(NeedsForce):
    """The directive's result is on its integration branch and no other.
    `fast_forward`: whether `merge` can take it to the user's branch (else
    the message says how to merge it by hand)."""

    def __init__(self, message: str, *, fast_forward: bool) -> None:
        super().__init__(message)
        self.fast_forward = fast_forward


# Answers that run and merge nothing: taken while the repository folder is
# gone (a denied plan stops the directive, a denied step is escalated).
TAKEN_WITHOUT_REPO = frozenset({ApprovalDecision.DENY, ApprovalDecision.STOP})


class RepoGone(EngineError):
    """The directive's repository folder no longer exists."""


async def _commit_failed(
    ws: Workspace, attempt: Attempt, step: Step, run: StepRun, error: str
) -> str | None:
    """A failed attempt's half-done work, committed on its own branch: its
    diff can be shown, and with `carry_rework` a retry starts from it. None
    when it changed nothing, or git could not commit it (the failure may be
    that commit)."""
    if attempt.committed:
        return attempt.commit_sha
    try:
        message = f"{step.name}: attempt {run.attempt} (failed)\n\n{error}"
        return await ws.commit_attempt(attempt, message)
    except GitError:
        return None


def _missing_repo(d: Directive) -> str | None:
    """Why nothing can be done in the directive's repository: its folder is
    gone (deleted, or moved since the directive was written); else None."""
    repo = Path(d.spec.repo)
    return None if repo.is_dir() else f"the repository folder {repo} is gone"


def _require_repo(d: Directive) -> None:
    gone = _missing_repo(d)
    if gone:
        raise RepoGone(gone)


def _put_back(tx: Tx, step_id: str, run_id: str, why: str) -> None:
    """An attempt that will not finish: its run is closed as cancelled and
    the step is ready to run again."""
    tx.update_if(
        "step_runs",
        run_id,
        {"status": "running"},
        {"status": "cancelled", "error": why, "finished_at": now()},
    )
    if tx.step(step_id).status in STEP_ACTIVE:
        tx.step_status(step_id, S.READY, reason=why)


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
    names = " -> ".join(s.name + (" (kept)" if s.carried_from else "") for s in steps)
    summary = f"approve the plan: {names}"
    if reason:
        summary = f"approve the new plan ({reason}): {names}"
    approvals.request_approval(
        tx,
        ApprovalRequest(
            directive_id=d.id, kind=ApprovalKind.PLAN, summary=summary, options=list(REVIEW_OPTIONS)
        ),
    )


def _point(point: str | int) -> str:
    """A reset target as a person names it: `#2`, or a commit's short form."""
    return f"checkpoint #{point}" if isinstance(point, int) else point[:10]


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
