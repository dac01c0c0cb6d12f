"""Chains inside the engine: building one from a plan, the driver's one-hop
view of a directive, and crash recovery (run on the database thread)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.events import CheckpointRecorded, CostUpdated
from engine.models import Chain, ConfidenceLevel, Directive, Severity, Step, now
from engine.models import StepStatus as S
from engine.planner import PlannedChain
from engine.store import Tx, _chain, _list_steps
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
class DriverView:
    """Everything the driver needs for one decision, read in one hop."""

    directive: Directive
    chain: Chain | None
    plan_pending: bool
    runnable: list[Step]  # ready or rework: waiting for a slot
    newly_ready: list[Step]  # pending with every dependency done
    all_done: bool


def driver_view(conn: Any, directive_id: str) -> DriverView:
    tx = Tx(conn)
    d = tx.directive(directive_id)
    row = tx.one(
        "SELECT * FROM directive_chains WHERE directive_id = ? AND superseded = 0"
        " ORDER BY generation DESC LIMIT 1",
        (directive_id,),
    )
    if row is None:
        return DriverView(d, None, False, [], [], False)
    chain = _chain(row)
    plan_pending = (
        tx.one(
            "SELECT 1 FROM approval_requests WHERE directive_id = ? AND kind = 'plan' AND status = 'pending'",
            (directive_id,),
        )
        is not None
    )
    runnable = _list_steps(conn, "s.chain_id = ? AND s.status IN ('ready', 'rework')", (chain.id,))
    newly_ready = _list_steps(
        conn,
        "s.chain_id = ? AND s.status = 'pending' AND NOT EXISTS ("
        " SELECT 1 FROM step_deps d JOIN chain_steps p ON p.id = d.depends_on"
        " WHERE d.step_id = s.id AND p.status NOT IN ('passed', 'skipped'))",
        (chain.id,),
    )
    # Existence, not counts: each is a few probes of the (chain, status)
    # index, where counting walked every passed step on every wake-up.
    any_left = tx.one(
        f"SELECT 1 FROM chain_steps WHERE chain_id = ? AND status IN ({NOT_DONE_MARKS}) LIMIT 1",
        (chain.id, *NOT_DONE),
    )
    any_step = tx.one("SELECT 1 FROM chain_steps WHERE chain_id = ? LIMIT 1", (chain.id,))
    all_done = any_step is not None and any_left is None
    return DriverView(d, chain, plan_pending, runnable, newly_ready, all_done)


def recover(tx: Tx, directive_id: str) -> None:
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
    for row in tx.conn.execute(
        "SELECT id FROM chain_steps WHERE directive_id = ? AND status IN ('running', 'evaluating')",
        (directive_id,),
    ).fetchall():
        tx.step_status(row[0], S.READY, reason="interrupted by restart; runs again")


def charge_planning(tx: Tx, directive_id: str, planned: PlannedChain) -> None:
    if planned.cost_usd:
        tx.conn.execute(
            "UPDATE directives SET planning_cost_usd = planning_cost_usd + ? WHERE id = ?",
            (planned.cost_usd, directive_id),
        )
        total = tx.add_cost(directive_id, planned.cost_usd)
        tx.emit(CostUpdated(directive_id=directive_id, delta_usd=planned.cost_usd, total_usd=total))


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
    """A merge into the integration branch is the directive's checkpoint."""
    if merged is not None and merged.merged and merged.sha:
        tx.emit(
            CheckpointRecorded(
                directive_id=step.directive_id,
                step_id=step.id,
                step_name=step.name,
                sha=merged.sha,
                fast_forward=merged.fast_forward,
            )
        )


def steps_to_rerun(steps: list[Step], dropped_slugs: list[str]) -> list[str]:
    """Resetting the integration branch drops the commits of some steps: those
    steps run again, and so does everything downstream of them. Names, in
    chain order (the engine does it; the app shows it before asking)."""
    from engine.worktrees import step_slug

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
    return [s.name for s in steps if s.id in rerun]
