"""Answering approvals: the state change each answer makes, written inside
the answer's transaction (these functions run on the database thread)."""

from __future__ import annotations

from typing import Any

from engine.events import ApprovalRequired, ApprovalResolved
from engine.models import (
    ESCALATION_OPTIONS,
    Actor,
    ApprovalDecision,
    ApprovalKind,
    ApprovalRequest,
    ApprovalStatus,
    Directive,
    PlannerKind,
    Severity,
    Step,
    now,
)
from engine.models import StepStatus as S
from engine.refusals import ApprovalAlreadyResolved, EngineError
from engine.store import Tx
from engine.transitions import DIRECTIVE_TERMINAL

# What a resolved approval becomes, by its decision; the rest are "resolved".
APPROVAL_STATUS = {
    ApprovalDecision.APPROVE: ApprovalStatus.APPROVED,
    ApprovalDecision.DENY: ApprovalStatus.DENIED,
    ApprovalDecision.REQUEST_CHANGES: ApprovalStatus.CHANGES_REQUESTED,
    ApprovalDecision.SUPERSEDED: ApprovalStatus.SUPERSEDED,
}

# The answer that makes a new chain (a replan), by kind of approval.
REPLANS = {
    ApprovalKind.PLAN: ApprovalDecision.REQUEST_CHANGES,
    ApprovalKind.ESCALATION: ApprovalDecision.REPLAN,
}
# What an unattended run (`demo --auto`, in the app or headless) answers,
# by kind: it must reach an end, so what escalates is skipped (a retry of a
# step that fails the same way would ask again for ever).
UNATTENDED = {
    ApprovalKind.PLAN: ApprovalDecision.APPROVE,
    ApprovalKind.STEP_REVIEW: ApprovalDecision.APPROVE,
    ApprovalKind.ESCALATION: ApprovalDecision.SKIP,
}
# Planners that make the same plan whatever a person asks: changes requested
# to it would rebuild the same chain and use up a replan.
SAME_PLAN = {
    PlannerKind.EXPLICIT: (
        "the plan's steps come from the directive file, so a new plan would be the same:"
        " edit the file and run it again to change them"
    ),
}


def refused_answers(a: ApprovalRequest, d: Directive) -> dict[ApprovalDecision, str]:
    """The options of `a` the engine refuses now, each with why: the one
    rule its answers and the front ends' offers share. A replan is refused
    once the directive has none left (it would trip the breaker, pause, and
    leave the plan unapproved), and changes to a plan its planner would
    make again unchanged."""
    answer = REPLANS.get(a.kind)
    if answer not in a.options:
        return {}
    others = either([o.label for o in a.options if o is not answer])
    same = SAME_PLAN.get(d.spec.planner) if a.kind is ApprovalKind.PLAN else None
    if same:
        return {answer: f"{same}, or answer {others}"}
    if not d.replans_left:
        used, limit = d.regenerations, d.spec.limits.max_chain_regenerations
        return {
            answer: f"no replans left ({used}/{limit}): raise max_chain_regenerations"
            f" first, or answer {others}"
        }
    return {}


def either(words: list[str]) -> str:
    """`a, b or c`: choices in a message (the engine's and the CLI's)."""
    return " or ".join(filter(None, [", ".join(words[:-1]), words[-1]]))


def request_approval(tx: Tx, a: ApprovalRequest) -> None:
    """Ask a person, unless the directive has ended meanwhile (a stop that
    committed while a step was finishing): nobody can answer there, and the
    step's own status still records what happened."""
    if tx.directive(a.directive_id).status in DIRECTIVE_TERMINAL:
        return
    tx.add_approval(a)
    tx.emit(
        ApprovalRequired(
            directive_id=a.directive_id,
            approval_id=a.id,
            kind=a.kind.value,
            step_id=a.step_id,
            summary=a.summary,
            severity=Severity.WARNING,
        )
    )


def escalate(tx: Tx, directive_id: str, step: Step, why: str, evaluation_id: str | None) -> None:
    request_approval(
        tx,
        ApprovalRequest(
            directive_id=directive_id,
            step_id=step.id,
            kind=ApprovalKind.ESCALATION,
            summary=f"step {step.name} needs a decision: {why}",
            evaluation_id=evaluation_id,
            options=list(ESCALATION_OPTIONS),
        ),
    )


