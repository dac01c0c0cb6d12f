"""One step attempt, from its claim to its verdict.

Execute in the attempt's worktree, commit what it made, evaluate it with
the verifiers and the judge, then act on the confidence level: pass
(merging the attempt), ask a person, rework, or block and escalate. The
verdict's transaction also starts the next steps, so a chain of quick
steps costs one transaction a step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import approvals
from engine.breakers import breaker_reason, budget_for
from engine.chains import (
    LEVEL_SEVERITY,
    MERGED_UNRECORDED,
    Claim,
    DriverView,
    drive,
    passed_unrecorded,
    record_checkpoint,
    unjudged,
)
from engine.core import EngineCore
from engine.evaluator import FOR_A_PERSON
from engine.events import CostUpdated, EvaluationCompleted, Notice
from engine.executors.base import ExecutionResult, StepContext
from engine.models import (
    REVIEW_OPTIONS,
    ApprovalKind,
    ApprovalRequest,
    Autonomy,
    ConfidenceLevel,
    Directive,
    DirectiveStatus,
    Evaluation,
    ExecutorKind,
    Severity,
    Step,
    StepRun,
    StepStatus,
    TokenUsage,
    VerifierResult,
    now,
)
from engine.refusals import MergeFailed, NotIsolated, RepoGone
from engine.services import READING_STEP_TYPES
from engine.store import Tx
from engine.text import clip, plural
from engine.transitions import STEP_ACTIVE
from engine.verdicts import VERDICTS, Verdict
from engine.verifiers.base import PauseDirective, VerifyContext
from engine.verifiers.detect import checks_found
from engine.workspace_ops import missing_repo
from engine.worktrees import Attempt, GitError, MergeResult, StaleAttemptError, Workspace

log = logging.getLogger(__name__)

D, S = DirectiveStatus, StepStatus


class Attempts(EngineCore):
    """Running step attempts and judging their results. Works in the
    workspace through `_steps_workspace` and `_merge` (engine.workspace_ops),
    hands the steps its verdict starts to the driver's `_start_claims`,
    trips breakers with `_trip` (engine.engine), and a blocked step under
    full_auto asks for `regenerate_chain` (engine.planning)."""

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
            with contextlib.suppress(Exception):
                await self._after_crash(claim, exc)
        finally:
            if rt.steps.get(step_id) is asyncio.current_task():
                del rt.steps[step_id]
            if not handed_on:
                rt.wake.set()

    async def _after_crash(self, claim: Claim, exc: Exception) -> None:
        """An attempt the engine failed at (the verdict's write refused by a
        database kept busy past the lock wait, say) left its step running or
        evaluating with nothing running it: the directive waited for good.
        Merged already, it passed; else it is put back to run again."""
        d, step, run = claim.directive, claim.step, claim.run
        merged = await self._merged_unrecorded(d, [await self.store.get_step(step.id)])
        message = f"engine error in step: {exc!r}"

        def settle(tx: Tx) -> None:
            tx.emit(
                Notice(directive_id=d.id, step_id=step.id, message=message, severity=Severity.ERROR)
            )
            for step_id, sha in merged:
                passed_unrecorded(tx, step_id, sha, MERGED_UNRECORDED)
            if not merged:
                _put_back(tx, step.id, run.id, f"engine error: {exc}")

        await self._write(d.id, settle)
        self._runtime(d.id).rescan = True  # a pass outside a verdict promotes nothing itself

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
        """Open the attempt's worktree, execute, commit, then evaluate and
        judge; a phase that fails ends the attempt as a failed step."""
        opened = await self._open_attempt(d, step, run, held)
        if opened is None:
            return False
        ws, attempt, workdir = opened
        result = await self._execute(d, step, run, workdir)
        if ws is not None and attempt is not None and result.success:
            result = await self._commit_attempt(d, step, run, ws, attempt, result)
        if not result.success:
            await self._attempt_failed(d, step, run, ws, attempt, result)
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
        except PauseDirective as exc:  # nothing could judge it (a refused key)
            await asyncio.shield(evaluating)
            await self._pause_attempt(d, step, run, str(exc), str(exc))
            if ws is not None and attempt is not None:
                await ws.remove_attempt(attempt)  # the step runs again from the start
            return False
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(evaluating)
            raise
        if attempt is not None and attempt.carry_conflicts and not done.modified_files:
            evaluation = _lost_in_conflict(evaluation, attempt.carry_conflicts)
        return await self._judge(d, judged, done, evaluation, attempt, evaluating)

    async def _open_attempt(
        self, d: Directive, step: Step, run: StepRun, held: list[Attempt]
    ) -> tuple[Workspace | None, Attempt | None, Path] | None:
        """Where the attempt runs: its own worktree in a git repository (kept
        in `held` for the interrupt), the repository folder otherwise. None
        when it cannot start: the step has failed or the directive paused."""
        try:
            ws = await self._steps_workspace(d)
        except RepoGone as exc:
            await self._pause_without_repo(d, step, run, str(exc))
            return None
        except NotIsolated as exc:  # never the user's checkout instead
            await self._pause_attempt(d, step, run, str(exc), str(exc))
            return None
        if ws is None:
            return None, None, Path(d.spec.repo)
        try:
            attempt = await ws.start_attempt(step.name, run.attempt, from_commit=step.carry_sha)
        except (GitError, StaleAttemptError) as exc:
            failure = ExecutionResult(success=False, error=f"could not prepare a worktree: {exc}")
            await self._step_failed(d, step, run, failure)
            return None
        held.append(attempt)
        run.base_sha = attempt.base_sha
        if attempt.carry_conflicts:
            self._emitter(d.id, step)(
                "previous attempt could not be carried over (conflicts in "
                + ", ".join(attempt.carry_conflicts)
                + "): starting from the integration branch",
                Severity.WARNING,
            )
        return ws, attempt, attempt.workdir

    async def _commit_attempt(
        self,
        d: Directive,
        step: Step,
        run: StepRun,
        ws: Workspace,
        attempt: Attempt,
        result: ExecutionResult,
    ) -> ExecutionResult:
        """Commit what a successful execution made on the attempt's branch;
        the files it changed are git's word on them. Warns of files git
        ignores (later steps will not see them); a failed commit fails the
        attempt."""
        try:
            run.commit_sha = await ws.commit_attempt(
                attempt, f"{step.name}: attempt {run.attempt}\n\n{result.summary}"
            )
            if run.commit_sha:
                result.modified_files = await ws.changed_files(attempt.base_sha, run.commit_sha)
            else:
                result.modified_files = []
            left_out = await ws.left_out(attempt)
        except GitError as exc:
            return ExecutionResult(success=False, error=f"could not commit the attempt: {exc}")
        if left_out:
            shown = ", ".join(left_out[:5]) + (" ..." if len(left_out) > 5 else "")
            self._emitter(d.id, step)(
                f"not committed, git ignores it: {shown}; later steps will not see it"
                " (have the step that needs it make it, list it in [workspace]"
                " artifacts, or stop ignoring it)",
                Severity.WARNING,
                "workspace",
            )
        return result

    async def _attempt_failed(
        self,
        d: Directive,
        step: Step,
        run: StepRun,
        ws: Workspace | None,
        attempt: Attempt | None,
        result: ExecutionResult,
    ) -> None:
        """The step fails; what the attempt did is not lost: its files stay
        in the worktree, committed on its branch, and the error says where."""
        if ws is None or attempt is None:
            await self._step_failed(d, step, run, result)
            return
        error = result.error or "executor reported failure"
        run.commit_sha = await _commit_failed(ws, attempt, step, run, error)
        kept = f"its files are kept in {attempt.workdir} while the step waits"
        if run.commit_sha:
            kept += f", committed as {run.commit_sha[:10]}" + (
                " (a retry starts from it)" if d.spec.workspace.carry_rework else ""
            )
        result.error = f"{error} ({kept})"
        await self._step_failed(d, step, run, result)
        await ws.remove_attempt(attempt, keep=True)  # kept for inspection

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
            # The model as it is now (`directive-tui model` may have changed
            # it while the step ran): one read, before a call of seconds.
            llm = (
                self._llm(await self.store.get_directive(d.id))
                if d.spec.verifiers.llm_judge
                else None
            )
        except Exception as exc:  # a bad DIRECTIVE_LLM_* setting: the judge says so, no verdict
            from engine.verifiers.llm_judge import UnbuiltClient

            llm = UnbuiltClient(f"the Claude client could not be built: {exc}")
        # Verifiers see the attempt's tree as the repository (detection
        # included: a step may have just added the tests).
        seen_as = d.model_copy(update={"spec": d.spec.model_copy(update={"repo": workdir})})
        try:
            verifiers = (
                # Detection walks the tree and may start an interpreter (which
                # PATH python imports pytest?): off the event loop that draws
                # the app (a hanging one froze it for 40 s).
                await asyncio.to_thread(self.services.verifiers, seen_as, step, llm)
                if d.spec.verifiers.auto_detect
                else self.services.verifiers(seen_as, step, llm)
            )
        except Exception as exc:  # e.g. a step naming a tool this repository lacks
            # The directive's checks, not the attempt, are wrong: no rework
            # can fix that, so a person decides, told why in the log too.
            why = f"verifiers could not be set up: {exc}"
            setup = VerifierResult(
                name="setup", kind="setup", passed=False, score=0.0, weight=0.0,
                summary=clip(why, 300),
            )  # fmt: skip
            return _for_a_person(run, ConfidenceLevel.RED, why, [setup])
        if not verifiers and step.spec.type in READING_STEP_TYPES and run.modified_files:
            return _unjudged_reading(step, run)
        await self._say_checks_found(d, verifiers)
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

    async def _say_checks_found(self, d: Directive, verifiers: list[Any]) -> None:
        """Which checks detection found and what shows the repository uses
        each, said when a step first uses one (a step may name a few): a
        check that runs, or cannot, is never a surprise."""
        rt = self._runtime(d.id)
        found = [
            v for v in verifiers if getattr(v, "found_by", "") and v.name not in rt.checks_said
        ]
        if not found:
            return
        rt.checks_said.update(v.name for v in found)
        notice = Notice(directive_id=d.id, message=checks_found(found), severity=Severity.INFO)
        await self._write(d.id, lambda tx: tx.emit(notice))

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
        gone = missing_repo(d)
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
            try:
                merged, problem = await self._merge(d.id, attempt)
            except MergeFailed as exc:  # git's own trouble: a person tries again
                verdict, ev, problem = Verdict.ASK, _unmerged(ev, str(exc)), None
            if problem:  # a conflict builds on the attempt; a stale one starts afresh
                carry = run.commit_sha if merged is not None else None
                verdict, instructions = Verdict.REWORK, problem
        ruling = Ruling(verdict, instructions, carry, merged)
        replan_after = False

        rt = self._runtime(d.id)
        busy = frozenset(rt.steps)  # this step among them: a rework goes through the driver

        status = S.EVALUATING

        def decide(tx: Tx) -> DriverView:
            nonlocal status, replan_after
            now_d = tx.directive(d.id)
            tx.add_evaluation(ev)
            tx.emit(_evaluation_completed(d.id, step, ev))
            status = _settle(tx, now_d, step, ev, ruling)
            replan_after = (
                status is S.BLOCKED and autonomy is Autonomy.FULL_AUTO and bool(now_d.replans_left)
            )
            if status is S.BLOCKED and not replan_after:
                approvals.escalate(tx, d.id, step, _blocked_why(step, merged), ev.id)
            return drive(
                tx,
                d.id,
                busy=busy,
                done={step.id} if status is S.PASSED else set(),
                launch=not rt.replanning,
                directive=now_d,  # the verdict changes steps, not the directive
            )

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

    async def _step_failed(
        self, d: Directive, step: Step, run: StepRun, result: ExecutionResult
    ) -> None:
        gone = missing_repo(d)
        if gone:  # the folder went while the step ran: no fault of the step's
            await self._pause_without_repo(d, step, run, gone)
            return
        if result.pause_reason:  # no fault of the step's either (a refused key)
            await self._pause_attempt(d, step, run, result.pause_reason, result.pause_reason)
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
            first_line = error.splitlines()[0] if error.strip() else error
            tx.step_status(step.id, S.FAILED, reason=clip(first_line, 200), carry_sha=carry)
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

        closing = self._closing

        def put_back(tx: Tx) -> None:
            status = tx.directive(directive_id).status
            why = INTERRUPTED.get(status) or (ENGINE_CLOSED if closing else "interrupted")
            _put_back(tx, step_id, run_id, why)

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
        await self._pause_attempt(d, step, run, gone, f"{gone}: put it back, then resume")

    async def _pause_attempt(
        self, d: Directive, step: Step, run: StepRun, why: str, pause_reason: str
    ) -> None:
        """An attempt ended by something no step can mend: its run is closed
        with `why`, the step is ready again, and the directive pauses."""

        def pause(tx: Tx) -> None:
            _put_back(tx, step.id, run.id, why)
            if tx.directive(d.id).status is D.ACTIVE:
                tx.directive_status(d.id, D.PAUSED, reason=pause_reason)

        await self._write(d.id, pause)

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


# Why a cancelled attempt's step is ready again, by the directive's status
# (an active one's: the engine closed, or its chain is replaced or reset).
INTERRUPTED = {
    D.STOPPED: "interrupted: the directive stopped",
    D.PAUSED: "interrupted: runs again on resume",
}
ENGINE_CLOSED = "interrupted: directive-tui closed; runs again when it next runs this directive"


@dataclass(frozen=True)
class Ruling:
    """What the verdict's transaction acts on, decided before it: the
    verdict and what a rework is told and starts from."""

    verdict: Verdict
    instructions: str | None
    carry: str | None
    merged: MergeResult | None


def _evaluation_completed(directive_id: str, step: Step, ev: Evaluation) -> EvaluationCompleted:
    return EvaluationCompleted(
        directive_id=directive_id,
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


def _settle(tx: Tx, d: Directive, step: Step, ev: Evaluation, ruling: Ruling) -> StepStatus:
    """The step's new status by the ruling, with the limits as the verdict's
    transaction reads them (a person may have raised them while it ran): a
    rework past `max_rework_cycles` is a block."""
    scored = {"confidence": ev.score, "level": ev.level}
    said = f"{ev.level.value} {ev.score:.2f}"
    merged = ruling.merged
    if ruling.verdict is Verdict.PASS:
        tx.step_status(step.id, S.PASSED, reason=said, known=step, carry_sha=None, **scored)
        record_checkpoint(tx, step, merged)
        return S.PASSED
    if ruling.verdict is Verdict.ASK:
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
    most = d.spec.limits.max_rework_cycles
    if step.rework_count < most:
        tx.step_status(
            step.id,
            S.REWORK,
            known=step,
            reason=f"{said}, rework {step.rework_count + 1}/{most}"
            + (" (merge conflict)" if merged and merged.conflicts else ""),
            rework_count=step.rework_count + 1,
            rework_instructions=ruling.instructions,
            carry_sha=ruling.carry,
            **scored,
        )
        return S.REWORK
    tx.step_status(
        step.id,
        S.BLOCKED,
        reason=_blocked_why(step, merged),
        known=step,
        rework_instructions=ruling.instructions,
        carry_sha=ruling.carry,  # a retry builds on this attempt, as a rework would
        **scored,
    )
    return S.BLOCKED


def _blocked_why(step: Step, merged: MergeResult | None) -> str:
    cycles = plural(step.rework_count, "rework cycle")
    if merged and merged.conflicts:
        return f"merge conflicts after {cycles}"
    return f"still red after {cycles}"


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


def _unmerged(ev: Evaluation, why: str) -> Evaluation:
    """A passed attempt git failed to merge: for a person to approve (which
    tries the merge again) once git is free."""
    return _asks_a_person(ev, f"{why}; approve to try the merge again", "merge_failed")


def _asks_a_person(ev: Evaluation, why: str, flag: str) -> Evaluation:
    """`ev`, no longer a pass on its own: yellow (a red stays red), `why`
    first in its summary, flagged for a person whatever the autonomy."""
    level = ConfidenceLevel.YELLOW if ev.level is ConfidenceLevel.GREEN else ev.level
    return ev.model_copy(
        update={
            "level": level,
            "passed": False,
            "summary": f"{why}; {ev.summary}",
            "flags": [*ev.flags, flag, FOR_A_PERSON],
        }
    )


def _unjudged_reading(step: Step, run: StepRun) -> Evaluation:
    """A reading step (research, design, review) is judged by the LLM judge
    alone, the repository's checks being no fault of its; with no judge (no
    API key, or `llm_judge = false`) nothing checked it, and one that changed
    files passed green even when it broke the tests. A person looks."""
    why = (
        f"nothing checked this {step.spec.type} step's changes"
        f" ({', '.join(run.modified_files[:5])}): reading steps are judged by the LLM judge"
        " alone, which is off here (no API key, or llm_judge = false), so a person decides;"
        " name checks for it with `verifiers = [...]` in the directive file"
    )
    return _for_a_person(run, ConfidenceLevel.YELLOW, why, flag="no_verifiers")


def _for_a_person(
    run: StepRun,
    level: ConfidenceLevel,
    why: str,
    results: list[VerifierResult] | None = None,
    flag: str | None = None,
) -> Evaluation:
    """An evaluation no rework can answer (the checks could not be set up,
    nothing could check the step): a person decides, told `why`."""
    return Evaluation(
        directive_id=run.directive_id,
        step_id=run.step_id,
        run_id=run.id,
        score=0.0,
        level=level,
        passed=False,
        results=results or [],
        summary=why,
        flags=[*([flag] if flag else []), FOR_A_PERSON],
    )


def _lost_in_conflict(ev: Evaluation, conflicts: list[str]) -> Evaluation:
    """An attempt whose earlier work conflicted, could not be carried over,
    and that changed nothing itself: its checks pass on a tree without the
    step's change (a `sed` that no longer matches), so it passed green and
    the change was lost without a word. A person decides."""
    why = (
        f"its earlier change conflicted ({', '.join(conflicts[:5])}) and could not be carried"
        " over, and this attempt changed nothing: the step's change may be lost, so a person"
        " decides"
    )
    return _asks_a_person(ev, why, "changed_nothing_after_conflict")


def _put_back(tx: Tx, step_id: str, run_id: str, why: str) -> None:
    """An attempt that will not finish: its run is closed as cancelled and
    the step is ready to run again. Cut off while it was evaluated, its
    run stays succeeded (the executor finished) and says the verdict never
    came, or the panel would show a success with no evaluation and no why."""
    cancelled = tx.update_if(
        "step_runs",
        run_id,
        {"status": "running"},
        {"status": "cancelled", "error": why, "finished_at": now()},
    )
    step = tx.step(step_id)
    if not cancelled and step.status is S.EVALUATING:
        tx.update_if("step_runs", run_id, {"status": "succeeded"}, {"error": unjudged(why)})
    if step.status in STEP_ACTIVE:
        tx.step_status(step_id, S.READY, reason=why)
