"""Which commands apply to a directive or a step in its current state, and a
plain sentence for one that does not.

The screens hide the keys that do not apply (`check_action`), so the footer
and the palette offer only what can happen, and when such a key is pressed
anyway they say why instead of asking to confirm something the engine would
refuse. The engine still checks every move (engine/transitions.py); this is
what a person is told first.
"""

from __future__ import annotations

from engine.models import Directive, DirectiveSpec, DirectiveStatus, Step, StepStatus
from engine.transitions import (
    DIRECTIVE_TERMINAL,
    DIRECTIVE_TRANSITIONS,
    RETRYABLE,
    STEP_TRANSITIONS,
)

# Actions of the screens, by what they act on.
DIRECTIVE_ACTIONS = frozenset({"start", "pause", "resume", "stop", "replan", "limits", "delete"})
STEP_ACTIONS = frozenset({"retry_step", "skip_step"})

SKIPPABLE = frozenset(s for s, moves in STEP_TRANSITIONS.items() if StepStatus.SKIPPED in moves)


def directive_refusal(d: Directive, action: str) -> str | None:
    """None when `action` applies to `d`, else why not, in words."""
    status = d.status
    moves = DIRECTIVE_TRANSITIONS[status]
    is_ = f"{d.title} is {status.value}"
    if action == "start":
        if status is DirectiveStatus.DRAFT:
            return None
        if status is DirectiveStatus.PAUSED:
            return f"{is_}: p resumes it."
        return f"{is_}: nothing to start."
    if action == "pause":
        return None if DirectiveStatus.PAUSED in moves else f"{is_}: nothing to pause."
    if action == "resume":
        if status is DirectiveStatus.PAUSED:
            return None
        if DirectiveStatus.PAUSED in moves:
            return f"{is_}, not paused: nothing to resume."
        return f"{is_}: nothing to resume."
    if action == "stop":
        return None if DirectiveStatus.STOPPED in moves else f"{is_}: nothing to stop."
    if action == "replan":
        if status in (DirectiveStatus.DRAFT, DirectiveStatus.PLANNING):
            return f"{is_}: it has no plan to replace yet."
        if status not in (DirectiveStatus.ACTIVE, DirectiveStatus.PAUSED):
            return f"{is_}: nothing to replan."
        if not d.replans_left:  # the engine would refuse, or trip its breaker
            used, limit = d.regenerations, d.spec.limits.max_chain_regenerations
            return f"{d.title} has used its replans ({used}/{limit}): L raises the limit."
        return None
    if action == "limits":  # a breaker acts on a directive that can still run
        if status in DIRECTIVE_TERMINAL:
            return f"{is_}: nothing runs any more, so its limits no longer apply."
        return None
    if action == "delete":  # as the engine's DELETABLE: nothing runs or waits
        if status is DirectiveStatus.DRAFT or status in DIRECTIVE_TERMINAL:
            return None
        return f"{is_}: stop it first to delete it."
    raise ValueError(f"not a directive action: {action}")


def step_refusal(step: Step, action: str) -> str | None:
    """None when `action` applies to `step`, else why not, in words."""
    is_ = f"{step.name} is {step.status.value}"
    if action == "retry_step":
        if step.status in RETRYABLE:
            return None
        return f"{is_}: only a blocked or failed step can be retried."
    if action == "skip_step":
        if step.status in SKIPPABLE:
            return None
        return f"{is_}: only a pending, blocked or failed step can be skipped."
    raise ValueError(f"not a step action: {action}")


def missing_api_key(services: object, spec: DirectiveSpec, source: str) -> str | None:
    """Why `spec` cannot start in this app, as `directive-tui run` refuses
    it: its planner or executor needs Claude and ANTHROPIC_API_KEY is not
    set (started anyway, its first step fails at once and waits for a
    person). None when the key is set, or when the engine's services bring
    their own client (`services.llm_provider` is not the default)."""
    from engine.directive_file import DirectiveFileError, check_api_key
    from engine.services import default_llm_provider

    if getattr(services, "llm_provider", None) is not default_llm_provider:
        return None
    try:
        check_api_key(spec, source)
    except DirectiveFileError as exc:
        return str(exc)
    return None