def supersede(tx: Tx, directive_id: str, why: str, chain_id: str | None = None) -> None:
    """Pending approvals a stop or a replan made moot (all of the directive's,
    or those of the chain being replaced) are closed as superseded, with
    `why`, and an event each: none is left dangling, and none is recorded as
    an answer nobody gave."""
    sql = "SELECT a.id, a.step_id FROM approval_requests a WHERE a.directive_id = ? AND a.status = 'pending'"
    params: list[Any] = [directive_id]
    if chain_id is not None:
        sql += " AND (a.step_id IS NULL OR a.step_id IN (SELECT id FROM chain_steps WHERE chain_id = ?))"
        params.append(chain_id)
    for approval_id, step_id in tx.conn.execute(sql, params).fetchall():
        _close(tx, directive_id, approval_id, step_id, ApprovalDecision.SUPERSEDED, why)


def supersede_for_step(tx: Tx, step: Step, why: str) -> None:
    """The step's pending approvals, made moot by a reset: superseded."""
    for approval_id in pending_for_step(tx, step.id):
        _close(tx, step.directive_id, approval_id, step.id, ApprovalDecision.SUPERSEDED, why)


def retry_step(tx: Tx, step: Step) -> None:
    """A person's retry of a blocked or failed step (the escalation's answer
    given with the step's own command): it runs again, with fresh rework
    cycles. The engine checked it is one of `transitions.RETRYABLE`."""
    _retry(tx, step, None, "retry")
    _answer_for_step(tx, step, ApprovalDecision.RETRY)


def skip_step(tx: Tx, step_id: str) -> None:
    s = _skip(tx, step_id, "skipped by user")
    _answer_for_step(tx, s, ApprovalDecision.SKIP)


def _retry(tx: Tx, step: Step, note: str | None, reason: str) -> None:
    """The step runs again with fresh rework cycles. It starts where the
    engine left its carry: none after a deny (`apply_decision`), a failed
    attempt's commit under `carry_rework`. A person's note (the retry's
    comment) reaches the next attempt as a request for changes does: as its
    rework instructions, the earlier ones kept below it; without a note
    they stay as they are."""
    fields: dict[str, Any] = {"rework_count": 0}
    note = (note or "").strip()
    if note:
        instructions = f"A person retried this step and said: {note}"
        if step.rework_instructions:
            instructions += f"\n\nEarlier findings:\n{step.rework_instructions}"
        fields["rework_instructions"] = instructions
    tx.step_status(step.id, S.READY, reason=reason, known=step, **fields)


def _skip(tx: Tx, step_id: str, reason: str) -> Step:
    """The step is skipped for good (nothing leaves `skipped`): its carry
    goes, so no later look at the step (a reset's stale carries, say) takes
    it for the start of an attempt to come."""
    return tx.step_status(step_id, S.SKIPPED, reason=reason, carry_sha=None)


def pending_for_step(tx: Tx, step_id: str) -> list[str]:
    """Ids of the step's approvals still waiting for a person."""
    return [
        row[0]
        for row in tx.conn.execute(
            "SELECT id FROM approval_requests WHERE step_id = ? AND status = 'pending'", (step_id,)
        ).fetchall()
    ]


def plan_pending(tx: Tx, directive_id: str) -> bool:
    """Whether the directive's plan waits for a person (nothing runs)."""
    row = tx.one(
        "SELECT 1 FROM approval_requests WHERE directive_id = ? AND kind = 'plan'"
        " AND status = 'pending'",
        (directive_id,),
    )
    return row is not None


def _answer_for_step(tx: Tx, step: Step, decision: ApprovalDecision) -> None:
    """A person retried or skipped the step with its own command: that is
    their answer to the step's escalation."""
    for approval_id in pending_for_step(tx, step.id):
        _close(tx, step.directive_id, approval_id, step.id, decision, None, Actor.USER)


def _close(
    tx: Tx,
    directive_id: str,
    approval_id: str,
    step_id: str | None,
    decision: ApprovalDecision,
    why: str | None,
    actor: Actor = Actor.SYSTEM,
) -> None:
    tx.update(
        "approval_requests",
        approval_id,
        status=APPROVAL_STATUS.get(decision, ApprovalStatus.RESOLVED),
        decision=decision,
        comment=why,
        resolved_at=now(),
    )
    tx.emit(
        ApprovalResolved(
            directive_id=directive_id,
            approval_id=approval_id,
            decision=decision.value,
            step_id=step_id,
            comment=why,
            actor=actor,
        )
    )


