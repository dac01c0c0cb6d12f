"""Chains inside the engine, as functions on one write transaction (they run
on the database thread): building a chain from a plan and charging what
planning cost; the driver's one-hop view of a directive (`drive`: promote,
claim, complete), which a step's verdict runs too; crash recovery; the
event of a checkpoint; and the steps a reset runs again.

Kept apart from the engine's classes so the driver and the verdict share
one body of rules, and each stays a single transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine import approvals
from engine.breakers import breaker_reason
from engine.events import CheckpointRecorded, CostUpdated
from engine.models import (
    Chain,
    ConfidenceLevel,
    Directive,
    DirectiveStatus,
    Severity,
    Step,
    StepRun,
    now,
)
from engine.models import StepStatus as S
from engine.planner import PlannedChain
from engine.rows import READY_SQL, list_steps
from engine.store import Tx
from engine.transitions import STEP_DONE

# Statuses a superseded chain's steps are moved out of.
LIVE_STEP = frozenset(
    {
        S.PENDING,
        S.READY,
        S.RUNNING,
        S.EVALUATING,
        S.AWAITING_APPROVAL,
        S.REWORK,
        S.BLOCKED,
        S.FAILED,
    }
)

# Every status that keeps a chain from being done, spelled out so SQLite can
# probe the index for each instead of scanning for "NOT IN".
NOT_DONE = tuple(s.value for s in S if s not in STEP_DONE)
NOT_DONE_MARKS = ", ".join("?" * len(NOT_DONE))

LEVEL_SEVERITY = {
    ConfidenceLevel.GREEN: Severity.SUCCESS,
    ConfidenceLevel.YELLOW: Severity.WARNING,
    ConfidenceLevel.RED: Severity.ERROR,
}


@dataclass
class Claim:
    """A step the driver has moved to running, with its run row, in the same
    transaction as it read the directive: the attempt starts from these
    instead of reading them again."""

    directive: Directive
    step: Step  # running
    run: StepRun


@dataclass
class DriverView:
    """Everything the driver needs for one decision, in one transaction."""

    directive: Directive
    chain: Chain | None
    claims: list[Claim]
    completed: bool  # every step was done: the directive is completed now
    promoted: bool = False  # pending steps were looked at


def drive(
    tx: Tx,
    directive_id: str,
    *,
    busy: frozenset[str],
    done: set[str] | None,
    launch: bool,
    complete: bool = False,
    directive: Directive | None = None,
) -> DriverView:
    """One wake-up of the driver: read the directive and its chain, promote
    the steps whose dependencies are met and claim runnable steps (not in
    `busy`, whose tasks are alive here) for the slots the parallel limit
    leaves beside the steps running or evaluating, all in one transaction,
    so no person's answer can land between seeing a step ready and
    starting it.

    `done`: steps that just passed; only their dependents can have become
    ready (None: look at every pending step, after a start, an answer, a
    skip or anything else from outside). `complete`: when every step is
    done, complete the directive in this same transaction (no replan or
    reset can slip in between). `directive`: already read in this
    transaction."""
    d = directive or tx.directive(directive_id)
    chain = tx.current_chain(directive_id)
    if chain is None:
        return DriverView(d, None, [], False)
    plan_pending = approvals.plan_pending(tx, directive_id)
    claims: list[Claim] = []
    promoted = False
    go = d.status is DirectiveStatus.ACTIVE and not plan_pending and not breaker_reason(d)
    if launch and go:
        promoted = True
        for step_id in _newly_ready(tx, chain.id, done):
            tx.move_step(step_id, S.READY, reason="dependencies met")
        running = tx.one(
            "SELECT COUNT(*) FROM chain_steps WHERE chain_id = ?"
            " AND status IN ('running', 'evaluating')",
            (chain.id,),
        )[0]
        slots = d.spec.limits.max_parallel_steps - running
        if slots > 0:
            runnable = list_steps(
                tx.conn, "s.chain_id = ? AND s.status IN ('ready', 'rework')", (chain.id,)
            )
            waiting = [s for s in runnable if s.id not in busy][:slots]
            if waiting:  # stopped while it waited for a person, or no engine ran it
                d = tx.clock(d, running=True, reason=f"step {waiting[0].name} runs")
            claims = [_claim(tx, d, s) for s in waiting]
    # Not while a replan is being made: its new chain may bring steps to run.
    completed = complete and launch and go and not claims and _all_done(tx, chain.id)
    if completed:
        tx.directive_status(directive_id, DirectiveStatus.COMPLETED)
    return DriverView(d, chain, claims, completed, promoted)


def _all_done(tx: Tx, chain_id: str) -> bool:
    """Existence, not counts: each is a few probes of the (chain, status)
    index, where counting walked every passed step on every wake-up."""
    any_left = tx.one(
        f"SELECT 1 FROM chain_steps WHERE chain_id = ? AND status IN ({NOT_DONE_MARKS}) LIMIT 1",
        (chain_id, *NOT_DONE),
    )
    if any_left is not None:
        return False
    return tx.one("SELECT 1 FROM chain_steps WHERE chain_id = ? LIMIT 1", (chain_id,)) is not None


def _newly_ready(tx: Tx, chain_id: str, done: set[str] | None) -> list[str]:
    """Ids of pending steps whose dependencies are all met, in chain order.
    With `done` known, only the dependents of those steps are looked at
    (through the step_deps index on the dependency), not every pending step.
    The few rows are made unique and ordered here, without SQLite's
    temporary b-trees."""
    if done is None:
        rows = tx.conn.execute(
            "SELECT s.layer, s.row, s.id FROM chain_steps s WHERE s.chain_id = ?" + READY_SQL,
            (chain_id,),
        )
    elif done:
        # CROSS JOIN keeps this order: from the dependency index to the step.
        marks = ", ".join("?" * len(done))
        rows = tx.conn.execute(
            "SELECT s.layer, s.row, s.id FROM step_deps x CROSS JOIN chain_steps s"
            f" ON s.id = x.step_id WHERE x.depends_on IN ({marks}) AND s.chain_id = ?" + READY_SQL,
            (*done, chain_id),
        )
    else:
        return []
    return [r[2] for r in sorted(set(map(tuple, rows)))]


def _claim(tx: Tx, d: Directive, step: Step) -> Claim:
    """ready or rework -> running, with the attempt's run row."""
    run = StepRun(
        step_id=step.id,
        directive_id=d.id,
        attempt=step.attempts + 1,
        executor=(step.spec.executor or d.spec.executor).value,
        rework_instructions=step.rework_instructions,
    )
    tx.add_run(run)
    reason = f"attempt {run.attempt}" + (" (rework)" if step.status is S.REWORK else "")
    running = tx.step_status(step.id, S.RUNNING, reason=reason, known=step, attempts=run.attempt)
    return Claim(d, running, run)


