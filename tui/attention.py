"""Which engine events call for the person at the keyboard: the app rings
the terminal bell for them, so someone working in another window (a tmux
window shows the bell as a flag) knows to come back. A pause, stop or resume a person made never rings;
any new approval does, even one their own answer opened (a deny opens an
escalation: a question for them all the same)."""

from __future__ import annotations

from engine.events import ApprovalRequired, DirectiveStatusChanged, EngineEvent
from engine.models import Actor, DirectiveStatus

# A directive that stopped moving by itself: a breaker or a missing folder
# paused it, or it reached its end.
CALLING_STATUSES = frozenset(
    {DirectiveStatus.PAUSED, DirectiveStatus.COMPLETED, DirectiveStatus.FAILED}
)


def calls_for_a_person(event: EngineEvent) -> bool:
    if isinstance(event, ApprovalRequired):
        return True
    return (
        isinstance(event, DirectiveStatusChanged)
        and event.actor is not Actor.USER
        and event.new_status in CALLING_STATUSES
    )