def record_answer(
    tx: Tx, approval_id: str, decision: ApprovalDecision, comment: str | None
) -> ApprovalRequest:
    """Write a person's answer, once, and return the approval as answered.
    Refused, changing nothing, when it is closed already, does not offer
    that answer, or the directive's state refuses it (`refused_answers`)."""
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
        raise EngineError(f"approval {a.id} ({a.kind.value}) takes {allowed}, not {decision.label}")
    refused = refused_answers(a, tx.directive(a.directive_id)).get(decision)
    if refused:
        raise EngineError(refused)
    status = APPROVAL_STATUS.get(decision, ApprovalStatus.RESOLVED)
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
    return a.model_copy(update={"status": status, "decision": decision, "comment": comment})


def apply_decision(
    tx: Tx,
    a: ApprovalRequest,
    decision: ApprovalDecision,
    comment: str | None,
    merge_problem: str | None = None,
) -> list[tuple[str, str]]:
    """The state change an answer makes, inside the answer's transaction.
    `merge_problem`: approving merged the attempt and it conflicted, so the
    step goes to rework with that explanation instead of passing.
    Returns follow-ups that need the engine (replan, stop)."""
    note = comment or ""
    if a.kind is ApprovalKind.PLAN:
        if decision is ApprovalDecision.REQUEST_CHANGES:
            return [("replan", f"plan changes requested: {note}")]
        if decision is ApprovalDecision.DENY:
            return [("stop", f"plan denied{': ' + note if note else ''}")]
        return []
    if a.step_id is None:
        return []
    step = tx.step(a.step_id)
    if a.kind is ApprovalKind.STEP_REVIEW:
        if decision is ApprovalDecision.APPROVE and merge_problem is None:
            tx.step_status(step.id, S.PASSED, reason="approved", carry_sha=None)
        elif decision is ApprovalDecision.APPROVE:
            tx.step_status(
                step.id,
                S.REWORK,
                reason="approved, but the merge conflicted",
                rework_count=step.rework_count + 1,
                rework_instructions=merge_problem,
                carry_sha=_last_commit(tx, step.id),
            )
        elif decision is ApprovalDecision.REQUEST_CHANGES:
            previous = step.rework_instructions or ""
            instructions = f"A reviewer requested changes: {note}"
            if previous:
                instructions += f"\n\nEarlier findings:\n{previous}"
            tx.step_status(
                step.id,
                S.REWORK,
                reason="changes requested",
                rework_count=step.rework_count + 1,
                rework_instructions=instructions,
                carry_sha=_last_commit(tx, step.id),  # build on what was reviewed
            )
        else:
            # Denied: neither this attempt nor what it was built on (a commit
            # a request for changes carried) is the start of a retry, with
            # or without `carry_rework`: the person refused that work. A
            # retry is told so, and why: it starts afresh.
            denied = "A reviewer denied the previous attempt" + (f": {note}" if note else ".")
            if step.rework_instructions:
                denied += f"\n\nEarlier findings:\n{step.rework_instructions}"
            tx.step_status(
                step.id, S.BLOCKED, reason="denied", carry_sha=None, rework_instructions=denied
            )
            escalate(
                tx,
                a.directive_id,
                step,
                f"denied by reviewer{': ' + note if note else ''}",
                a.evaluation_id,
            )
        return []
    # escalation
    if decision is ApprovalDecision.RETRY:
        _retry(tx, step, comment, "retry")
    elif decision is ApprovalDecision.SKIP:
        _skip(tx, step.id, "skipped")
    elif decision is ApprovalDecision.REPLAN:
        return [("replan", f"replan requested for step {step.name}{': ' + note if note else ''}")]
    elif decision is ApprovalDecision.STOP:
        return [("stop", f"stopped at step {step.name}{': ' + note if note else ''}")]
    return []


def _last_commit(tx: Tx, step_id: str) -> str | None:
    row = tx.one(
        "SELECT commit_sha FROM step_runs WHERE step_id = ? ORDER BY attempt DESC LIMIT 1",
        (step_id,),
    )
    return row[0] if row else None