def recover(tx: Tx, directive_id: str) -> None:
    """What a dead engine left mid-attempt runs again: its running runs are
    cancelled, a run whose evaluation it cut off says so (it stays
    succeeded: the executor finished), and those steps are ready."""
    for row in tx.conn.execute(
        "SELECT id FROM step_runs WHERE directive_id = ? AND status = 'running'", (directive_id,)
    ).fetchall():
        tx.update(
            "step_runs",
            row[0],
            status="cancelled",
            error="interrupted by restart",
            finished_at=now(),
        )
    for step_id, status in tx.conn.execute(
        "SELECT id, status FROM chain_steps WHERE directive_id = ?"
        " AND status IN ('running', 'evaluating')",
        (directive_id,),
    ).fetchall():
        if status == S.EVALUATING.value:
            last = tx.one(
                "SELECT id FROM step_runs WHERE step_id = ? ORDER BY attempt DESC LIMIT 1",
                (step_id,),
            )
            if last is not None:
                why = unjudged("interrupted by restart")
                tx.update_if("step_runs", last[0], {"status": "succeeded"}, {"error": why})
        tx.step_status(step_id, S.READY, reason="interrupted by restart; runs again")


MERGED_UNRECORDED = "its merge was made, but the write of its verdict was lost"


def passed_unrecorded(tx: Tx, step_id: str, checkpoint_sha: str, why: str) -> None:
    """A step whose last attempt is on the integration branch (its merge
    recorded its checkpoint) while the database still has it running or
    evaluating: the engine was killed, or the database busy, between the
    merge and the verdict's write. Merges happen only on a pass, so it
    passed; running it again would apply its change twice."""
    step = tx.step(step_id)
    run = tx.one(
        "SELECT id, status, base_sha FROM step_runs WHERE step_id = ? ORDER BY attempt DESC"
        " LIMIT 1",
        (step_id,),
    )
    if run is not None and run[1] == "running":
        tx.update("step_runs", run[0], status="succeeded", finished_at=now())
    if step.status is S.RUNNING:
        tx.step_status(step_id, S.EVALUATING, reason=why)
    tx.step_status(step_id, S.PASSED, reason=why, carry_sha=None)
    tx.emit(
        CheckpointRecorded(
            directive_id=step.directive_id,
            step_id=step.id,
            step_name=step.name,
            sha=checkpoint_sha,
            changed=run is None or checkpoint_sha != run[2],
        )
    )


