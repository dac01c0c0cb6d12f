"""What a person at the keyboard ran into: keys that did nothing or said
the wrong thing, text cut off without a sign, and a start the app could
tell would fail at its first step."""

from __future__ import annotations

from pathlib import Path

from engine.models import ApprovalDecision, ApprovalKind, StepStatus
from tests.engine_kit import Script, chain_spec
from tests.test_tui_app import SIZE, _box_status, _footer_keys, app_for, engine, started, until
from tui.modals.approval import ApprovalModal
from tui.screens.directive import DirectiveScreen
from tui.screens.help import help_sections


async def test_enter_on_the_approvals_panel_of_a_directive_answers_the_row(
    tmp_path: Path,
) -> None:
    """As on home: the panel's rows are approvals, and Enter opens the one
    highlighted (it did nothing on a directive's screen)."""
    app = app_for(tmp_path, Script(scores={"build": [0.6]}))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(pilot, lambda: _box_status(app, "build") == StepStatus.AWAITING_APPROVAL, "⚑")
        screen = app.screen
        assert isinstance(screen, DirectiveScreen)
        await until(pilot, lambda: screen.approvals, "the approval on screen")
        await pilot.press("2", "enter")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the approval modal")
        modal = app.screen
        assert isinstance(modal, ApprovalModal)
        assert modal.approval.id == screen.approvals[0].id


async def test_a_failed_step_s_escalation_is_offered_as_a_decision_not_an_approval(
    tmp_path: Path,
) -> None:
    """A step whose command failed asks retry, skip, replan or stop: the
    footer and help offered "a Approve d Deny c Changes" for it. With only
    escalations pending, `a` is Decide (d and c open the same choice); a
    step review waiting beside one brings back the three."""
    app = app_for(tmp_path, Script(fail={"build": "exit 1"}, scores={"check": [0.6]}))
    async with app.run_test(size=SIZE) as pilot:
        did = await started(pilot, app, chain_spec(tmp_path, [("build", []), ("check", [])]))
        screen = app.screen
        assert isinstance(screen, DirectiveScreen)
        await until(pilot, lambda: len(screen.approvals) == 2, "an escalation and a review")
        assert _footer_keys(screen)[1:4] == ["a", "d", "c"]
        assert ("a", "Approve") in help_sections(screen)[0][1]

        review = next(a for a in screen.approvals if a.kind is ApprovalKind.STEP_REVIEW)
        await engine(app).resolve_approval(review.id, ApprovalDecision.APPROVE)
        await until(pilot, lambda: len(screen.approvals) == 1, "the escalation alone")
        await until(pilot, lambda: "d" not in _footer_keys(screen), "the footer to follow")
        assert "a" in _footer_keys(screen)
        keys = help_sections(screen)[0][1]
        assert ("a", "Decide") in keys and ("a", "Approve") not in keys
        assert not {"Deny", "Changes"} & {what for _, what in keys}

        await pilot.press("d")  # any of the three opens the escalation's choices
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the choices")
        modal = app.screen
        assert isinstance(modal, ApprovalModal) and modal.intent is None
        assert [c.label for c in modal.choices] == ["Retry", "Skip", "Replan", "Stop"]
        await pilot.press("escape")
        assert (await engine(app).store.pending_approvals(did))[0].pending
