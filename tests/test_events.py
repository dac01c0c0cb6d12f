"""How events read in the log (the headless output, the app's event log)."""

from __future__ import annotations

from engine.events import ApprovalResolved


def test_an_answer_reads_as_a_person_says_it() -> None:
    answered = ApprovalResolved(
        directive_id="d", approval_id="a1", decision="request_changes", comment="split it"
    )
    assert answered.describe() == "approval [a1] request changes: split it"


def test_an_approval_closed_by_the_engine_says_nobody_answered() -> None:
    closed = ApprovalResolved(
        directive_id="d", approval_id="a1", decision="superseded", comment="replanned"
    )
    assert closed.describe() == "approval [a1] closed unanswered: replanned"
