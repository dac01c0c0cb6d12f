"""The two state machines as data: one table of allowed moves each.

Every status change in the engine goes through `check_directive` or
`check_step` before anything is written, so an illegal move raises and
changes nothing.
"""

from __future__ import annotations

from engine.models import DirectiveStatus as D
from engine.models import StepStatus as S


class InvalidTransition(ValueError):
    """A status change the table does not allow."""

    def __init__(self, kind: str, name: str, current: str, target: str) -> None:
        super().__init__(f"{kind} {name!r}: cannot move from {current!r} to {target!r}")
        self.kind, self.name, self.current, self.target = kind, name, current, target


DIRECTIVE_TRANSITIONS: dict[D, frozenset[D]] = {
    D.DRAFT: frozenset({D.PLANNING, D.STOPPED}),
    D.PLANNING: frozenset({D.ACTIVE, D.PAUSED, D.FAILED, D.STOPPED}),
    D.ACTIVE: frozenset({D.PAUSED, D.COMPLETED, D.FAILED, D.STOPPED}),
    # paused -> planning when resumed with no chain yet (breaker during planning)
    D.PAUSED: frozenset({D.ACTIVE, D.PLANNING, D.FAILED, D.STOPPED}),
    D.COMPLETED: frozenset(),
    D.FAILED: frozenset(),
    D.STOPPED: frozenset(),
}

_ANY_LIVE = frozenset({S.SUPERSEDED})

# -> pending: the integration branch was reset to an earlier checkpoint and
# the step's dependencies must pass again before it can run.
_RESET = frozenset({S.PENDING})

STEP_TRANSITIONS: dict[S, frozenset[S]] = {
    S.PENDING: frozenset({S.READY, S.SKIPPED}) | _ANY_LIVE,
    S.READY: frozenset({S.RUNNING}) | _ANY_LIVE | _RESET,
    # running -> ready: interrupted (pause, stop, crash) and run again later
    S.RUNNING: frozenset({S.EVALUATING, S.FAILED, S.READY}) | _ANY_LIVE,
    # evaluating -> blocked: red with no rework cycles left
    S.EVALUATING: frozenset({S.PASSED, S.AWAITING_APPROVAL, S.REWORK, S.BLOCKED, S.FAILED, S.READY})
    | _ANY_LIVE,
    S.AWAITING_APPROVAL: frozenset({S.PASSED, S.REWORK, S.BLOCKED}) | _ANY_LIVE | _RESET,
    S.REWORK: frozenset({S.RUNNING, S.BLOCKED}) | _ANY_LIVE | _RESET,
    S.BLOCKED: frozenset({S.READY, S.SKIPPED}) | _ANY_LIVE | _RESET,
    S.FAILED: frozenset({S.READY, S.SKIPPED}) | _ANY_LIVE | _RESET,
    S.PASSED: _RESET,
    S.SKIPPED: frozenset(),
    S.SUPERSEDED: frozenset(),
}

DIRECTIVE_TERMINAL = frozenset(s for s, nxt in DIRECTIVE_TRANSITIONS.items() if not nxt)
STEP_DONE = frozenset({S.PASSED, S.SKIPPED})  # satisfies dependents
STEP_ACTIVE = frozenset({S.RUNNING, S.EVALUATING})  # has a live attempt
RETRYABLE = frozenset({S.BLOCKED, S.FAILED})  # what the escalation's "retry" is for


def check_directive(name: str, current: D, target: D) -> None:
    if target not in DIRECTIVE_TRANSITIONS[current]:
        raise InvalidTransition("directive", name, current.value, target.value)


def check_step(name: str, current: S, target: S) -> None:
    if target not in STEP_TRANSITIONS[current]:
        raise InvalidTransition("step", name, current.value, target.value)


def reachable_step_statuses() -> frozenset[S]:
    """Every status reachable from `pending`: the invariant checker's set."""
    seen, todo = {S.PENDING}, [S.PENDING]
    while todo:
        for nxt in STEP_TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return frozenset(seen)