def unjudged(why: str) -> str:
    """A run whose evaluation was cut off: what its attempt panel says."""
    return f"its evaluation was cut off ({why}): no verdict, the step runs again"


def recover_after_death(tx: Tx, directive_id: str, dead_since: float) -> Directive:
    """What an engine that died left of a directive: its steps run again,
    and its clock ran until the engine's last heartbeat (`dead_since`), not
    through the time nothing ran it."""
    recover(tx, directive_id)
    d = tx.directive(directive_id)
    if d.active_since is None:
        return d
    at = max(dead_since, d.active_since)
    return tx.clock(d, running=False, reason="the engine that ran it stopped", at=at)


def charge_planning(tx: Tx, directive_id: str, planned: PlannedChain) -> None:
    """What planning cost and is not charged yet (a planner that reports
    each call's cost has been charged call by call)."""
    due = planned.cost_usd - planned.charged_usd
    if due > 0:
        tx.conn.execute(
            "UPDATE directives SET planning_cost_usd = planning_cost_usd + ? WHERE id = ?",
            (due, directive_id),
        )
        total = tx.add_cost(directive_id, due)
        tx.emit(CostUpdated(directive_id=directive_id, delta_usd=due, total_usd=total))


def build_chain(
    d: Directive, planned: PlannedChain, *, generation: int, reason: str | None
) -> tuple[Chain, list[Step]]:
    from engine.layout import layout_chain

    chain = Chain(
        directive_id=d.id,
        generation=generation,
        planner=d.spec.planner.value,
        reason=reason,
        cost_usd=planned.cost_usd,
    )
    positions = layout_chain(planned.steps)
    ids = {
        spec.name: Step(chain_id=chain.id, directive_id=d.id, name=spec.name, spec=spec).id
        for spec in planned.steps
    }
    steps = [
        Step(
            id=ids[spec.name],
            chain_id=chain.id,
            directive_id=d.id,
            name=spec.name,
            spec=spec,
            depends_on=[ids[n] for n in spec.depends_on],
            layer=positions[spec.name][0],
            row=positions[spec.name][1],
        )
        for spec in planned.steps
    ]
    return chain, steps


def record_checkpoint(tx: Tx, step: Step, merged: Any | None) -> None:
    """The event of a checkpoint: a merge into the integration branch (its
    hidden ref was recorded by `Workspace.merge`). `merged`: the merge's
    `MergeResult` (engine.worktrees), or None: no event when nothing was
    merged."""
    if merged is not None and merged.merged and merged.sha:
        tx.emit(
            CheckpointRecorded(
                directive_id=step.directive_id,
                step_id=step.id,
                step_name=step.name,
                sha=merged.sha,
                fast_forward=merged.fast_forward,
                artifacts=merged.artifacts,
                changed=merged.sha != merged.previous_sha,
            )
        )


def steps_to_rerun(steps: list[Step], dropped_slugs: list[str]) -> list[str]:
    """Resetting the integration branch drops the commits of some steps: those
    steps run again, and so does everything downstream of them, but a step
    a person skipped stays skipped (their answer stands, and skipped is
    final: the reset failed on it once git had moved). Names, in chain
    order (the engine does it; the app shows it before asking)."""
    from engine.worktree_names import step_slug

    by_slug = {step_slug(s.name): s for s in steps}
    rerun = {by_slug[slug].id for slug in dropped_slugs if slug in by_slug}
    dependents: dict[str, list[str]] = {}
    for s in steps:
        for dep in s.depends_on:
            dependents.setdefault(dep, []).append(s.id)
    todo = list(rerun)
    while todo:
        for child in dependents.get(todo.pop(), []):
            if child not in rerun:
                rerun.add(child)
                todo.append(child)
    return [s.name for s in steps if s.id in rerun and s.status is not S.SKIPPED]
