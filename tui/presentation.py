"""How statuses and levels look: tables the widgets read, not branches.

Each entry names an icon, a short label and a CSS class suffix; the colours
themselves live in `app.tcss` (classes such as `look--running`).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.models import (
    CLOCK_RUNNING,
    ApprovalDecision,
    ApprovalKind,
    ConfidenceLevel,
    Directive,
    DirectiveStatus,
    Severity,
    Step,
    StepStatus,
)

# After the time used while a directive's wall-time clock stands though it
# is not paused: it waits for a person, or no app or run has it open.
CLOCK_STANDS = " ⏸"


def clock_mark(d: Directive) -> str:
    """CLOCK_STANDS, or nothing: time that does not move says why it does not."""
    return CLOCK_STANDS if d.status in CLOCK_RUNNING and d.active_since is None else ""


@dataclass(frozen=True)
class Look:
    icon: str
    label: str
    css: str  # component class suffix and Rich style name in the stylesheet


STEP_LOOK: dict[StepStatus, Look] = {
    StepStatus.PENDING: Look("○", "pending", "pending"),
    StepStatus.READY: Look("◌", "ready", "ready"),
    StepStatus.RUNNING: Look("▶", "running", "running"),
    StepStatus.EVALUATING: Look("◎", "evaluating", "evaluating"),
    StepStatus.AWAITING_APPROVAL: Look("?", "approval", "awaiting"),
    StepStatus.REWORK: Look("↻", "rework", "rework"),
    StepStatus.PASSED: Look("✔", "passed", "passed"),
    StepStatus.BLOCKED: Look("■", "blocked", "blocked"),
    StepStatus.FAILED: Look("✖", "failed", "failed"),
    StepStatus.SKIPPED: Look("»", "skipped", "skipped"),
    StepStatus.SUPERSEDED: Look("⌀", "superseded", "superseded"),
}

# A step of a directive that has ended (stopped, failed) that will not run
# now: `◌ ready` read as if it would. It never ran, or its attempt was left
# unfinished (cut by the stop, or waiting for an answer the stop closed).
NOT_RUN = Look("–", "not run", "pending")
UNFINISHED = Look("–", "unfinished", "pending")
LEFT_BY_AN_END = frozenset(
    {
        StepStatus.PENDING,
        StepStatus.READY,
        StepStatus.RUNNING,
        StepStatus.EVALUATING,
        StepStatus.REWORK,
        StepStatus.AWAITING_APPROVAL,
    }
)


# Where a step's score and level (its latest evaluation's) are the verdict
# it stands on: passed on it, waiting for a person on it (approval, or the
# escalation of a block), or reworked because of it (until the next attempt
# runs). Anywhere else they are an earlier attempt's: a step running again
# after a reset, a retry or a rework showed `▶ running green 1.00`, one a
# stop left unfinished `– unfinished G 1.00`, a step that failed the score
# of the attempt before the one that failed.
VERDICT_STANDS = frozenset(
    {StepStatus.PASSED, StepStatus.AWAITING_APPROVAL, StepStatus.REWORK, StepStatus.BLOCKED}
)


def current_verdict(step: Step, *, ended: bool = False) -> bool:
    """Whether the step's score and level are the verdict it is in now
    (not while it reads "unfinished" in a directive that has ended)."""
    return (
        step.confidence is not None
        and step.status in VERDICT_STANDS
        and step_look(step, ended=ended) is STEP_LOOK[step.status]
    )


def step_look(step: Step, *, ended: bool = False) -> Look:
    """How a step looks; in a directive that has `ended`, a step it left
    undone says it will not run."""
    if ended and step.status in LEFT_BY_AN_END:
        return NOT_RUN if step.attempts == 0 else UNFINISHED
    return STEP_LOOK[step.status]


DIRECTIVE_LOOK: dict[DirectiveStatus, Look] = {
    DirectiveStatus.DRAFT: Look("○", "draft", "pending"),
    DirectiveStatus.PLANNING: Look("◎", "planning", "evaluating"),
    DirectiveStatus.ACTIVE: Look("▶", "active", "running"),
    DirectiveStatus.PAUSED: Look("‖", "paused", "awaiting"),
    DirectiveStatus.COMPLETED: Look("✔", "completed", "passed"),
    DirectiveStatus.FAILED: Look("✖", "failed", "failed"),
    DirectiveStatus.STOPPED: Look("■", "stopped", "skipped"),
}

LEVEL_CSS: dict[ConfidenceLevel, str] = {
    ConfidenceLevel.GREEN: "green",
    ConfidenceLevel.YELLOW: "yellow",
    ConfidenceLevel.RED: "red",
}

SEVERITY_CSS: dict[Severity, str] = {
    Severity.DEBUG: "debug",
    Severity.INFO: "info",
    Severity.SUCCESS: "success",
    Severity.WARNING: "warning",
    Severity.ERROR: "error",
}

# An escalation comes from a blocked step or a failed one: it is named by
# what it asks ("decide": retry, skip, replan or stop), as `a` is in the
# footer, not "blocked", which a failed step is not.
APPROVAL_KIND_LABEL: dict[ApprovalKind, str] = {
    ApprovalKind.STEP_REVIEW: "review",
    ApprovalKind.ESCALATION: "decide",
    ApprovalKind.PLAN: "plan",
}

# Past tense for notifications: "approved", "changes requested" ...
DECISION_DONE: dict[ApprovalDecision, str] = {
    ApprovalDecision.APPROVE: "approved",
    ApprovalDecision.DENY: "denied",
    ApprovalDecision.REQUEST_CHANGES: "changes requested",
    ApprovalDecision.RETRY: "retrying",
    ApprovalDecision.SKIP: "skipped",
    ApprovalDecision.REPLAN: "replanning",
    ApprovalDecision.STOP: "stopping",
}


def stop_question(title: str) -> str:
    """What `x` asks before stopping a directive, wherever it is pressed (the
    escalation dialog, home, the directive screen): a stop closes its
    pending approvals too, which only one of them said."""
    return f"Stop {title} for good? Running steps are cancelled and its pending approvals closed."
