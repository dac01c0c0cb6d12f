"""The app driven from the keyboard (Textual's Pilot) against the real
engine and a real SQLite file: approvals, pause/resume/stop, breakers,
the new-directive form, help and the palette."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static, TabbedContent

from engine.models import (
    ApprovalDecision,
    ApprovalKind,
    Autonomy,
    DirectiveStatus,
    ExecutorKind,
    PlannerKind,
    StepStatus,
)
from tests.engine_kit import Script, chain_spec, services
from tests.tui_kit import (
    SIZE,
    Notes,
    app_for,
    awaiting,
    box,
    box_status,
    dag_of,
    directive_status,
    engine,
    followed,
    footer_keys,
    loaded,
    open_the_form,
    plain_text,
    printed,
    started,
    step_status,
    until,
)
from tui.app import DirectiveApp
from tui.modals.approval import ApprovalModal
from tui.modals.confirm import ConfirmModal
from tui.modals.limits import LimitsModal
from tui.screens.directive import DirectiveScreen
from tui.screens.help import HelpScreen
from tui.screens.home import HomeScreen
from tui.screens.new_directive import NewDirectiveScreen
from tui.widgets.budgets import BudgetBars
from tui.widgets.dag import DagView


async def test_approve_from_the_keyboard(tmp_path: Path) -> None:
    script = Script(scores={"build": [0.6]})
    app = app_for(tmp_path, script)
    async with app.run_test(size=SIZE) as pilot:
        did = await started(pilot, app, chain_spec(tmp_path, [("build", []), ("ship", ["build"])]))
        await until(pilot, lambda: awaiting(app, "build"), "the yellow box and its approval")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the approval modal")
        modal = app.screen
        assert isinstance(modal, ApprovalModal)
        assert modal.evaluation is not None and modal.evaluation.score == pytest.approx(0.6)
        await pilot.press("y")
        await until(pilot, lambda: box_status(app, "build") == StepStatus.PASSED, "build passed")
        await until(
            pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "completion"
        )
        # The directive row is read from the store: it can be ahead of the events
        # the boxes follow, so ship's box may turn green just after.
        await until(pilot, lambda: box_status(app, "ship") == StepStatus.PASSED, "ship passed")


async def test_deny_then_skip_the_escalation(tmp_path: Path) -> None:
    script = Script(scores={"build": [0.6]})
    app = app_for(tmp_path, script)
    async with app.run_test(size=SIZE) as pilot:
        did = await started(pilot, app, chain_spec(tmp_path, [("build", []), ("ship", ["build"])]))
        await until(pilot, lambda: awaiting(app, "build"), "yellow, its approval on screen")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the deny modal")
        assert footer_keys(app.screen) == ["escape"]  # the modal's, not the screen's
        await pilot.press(*"tests look flaky", "enter")  # the reason field has the keys
        await until(pilot, lambda: box_status(app, "build") == StepStatus.BLOCKED, "build blocked")
        (denied,) = [a for a in await engine(app).store.list_approvals(did) if a.decision]
        assert (denied.decision, denied.comment) == (ApprovalDecision.DENY, "tests look flaky")
        pending = await engine(app).store.pending_approvals(did)
        assert [a.kind for a in pending] == [ApprovalKind.ESCALATION]
        screen = app.screen
        assert isinstance(screen, DirectiveScreen)
        # `a` answers the approvals the screen holds: the escalation, not the
        # denied review it showed until it read them again.
        await until(pilot, lambda: [a.kind for a in screen.approvals] == [ApprovalKind.ESCALATION],
                    "the escalation on screen")  # fmt: skip
        # The escalation offers its own answers; `s` skips the blocked step.
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the escalation modal")
        modal = app.screen
        assert isinstance(modal, ApprovalModal) and modal.intent is None
        assert [c.label for c in modal.choices] == ["Retry", "Skip", "Replan", "Stop"]
        assert footer_keys(modal) == ["escape"]  # letters go into the note for now
        # The note has the focus: its letters are not answers (r would retry).
        assert modal.focused is not None and modal.focused.id == "comment"
        await pilot.press(*"really not needed")
        assert app.screen is modal
        # Enter in the note leads to the answers; it does not pick one.
        modal.query_one("#comment").value = "not needed"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert app.screen is modal and modal.focused is not None
        assert modal.focused.id == "choice-retry"
        assert footer_keys(modal) == ["r", "s", "p", "x", "escape"]
        await pilot.press("s")
        await until(
            pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "completion"
        )
        assert await step_status(app, did, "build") == "skipped"
        [escalation] = [
            a for a in await engine(app).store.list_approvals(did) if a.kind == "escalation"
        ]
        assert escalation.comment == "not needed"


async def test_request_changes_becomes_rework_instructions(tmp_path: Path) -> None:
    script = Script(scores={"build": [0.6, 0.95]})
    app = app_for(tmp_path, script)
    async with app.run_test(size=SIZE) as pilot:
        did = await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(pilot, lambda: awaiting(app, "build"), "yellow, its approval on screen")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the changes modal")
        await pilot.press("enter")  # no comment: refused inline, nothing sent
        await pilot.pause()
        assert isinstance(app.screen, ApprovalModal)
        assert "comment is required" in str(app.screen.query_one("#approval-error").render())
        await pilot.press(*"handle empty input")
        await pilot.press("enter")
        await until(
            pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "completion"
        )
        rework = [instructions for name, attempt, instructions in script.calls if attempt == 2]
        assert rework and "handle empty input" in (rework[0] or "")
        # the box follows the step's events; the completion was read from the store
        await until(pilot, lambda: box(app, "build").rework_count == 1, "the rework counted")


async def test_an_approval_closed_by_a_stop_says_so_when_answered(tmp_path: Path) -> None:
    script = Script(scores={"build": [0.6]})
    app = app_for(tmp_path, script)
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        did = await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(
            pilot, lambda: box_status(app, "build") == StepStatus.AWAITING_APPROVAL, "yellow"
        )
        (review,) = await engine(app).store.pending_approvals(did)
        await engine(app).stop_directive(did)  # closes the review unanswered
        assert await app.answer_approval(review.id, "approve") is False  # type: ignore[arg-type]
        await until(pilot, lambda: notes.has("was closed unanswered (", "warning"), "the notice")


async def test_a_second_answer_changes_nothing(tmp_path: Path) -> None:
    script = Script(scores={"build": [0.6]})
    app = app_for(tmp_path, script)
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        did = await started(pilot, app, chain_spec(tmp_path, [("build", []), ("ship", ["build"])]))
        await until(pilot, lambda: awaiting(app, "build"), "yellow, its approval on screen")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the deny modal")
        modal = app.screen
        assert isinstance(modal, ApprovalModal)
        # Someone else (the CLI, another screen) approves first: the dialog
        # closes, saying so (tests/test_tui_supervisor.py), and sends nothing.
        await engine(app).resolve_approval(modal.approval.id, "approve")
        await until(
            pilot, lambda: notes.has("answered elsewhere: approved", "warning"), "the notice"
        )
        assert modal not in app.screen_stack
        await until(
            pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "completion"
        )
        assert await step_status(app, did, "build") == "passed"  # not denied
        # Pressing again on the (now resolved) approval: said so, nothing sent.
        resolved = await engine(app).store.get_approval(modal.approval.id)
        assert await app.answer_approval(resolved.id, resolved.decision or "deny") is False  # type: ignore[arg-type]


async def test_a_key_pressed_again_before_the_screen_caught_up_acts_once(
    tmp_path: Path,
) -> None:
    """`pp` paused, then said "cannot move from 'paused' to 'paused'": the
    second press came before the screen heard of the pause, so it still
    offered Pause."""
    app = app_for(tmp_path, Script(delay={"slow": 30.0}))
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        did = await started(pilot, app, chain_spec(tmp_path, [("slow", [])]))
        await until(pilot, lambda: box_status(app, "slow") == StepStatus.RUNNING, "running")
        screen = app.screen
        assert isinstance(screen, DirectiveScreen)
        screen.action_pause()  # two presses in one go: the footer still says Pause
        screen.action_pause()
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.PAUSED), "paused")
        await until(pilot, lambda: not _working(app, "directive"), "both presses to be done with")
        assert not [m for severity, m in notes.messages if severity == "error"]
        assert (await engine(app).store.get_directive(did)).status is DirectiveStatus.PAUSED


async def test_pause_resume_and_stop(tmp_path: Path) -> None:
    script = Script(delay={"slow": 30.0})
    app = app_for(tmp_path, script)
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        did = await started(pilot, app, chain_spec(tmp_path, [("slow", [])]))
        await until(pilot, lambda: box_status(app, "slow") == StepStatus.RUNNING, "running")
        await pilot.press("p")
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.PAUSED), "paused")
        await until(
            pilot, lambda: box_status(app, "slow") == StepStatus.READY, "step back to ready"
        )
        await pilot.press("p")
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.ACTIVE), "resumed")
        await until(pilot, lambda: notes.has("resumed: test directive"), "said once active")
        await until(pilot, lambda: box_status(app, "slow") == StepStatus.RUNNING, "running again")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the stop confirmation")
        await pilot.press("y")
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.STOPPED), "stopped")
        screen = app.screen
        assert isinstance(screen, DirectiveScreen)
        assert screen.directive is not None and screen.directive.status is DirectiveStatus.STOPPED


async def test_quitting_while_steps_run_asks_first(tmp_path: Path) -> None:
    """A running step is thrown away by quitting (it starts over next time)."""
    app = app_for(tmp_path, Script(delay={"slow": 30.0}))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("slow", [])]))
        await until(pilot, lambda: box_status(app, "slow") == StepStatus.RUNNING, "running")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the quit question")
        question = plain_text(app.screen.query_one(".dialog-title"))
        assert question.startswith("1 step running here (slow): quit anyway? It is interrupted")
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert app.is_running and box_status(app, "slow") == StepStatus.RUNNING
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the quit question")
        await pilot.press("y")
        await until(pilot, lambda: not app.is_running, "the app to close")


async def test_quitting_with_nothing_running_asks_nothing(tmp_path: Path) -> None:
    app = app_for(tmp_path, Script())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine_ready, "the engine")
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, "the app to close")


async def test_skip_asks_first_and_cancel_keeps_the_step(tmp_path: Path) -> None:
    app = app_for(tmp_path, Script(delay={"slow": 30.0}))
    async with app.run_test(size=SIZE) as pilot:
        did = await started(pilot, app, chain_spec(tmp_path, [("slow", []), ("later", ["slow"])]))
        await until(pilot, lambda: box_status(app, "slow") == StepStatus.RUNNING, "running")
        await pilot.press("right")  # later: pending
        await pilot.press("S")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the skip question")
        assert "Skip later?" in plain_text(app.screen.query_one(".dialog-title"))
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert await step_status(app, did, "later") == "pending"
        await pilot.press("S")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the skip question")
        await pilot.press("y")
        await until(pilot, lambda: box_status(app, "later") == StepStatus.SKIPPED, "skipped")


async def test_a_directive_screen_shows_its_own_approvals_only(tmp_path: Path) -> None:
    from tui.widgets.approvals import ApprovalsPanel
    from tui.widgets.header import DirectiveHeader

    app = app_for(tmp_path, Script(scores={"build": [0.6]}, delay={"slow": 30.0}))
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        other = await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(pilot, lambda: box_status(app, "build") == StepStatus.AWAITING_APPROVAL, "⚑")
        screen = app.screen
        assert isinstance(screen, DirectiveScreen)
        tab = screen.query_one(TabbedContent).get_tab("tab-approvals")
        # the box turns ⚑ on the step's event; the approvals are read after it
        await until(pilot, lambda: str(tab.label) == "Approvals (1)", "the tab's count")
        await until(pilot, lambda: "⚑ 1 awaiting you" in plain_text(screen.query_one(DirectiveHeader)),
                    "the header's count")  # fmt: skip
        await pilot.press("escape")
        await started(pilot, app, chain_spec(tmp_path, [("slow", [])]))
        screen = app.screen
        assert isinstance(screen, DirectiveScreen) and screen.directive_id != other
        assert screen.query_one(ApprovalsPanel).approvals == []
        assert str(screen.query_one(TabbedContent).get_tab("tab-approvals").label) == "Approvals"
        assert "awaiting you" not in plain_text(screen.query_one(DirectiveHeader))
        await pilot.press("2", "a")  # the other directive's approval is not this screen's
        await until(pilot, lambda: notes.has("No pending approval here."), "the refusal")
        assert isinstance(app.screen, DirectiveScreen)


async def test_approval_keys_are_offered_only_while_an_approval_waits(tmp_path: Path) -> None:
    """a/d/c come into the footer with a pending approval and leave with
    it; pressed with none, they say so. The footer follows the approvals,
    never the focus: moving around the DAG redraws no footer."""
    app = app_for(tmp_path, Script(scores={"build": [0.6]}, delay={"ship": 30.0}))
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        did = await started(pilot, app, chain_spec(tmp_path, [("build", []), ("ship", ["build"])]))
        screen = app.screen
        assert isinstance(screen, DirectiveScreen)
        await until(pilot, lambda: box_status(app, "build") == StepStatus.AWAITING_APPROVAL, "⚑")
        await until(pilot, lambda: {"a", "d", "c"} <= set(footer_keys(screen)), "a/d/c offered")
        redrawn = 0
        original = screen.refresh_bindings

        def counted() -> None:
            nonlocal redrawn
            redrawn += 1
            original()

        screen.refresh_bindings = counted  # type: ignore[method-assign]
        await pilot.press("right", "left", "right", "left")
        await pilot.pause(0.1)
        assert redrawn == 0  # the arrows moved the focus, not the footer
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the approval modal")
        await pilot.press("y")
        await until(pilot, lambda: box_status(app, "ship") == StepStatus.RUNNING, "ship runs")
        await until(pilot, lambda: not {"a", "d", "c"} & set(footer_keys(screen)), "a/d/c gone")
        assert directive_status(app, did, DirectiveStatus.ACTIVE)  # still going: same status
        await pilot.press("a")
        await until(pilot, lambda: notes.has("No pending approval here.", "warning"), "the refusal")
        assert app.screen is screen  # no modal for nothing


async def test_keys_offer_what_applies_and_say_plainly_what_does_not(tmp_path: Path) -> None:
    from tui.commands import screen_commands

    app = app_for(tmp_path, Script(delay={"slow": 30.0}))
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        did = await started(pilot, app, chain_spec(tmp_path, [("slow", []), ("later", ["slow"])]))
        await until(pilot, lambda: box_status(app, "slow") == StepStatus.RUNNING, "running")
        screen = app.screen
        assert isinstance(screen, DirectiveScreen)

        def footer(key: str) -> str | None:
            shown = screen.active_bindings.get(key)  # what the footer draws
            return shown.binding.description if shown and shown.binding.show else None

        def palette() -> set[str]:
            return {title for title, _, _, _ in screen_commands(screen)}

        assert footer("p") == "Pause" and "Resume" not in palette()
        assert footer("escape") == "Back"  # to where it was opened from, not always home
        await pilot.press("p")
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.PAUSED), "paused")
        await until(pilot, lambda: footer("p") == "Resume", "the footer to say Resume")
        assert "Resume" in palette() and "Pause" not in palette()
        await pilot.press("p")
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.ACTIVE), "resumed")
        await until(pilot, lambda: footer("p") == "Pause", "the footer to say Pause")
        # A skipped step cannot be retried: said before anything is sent.
        await pilot.press("right", "S")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the skip question")
        await pilot.press("y")
        await until(pilot, lambda: box_status(app, "later") == StepStatus.SKIPPED, "skipped")
        header = screen.query_one("#directive-title")
        await until(
            pilot, lambda: "1/2 steps (1 skipped)" in plain_text(header), "skips counted apart"
        )
        await pilot.press("R")
        await until(pilot, lambda: notes.has("later is skipped: only a blocked or failed step"),
                    "the plain refusal")  # fmt: skip
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the stop question")
        await pilot.press("y")
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.STOPPED), "stopped")
        await until(pilot, lambda: footer("x") is None and footer("p") is None, "no Stop, no Pause")
        # Pressed anyway: a plain sentence, no question first, no engine jargon.
        await pilot.press("x", "p", "r")
        await pilot.pause(0.1)
        assert app.screen is screen
        for said in ("nothing to stop.", "nothing to pause.", "nothing to replan."):
            assert notes.has(f"test directive is stopped: {said}", "warning"), said
        assert not notes.has("cannot move from")


async def test_limits_of_an_active_directive_save_without_resuming(tmp_path: Path) -> None:
    from textual.widgets import Button

    app = app_for(tmp_path, Script(delay={"slow": 30.0}))
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        did = await started(pilot, app, chain_spec(tmp_path, [("slow", [])]))
        # active (planned, its step at work), as it still is when the limits are saved
        await until(pilot, lambda: box_status(app, "slow") == StepStatus.RUNNING, "running")
        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, LimitsModal), "the limits modal")
        assert str(app.screen.query_one("#save", Button).label) == "Save [enter]"
        app.screen.query_one("#limit-max_cost_usd").focus()
        await pilot.press("enter")  # nothing changed: said so
        await until(pilot, lambda: notes.has("No limit changed."), "the notice")
        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, LimitsModal), "the limits modal")
        app.screen.query_one("#limit-max_cost_usd").value = "7"  # type: ignore[attr-defined]
        app.screen.query_one("#limit-max_cost_usd").focus()
        await pilot.press("enter")
        await until(pilot, lambda: notes.has("limits saved"), "saved")
        d = await engine(app).store.get_directive(did)
        assert d.spec.limits.max_cost_usd == 7.0 and d.status is DirectiveStatus.ACTIVE


async def test_limits_are_not_offered_once_the_directive_has_ended(tmp_path: Path) -> None:
    """Limits guard a directive that can still run: ended, `L` is not in the
    footer and says why; and a directive that ends while the dialog is open
    gets nothing saved."""
    app = app_for(tmp_path, Script(delay={"slow": 30.0}))
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        did = await started(pilot, app, chain_spec(tmp_path, [("slow", [])]))
        screen = app.screen
        assert "L" in footer_keys(screen)
        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, LimitsModal), "the limits modal")
        await engine(app).stop_directive(did)  # meanwhile, from elsewhere
        app.screen.query_one("#limit-max_cost_usd").value = "7"  # type: ignore[attr-defined]
        app.screen.query_one("#limit-max_cost_usd").focus()
        await pilot.press("enter")
        await until(pilot, lambda: notes.has("Nothing saved.", "warning"), "the refusal")
        assert notes.has("test directive is stopped: nothing runs any more, so its limits "
                         "no longer apply. Nothing saved.")  # fmt: skip
        d = await engine(app).store.get_directive(did)
        assert d.spec.limits.max_cost_usd != 7.0 and not notes.has("limits saved")
        await until(pilot, lambda: "L" not in footer_keys(screen), "L to leave the footer")
        await pilot.press("L")
        await until(pilot, lambda: notes.messages[-1] == ("warning", "test directive is stopped: "
                    "nothing runs any more, so its limits no longer apply."), "why")  # fmt: skip
        await pilot.pause(0.1)
        assert app.screen is screen  # no dialog


async def test_replan_says_what_happened_and_past_the_limit_asks_for_the_limit(
    tmp_path: Path,
) -> None:
    app = app_for(tmp_path, Script(delay={"slow": 30.0}))
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        spec = chain_spec(tmp_path, [("slow", [])], max_chain_regenerations=1)
        did = await started(pilot, app, spec)
        # a plan to replace (before it, `r` says there is none yet)
        await until(pilot, lambda: box_status(app, "slow") == StepStatus.RUNNING, "the plan")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the replan question")
        await pilot.press("y")
        await until(pilot, lambda: notes.has("Replanned"), "the replan")
        await until(pilot, lambda: app.screen.directive.regenerations == 1, "the count")  # type: ignore[attr-defined]
        # No replan left: said at once, and the directive is not paused by a breaker.
        await pilot.press("r")
        await until(pilot, lambda: notes.has("has used its replans (1/1): L raises the limit."),
                    "the refusal")  # fmt: skip
        assert not isinstance(app.screen, ConfirmModal)
        assert (await engine(app).store.get_directive(did)).status is DirectiveStatus.ACTIVE


async def test_a_step_kept_by_a_replan_keeps_its_attempts_on_screen(tmp_path: Path) -> None:
    app = app_for(tmp_path, Script(delay={"slow": 30.0}))
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        await started(pilot, app, chain_spec(tmp_path, [("first", []), ("slow", ["first"])]))
        await until(pilot, lambda: box_status(app, "slow") == StepStatus.RUNNING, "running")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the replan question")
        await pilot.press("y")
        await until(pilot, lambda: notes.has("Replanned"), "the replan")
        screen = app.screen
        assert isinstance(screen, DirectiveScreen)
        await until(pilot, lambda: box(app, "first").carried_from is not None, "the new chain")
        screen.dag.focus_step(box(app, "first").id)
        body = screen.query_one("#detail-body", Static)
        await until(  # the panel has switched to the kept step (it showed slow's)
            pilot, lambda: "kept by a replan" in printed(body.content), "the kept step's panel"
        )
        assert "#1 shell" in printed(body.content)
        assert "Evaluations" in printed(body.content)
        await pilot.press("D")
        # its attempt is found (under the old chain's step): no diff for want of git
        await until(pilot, lambda: notes.has("No diff to show", "warning"), "what D found")
        assert not notes.has("has no attempt yet")


async def test_breaker_banner_and_raising_the_limit(tmp_path: Path) -> None:
    script = Script(costs={"spend": 2.0})
    app = app_for(tmp_path, script)
    async with app.run_test(size=SIZE) as pilot:
        spec = chain_spec(tmp_path, [("spend", []), ("after", ["spend"])], max_cost_usd=1.0)
        did = await started(pilot, app, spec)
        await until(
            pilot, lambda: directive_status(app, did, DirectiveStatus.PAUSED), "the breaker"
        )
        bars = app.screen.query_one(BudgetBars)
        await until(pilot, lambda: bars.has_class("-tripped"), "the banner")
        assert "cost breaker" in plain_text(bars)
        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, LimitsModal), "the limits modal")
        field = app.screen.focused
        assert field is not None and field.id == "limit-max_cost_usd"
        assert "Save and resume" in str(app.screen.query_one("#save").label)  # type: ignore[attr-defined]
        field.value = "abc"  # type: ignore[attr-defined]
        await pilot.press("enter")  # not a number: shown inline
        await pilot.pause()
        assert isinstance(app.screen, LimitsModal)
        assert "is not a number" in plain_text(app.screen.query_one("#error-max_cost_usd"))
        field.value = "50"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(
            pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "completion"
        )
        d = await engine(app).store.get_directive(did)
        assert d.spec.limits.max_cost_usd == 50.0
        assert not bars.has_class("-tripped")


async def test_a_limit_raised_elsewhere_turns_the_breaker_banner_into_a_resume(
    tmp_path: Path,
) -> None:
    """`directive-tui limits` raised the limit from another terminal, and the
    banner still read "cost breaker: cost $2.00 reached the limit $1.00"
    with L to raise it. It says the limit was raised, and p resumes."""
    app = app_for(tmp_path, Script(costs={"spend": 2.0}))
    async with app.run_test(size=SIZE) as pilot:
        spec = chain_spec(tmp_path, [("spend", []), ("after", ["spend"])], max_cost_usd=1.0)
        did = await started(pilot, app, spec)
        bars = app.screen.query_one(BudgetBars)
        await until(pilot, lambda: bars.has_class("-tripped"), "the banner")
        await engine(app).raise_limits(did, max_cost_usd=50.0)  # as the command does
        await until(pilot, lambda: bars.has_class("-paused"), "the banner to follow")
        assert not bars.has_class("-tripped")
        assert (
            "paused by the cost breaker; its limit has been raised since  p resume"
            in plain_text(bars)
        )
        await pilot.press("p")
        await until(
            pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "completion"
        )


async def test_dag_focus_follows_arrows_and_hjkl(tmp_path: Path) -> None:
    script = Script(delay={"a": 30.0})
    app = app_for(tmp_path, script)
    async with app.run_test(size=SIZE) as pilot:
        await started(
            pilot,
            app,
            chain_spec(tmp_path, [("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"])]),
        )
        dag = app.screen.query_one(DagView)
        await until(pilot, lambda: dag.steps, "the chain")
        assert dag.has_focus

        def focused() -> str | None:
            return dag.focused_step.name if dag.focused_step else None

        assert focused() == "a"
        await pilot.press("right")
        assert focused() == "b"
        await pilot.press("j")
        assert focused() == "c"
        await pilot.press("up")
        assert focused() == "b"
        await pilot.press("l")
        assert focused() == "d"
        await pilot.press("h", "h")
        assert focused() == "a"
        await pilot.press("left")  # nothing further left: stays
        assert focused() == "a"
        await until(pilot, lambda: _detail_name(app) == "a", "the detail panel")
        await pilot.press("right")
        await until(pilot, lambda: _detail_name(app) == "b", "the detail panel to follow")


async def test_home_lists_directives_and_opens_one(tmp_path: Path) -> None:
    script = Script()
    app = app_for(tmp_path, script)
    async with app.run_test(size=(80, 24)) as pilot:
        notes = Notes(app)
        await until(pilot, lambda: app.engine_ready, "the engine")
        d = await engine(app).create_directive(chain_spec(tmp_path, [("only", [])]))
        await until(pilot, lambda: d.id in app.screen.directives, "the row")  # type: ignore[attr-defined]
        assert isinstance(app.screen, HomeScreen)
        await pilot.press("s")
        await until(
            pilot, lambda: directive_status(app, d.id, DirectiveStatus.COMPLETED), "completion"
        )
        await until(
            pilot, lambda: app.screen.directives[d.id].status is DirectiveStatus.COMPLETED, "row"
        )  # type: ignore[attr-defined]
        await pilot.press("x")  # the selected row is done: said, not asked
        await until(pilot, lambda: notes.has("test directive is completed: nothing to stop."),
                    "the plain refusal")  # fmt: skip
        assert isinstance(app.screen, HomeScreen)
        await pilot.press("enter")
        await until(pilot, lambda: loaded(app), "the directive screen")
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)


async def test_a_draft_opened_from_home_offers_start(tmp_path: Path) -> None:
    app = app_for(tmp_path, Script())
    async with app.run_test(size=(80, 24)) as pilot:
        notes = Notes(app)
        await until(pilot, lambda: app.engine_ready, "the engine")
        d = await engine(app).create_directive(chain_spec(tmp_path, [("only", [])]))
        app.open_directive_screen(d.id)
        await until(pilot, lambda: loaded(app), "the directive screen")
        assert footer_keys(app.screen) == ["escape", "s", "x", "L"]
        await pilot.press("s")
        await until(pilot, lambda: directive_status(app, d.id, DirectiveStatus.COMPLETED), "done")
        # said as the app follows the events; the completion was read from the store
        await until(pilot, lambda: notes.has("planned: test"), "the plan, said")
        assert notes.has("started: test directive, planning…")


async def test_home_catches_up_with_what_happened_while_a_directive_was_open(
    tmp_path: Path,
) -> None:
    app = app_for(tmp_path, Script(delay={"only": 0.3}))
    async with app.run_test(size=(100, 30)) as pilot:
        did = await started(pilot, app, chain_spec(tmp_path, [("only", [])]))
        home = app.screen_stack[-2]
        assert isinstance(home, HomeScreen)
        await until(
            pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "completion"
        )
        await pilot.press("escape")
        assert app.screen is home
        await until(
            pilot, lambda: home.directives[did].status is DirectiveStatus.COMPLETED, "the row"
        )


async def test_new_directive_form_shows_errors_inline_and_saves_nothing(tmp_path: Path) -> None:
    app = app_for(tmp_path, Script())
    async with app.run_test(size=(100, 40)) as pilot:
        await open_the_form(pilot, app)
        screen = app.screen
        assert isinstance(screen, NewDirectiveScreen)
        await pilot.press("ctrl+s")  # checked by a worker: waited for, not slept on
        await until(pilot, lambda: "Title: required" in plain_text(screen.query_one("#error-title")),
                    "the title's error")  # fmt: skip
        assert "Repository: required" in plain_text(screen.query_one("#error-repo"))
        # A directive file with a mistake: the loader's message, under the path.
        bad = tmp_path / "bad.toml"
        bad.write_text('title = "x"\ngoal = "y"\nrepo = "missing-folder"\n')
        screen.query_one("#field-file").value = str(bad)  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "bad.toml" in plain_text(screen.query_one("#error-file")),
                    "the file's error")  # fmt: skip
        assert await engine(app).store.list_directives() == []
        # The form, filled in properly.
        screen.query_one("#field-file").value = ""  # type: ignore[attr-defined]
        for name, value in {
            "title": "Tidy",
            "goal": "Tidy up",
            "repo": str(tmp_path),
            "max_cost_usd": "-3",
        }.items():
            screen.query_one(f"#field-{name}").value = value  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "Max cost" in plain_text(screen.query_one("#error-max_cost_usd")),
                    "the limit's error")  # fmt: skip
        assert await engine(app).store.list_directives() == []
        screen.query_one("#field-max_cost_usd").value = "3"  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, HomeScreen), "back home")
        [created] = await engine(app).store.list_directives()
        assert created.title == "Tidy" and created.spec.limits.max_cost_usd == 3.0
        assert created.status is DirectiveStatus.DRAFT
        # The form's plans have no commands: its executor is one that works from words.
        assert created.spec.planner is PlannerKind.TEMPLATE
        assert created.spec.executor is ExecutorKind.AGENT


async def test_the_form_offers_no_executor_its_plans_cannot_run(tmp_path: Path) -> None:
    from textual.widgets import Select
    from textual.widgets.select import InvalidSelectValueError

    app = app_for(tmp_path, Script())
    async with app.run_test(size=(100, 40)) as pilot:
        await open_the_form(pilot, app)
        executors = app.screen.query_one("#field-executor", Select)
        assert executors.value == ExecutorKind.AGENT.value
        with pytest.raises(InvalidSelectValueError):  # "has no command" at step 1
            executors.value = ExecutorKind.SHELL.value
        assert "directive file" in plain_text(app.screen.query_one(".form-note"))


async def test_help_lists_every_key_and_palette_has_every_action(tmp_path: Path) -> None:
    from tui.commands import screen_commands

    script = Script(delay={"a": 30.0})
    app = app_for(tmp_path, script)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("a", [])], autonomy=Autonomy.GUARDRAILS))
        screen = app.screen
        assert isinstance(screen, DirectiveScreen)
        await until(  # the step keys follow the focused step: running, it is neither
            pilot,  # retried nor skipped
            lambda: [s.status for s in screen.dag.steps] == [StepStatus.RUNNING],
            "the step to run",
        )
        actions = {action for _, _, _, action in screen_commands(screen)}
        described = {b.action for b in DirectiveScreen.BINDINGS if b.description}  # type: ignore[union-attr]
        # Active, its one step running, nothing to answer: what does not apply is left out.
        assert described - actions == {
            "resume",
            "start",
            "result_ended",  # G's footer form: the palette has G as "result"
            "retry_step",
            "skip_step",
            "approval('approve')",
            "approval('deny')",
            "approval('request_changes')",
            "approval('decide')",  # `a` on an escalation
        }
        assert "move('up')" in actions  # the DAG's keys too
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        help_text = " ".join(f"{k} {d}" for _, keys in app.screen.sections for k, d in keys)  # type: ignore[attr-defined]
        for word in ("Pause", "Limits", "Step up", "ctrl+p"):
            assert word in help_text
        for word in ("Resume", "Start", "Retry step", "Skip step", "Approve", "Deny", "Changes"):
            assert word not in help_text  # do not apply now
        await pilot.press("escape")
        assert isinstance(app.screen, DirectiveScreen)


async def test_an_escalation_replan_with_no_replans_left_is_refused_before_the_engine(
    tmp_path: Path,
) -> None:
    """As `r` does: no replans left, so choosing Replan would only trip the
    breaker and pause the directive; it is refused with the way out."""
    script = Script(scores={"build": [0.1]})
    app = app_for(tmp_path, script)
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        spec = chain_spec(tmp_path, [("build", [])], max_rework_cycles=0, max_chain_regenerations=0)
        did = await started(pilot, app, spec)
        await until(pilot, lambda: box_status(app, "build") == StepStatus.BLOCKED, "blocked")
        (escalation,) = await engine(app).store.pending_approvals(did)
        assert await app.answer_approval(escalation.id, ApprovalDecision.REPLAN) is False
        await until(pilot, lambda: notes.has("has used its replans (0/0)", "warning"), "why")
        d = await engine(app).store.get_directive(did)
        assert d.status is DirectiveStatus.ACTIVE and d.regenerations == 0
        assert (await engine(app).store.get_approval(escalation.id)).pending


async def test_run_file_opens_its_screen_and_bad_file_is_reported(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    repo = tmp_path / "repo"
    repo.mkdir()
    good.write_text(
        'title = "From a file"\ngoal = "g"\nrepo = "repo"\nexecutor = "noop"\n'
        "[verifiers]\nauto_detect = false\nllm_judge = false\n"
        '[[steps]]\nname = "one"\n'
    )
    app = app_for(tmp_path, Script(), start_file=good)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: loaded(app), "the directive screen")
        [d] = await engine(app).store.list_directives()
        assert d.title == "From a file"
    bad = tmp_path / "bad.toml"
    bad.write_text("title = \n")
    app = app_for(tmp_path / "other", Script(), start_file=bad)
    (tmp_path / "other").mkdir()
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        await until(pilot, lambda: notes.has("bad.toml", "error"), "the file's error")
        assert isinstance(app.screen, HomeScreen)


# -- helpers -----------------------------------------------------------------


def _working(app: DirectiveApp, group: str) -> list[Any]:
    """The app's workers of `group` not finished yet."""
    return [w for w in app.workers if w.group == group and not w.is_finished]


def _detail_name(app: DirectiveApp) -> str | None:
    from tui.widgets.step_detail import StepDetail

    detail = app.screen.query_one(StepDetail)
    return detail.step.name if detail.step else None


# -- the offline demo, driven from the keyboard ---------------------------------


def _demo_state(app: DirectiveApp) -> dict[str, StepStatus]:
    dag = dag_of(app)
    return {s.name: s.status for s in dag.steps} if dag else {}


def _demo_waits(app: DirectiveApp) -> bool:
    """A step shows ⚑ and the screen holds its approval (what `a` answers)."""
    screen = app.screen
    waiting = StepStatus.AWAITING_APPROVAL in _demo_state(app).values()
    return waiting and isinstance(screen, DirectiveScreen) and bool(screen.approvals)


async def test_demo_driven_by_keys_to_completion(tmp_path: Path) -> None:
    pytest.importorskip("engine.demo")
    app = DirectiveApp(tmp_path / "demo.db", demo=True, demo_root=tmp_path / "demo")
    async with app.run_test(size=(120, 34)) as pilot:
        await until(pilot, lambda: loaded(app), "the demo's screen", rounds=3000)
        did = app.screen.directive_id  # type: ignore[attr-defined]
        await until(
            pilot,
            lambda: _demo_waits(app),
            "the yellow step and its approval",
            rounds=3000,
        )
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the approval modal")
        await pilot.press("y")
        await until(
            pilot,
            lambda: directive_status(app, did, DirectiveStatus.COMPLETED),
            "completion",
            rounds=3000,
        )
        dag = dag_of(app)
        assert dag is not None
        # the boxes follow the events; the completion was read from the store
        await until(pilot, lambda: all(s.status is StepStatus.PASSED for s in dag.steps),
                    "every box green")  # fmt: skip
        assert any(s.rework_count > 0 for s in dag.steps)  # the red step was reworked
        assert app.demo_repo is not None and (app.demo_repo / "tally").is_dir()
        # Where the demo's repository is stays findable: home's title, and the
        # line the command prints once the app has closed.
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)
        assert str(app.demo_repo / "tally") in plain_text(app.screen.query_one("#home-title"))
    assert app.farewell == f"The demo's repository: {app.demo_repo / 'tally'}"


async def test_demo_auto_approves_by_itself(tmp_path: Path) -> None:
    pytest.importorskip("engine.demo")
    app = DirectiveApp(
        tmp_path / "demo.db",
        demo=True,
        auto_approve=True,
        auto_delay_s=0.05,
        demo_root=tmp_path / "demo",
    )
    async with app.run_test(size=(120, 34)) as pilot:
        await until(pilot, lambda: loaded(app), "the demo's screen", rounds=3000)
        did = app.screen.directive_id  # type: ignore[attr-defined]
        await until(
            pilot,
            lambda: directive_status(app, did, DirectiveStatus.COMPLETED),
            "completion",
            rounds=3000,
        )
        answered = await engine(app).store.list_approvals(did)
        assert answered and all(a.comment == "answered by --auto" for a in answered)
        # The log keeps where the demo's repository is, after the title has gone.
        events = await engine(app).store.list_events(did)
        notes = [e.message for e in events if e.type == "notice"]
        assert f"demo repository: {tmp_path / 'demo' / 'tally'}" in notes


def test_start_up_imports_nothing_slow(tmp_path: Path) -> None:
    """The first frame must not wait for the Anthropic SDK: run the app to
    its first screen in a fresh interpreter and look at what it imported."""
    import subprocess
    import sys

    code = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from tui.app import DirectiveApp\n"
        "async def main():\n"
        f"    app = DirectiveApp(Path({str(tmp_path / 'x.db')!r}))\n"
        "    async with app.run_test() as pilot:\n"
        "        while not app.engine_ready:\n"
        "            await pilot.pause(0.01)\n"
        "asyncio.run(main())\n"
        "print('anthropic' in sys.modules)\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "ANTHROPIC_API_KEY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parent.parent, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


async def test_a_confirm_question_shows_brackets_in_names_as_written() -> None:
    """Step and branch names go into confirm questions: `[...]` in them is
    text, not markup to interpret (or to fail on)."""
    from textual.app import App
    from textual.widgets import Static

    question = "Reset to #2 fix [bold]parser[/] [y]?"
    app = App()
    async with app.run_test() as pilot:
        app.push_screen(ConfirmModal(question, "Reset", danger=True))
        await until(pilot, lambda: app.screen.query(".dialog-title"), "the confirm modal")
        title = app.screen.query_one(".dialog-title", Static)
        assert str(title.render()) == question


async def test_the_event_log_shows_more_of_a_line_once_the_terminal_is_wider() -> None:
    """A line cut at 80 columns shows in full after the terminal is widened
    (it stayed cut at the width it was written)."""
    from textual.app import App, ComposeResult

    from engine.events import Notice
    from tui.widgets.event_log import EventLog

    message = "approval needed: step add-vat scored 0.75 (yellow): " + "pytest 12/12 " * 8 + "end"

    class LogOnly(App[None]):
        def compose(self) -> ComposeResult:
            yield EventLog()

    app = LogOnly()
    async with app.run_test(size=(80, 10)) as pilot:
        log = app.query_one(EventLog)
        log.add_events([Notice(directive_id="d", message=message)])
        await pilot.pause()
        assert "…" in log.render_line(0).text and "end" not in log.render_line(0).text
        await pilot.resize_terminal(200, 10)
        await pilot.pause()
        assert log.render_line(0).text.rstrip().endswith(message)


async def test_live_output_keeps_the_end_of_a_padded_line() -> None:
    """pytest pads its progress to 80 columns before "[100%]": the narrow
    step panel shows the percentage, not the padding."""
    from textual.app import App, ComposeResult

    from engine.models import Step, StepSpec
    from tui.widgets.step_detail import StepDetail

    class DetailOnly(App[None]):
        def compose(self) -> ComposeResult:
            yield StepDetail()

    app = DetailOnly()
    async with app.run_test(size=(40, 10)) as pilot:
        detail = app.query_one(StepDetail)
        spec = StepSpec(name="check", type="test")
        detail.show(Step(chain_id="c", directive_id="d", name="check", spec=spec,
                         status=StepStatus.RUNNING), [], [], [])  # fmt: skip
        detail.output("pytest", "....." + " " * 60 + "[100%]")
        await pilot.pause()
        assert "pytest: .....  [100%]" in printed(detail.query_one("#detail-tail", Static).content)


# -- reading the event log ------------------------------------------------------


def _highlighted(log: Any) -> list[str]:
    """The event-log lines drawn with the highlight, as text."""
    cursor = log.look("event-log--cursor").bgcolor
    strips = [log.render_line(y) for y in range(log.scrollable_content_region.height)]
    return [
        strip.text.strip()
        for strip in strips
        if any(s.style is not None and s.style.bgcolor == cursor for s in strip)
    ]


def _shown(log: Any) -> list[str]:
    """The event-log lines on screen, as text, without their clocks."""
    height = log.scrollable_content_region.height
    return [log.render_line(y).text.strip()[9:] for y in range(height)]


async def test_enter_on_a_long_event_shows_all_of_it(tmp_path: Path) -> None:
    """Focused, the log moves a highlighted line with the arrows, and Enter
    shows that event whole, wrapped, in a dialog: on screen the line is cut
    at the view's width."""
    from tui.modals.event_text import EventText
    from tui.widgets.event_log import EventLog

    error = "compile error: " + "expected ')' after the argument list; " * 5 + "the end"
    app = app_for(tmp_path, Script(fail={"build": error}))
    async with app.run_test(size=(80, 24)) as pilot:
        did = await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(pilot, lambda: engine(app).store.pending_approvals(did), "the escalation")
        # Nothing moves until a person answers; the log then has every event
        # (a line added later would move the highlight the arrows count on).
        await engine(app).wait_settled(did, timeout=30)
        await followed(pilot, app, did)
        screen = app.screen
        log = screen.query_one(EventLog)
        assert _highlighted(log) == []  # nothing changes without the focus
        failed = next(i for i, row in enumerate(log.lines) if error in row[1])
        log.focus()
        await pilot.pause()
        assert _highlighted(log) == [
            log.render_line(log.scrollable_content_region.height - 1).text.strip()
        ]
        await pilot.press(*["up"] * (len(log.lines) - 1 - failed))
        (line,) = _highlighted(log)
        assert line.endswith("…") and "the end" not in line
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, EventText), "the event's text")
        text = app.screen.query_one("#event-text", Static)
        assert error in str(text.content) and text.size.height > 1  # wrapped, not cut
        assert footer_keys(app.screen) == ["escape"]
        await pilot.press("escape")
        assert app.screen is screen and log.has_focus
        assert _highlighted(log) == [line]


async def test_the_log_follows_new_events_unless_the_highlight_was_moved_up() -> None:
    import inspect

    from textual.app import App, ComposeResult
    from textual.widgets import Button

    from engine.events import Notice
    from tui.widgets.event_log import MAX_LINES, EventLog

    class LogAndButton(App[None]):
        CSS_PATH = Path(inspect.getfile(DirectiveApp)).with_name("app.tcss")  # the highlight

        def compose(self) -> ComposeResult:
            yield Button("elsewhere")
            yield EventLog()

    app = LogAndButton()
    added = 0

    def add(count: int) -> None:
        nonlocal added
        log.add_events(Notice(directive_id="d", message=f"event {added + i}") for i in range(count))
        added += count

    async with app.run_test(size=(80, 10)) as pilot:
        log = app.query_one(EventLog)
        add(20)
        log.focus()
        await pilot.pause()
        assert _highlighted(log)[-1].endswith("event 19") and _shown(log)[-1] == "event 19"
        add(1)  # at the newest line the highlight follows
        await pilot.pause()
        assert _highlighted(log)[-1].endswith("event 20") and _shown(log)[-1] == "event 20"
        await pilot.press("up", "k", "up")
        before = _shown(log)
        add(5)  # moved up, it stays on its event and the view stays put
        await pilot.pause()
        assert _highlighted(log)[-1].endswith("event 17") and _shown(log) == before
        await pilot.press("home")
        assert _highlighted(log)[-1].endswith("event 0") and _shown(log)[0] == "event 0"
        await pilot.press("pagedown", "j")
        assert _highlighted(log)[-1].endswith(f"event {log.scrollable_content_region.height}")
        await pilot.press("end")
        add(1)
        await pilot.pause()
        assert _highlighted(log)[-1].endswith("event 26") and _shown(log)[-1] == "event 26"
        # The oldest lines go at MAX_LINES: the highlight keeps its event.
        add(MAX_LINES - len(log.lines))
        await pilot.press("up", "up")
        before = _shown(log)
        add(10)
        await pilot.pause()
        assert _highlighted(log)[-1].endswith(f"event {added - 13}") and _shown(log) == before
        # Away from the log there is no highlight, and the view follows again.
        await pilot.press("shift+tab")
        add(1)
        await pilot.pause()
        assert _highlighted(log) == [] and _shown(log)[-1] == f"event {added - 1}"


async def test_replan_on_a_directive_whose_first_plan_failed_says_there_is_no_plan(
    tmp_path: Path,
) -> None:
    class Unplannable:
        async def plan(self, d: Any, replan: Any) -> Any:
            raise RuntimeError("Overloaded (529)")

    kit = services(Script())
    kit.planner = lambda kind, llm: Unplannable()
    app = DirectiveApp(tmp_path / "tui.db", services=kit)
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        did = await started(pilot, app, chain_spec(tmp_path, [("a", [])]))
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.PAUSED), "paused")
        await pilot.press("r")
        await until(pilot, lambda: notes.has("has no plan to replace yet", "warning"), "why")
        assert not isinstance(app.screen, ConfirmModal)  # nothing to confirm


def flaky_planning(failures: int) -> Any:
    """Engine services whose planner is overloaded `failures` times, then plans."""
    kit = services(Script())
    planner_for = kit.planner
    left = [failures]

    class Flaky:
        def __init__(self, planner: Any) -> None:
            self.planner = planner

        async def plan(self, d: Any, replan: Any) -> Any:
            if left[0] > 0:
                left[0] -= 1
                raise RuntimeError("Overloaded (529)")
            return await self.planner.plan(d, replan)

    kit.planner = lambda kind, llm: Flaky(planner_for(kind, llm))
    return kit


async def test_resuming_into_a_plan_that_fails_again_says_so_not_resumed(
    tmp_path: Path,
) -> None:
    """A directive whose first plan failed is resumed into planning: the
    app says it plans again, then that it is paused again and why, never
    "resumed"; once the planner works, that it was planned."""
    app = DirectiveApp(tmp_path / "tui.db", services=flaky_planning(2))
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        did = await started(pilot, app, chain_spec(tmp_path, [("a", [])]))
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.PAUSED), "paused")
        await pilot.press("p")  # the planner fails again
        await until(pilot, lambda: notes.has("is paused again", "error"), "the pause, said")
        assert notes.has("planning again: test directive…")
        assert notes.has("test directive is paused again: planning failed: Overloaded (529) "
                         "(resume to plan again)", "error")  # fmt: skip
        assert not notes.has("resumed")
        # said as the app follows the events; the screen applies them after
        # (and `p` resumes only once it shows the directive paused)
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.PAUSED), "paused")
        await pilot.press("p")  # now it plans
        await until(pilot, lambda: notes.has("planned: test directive"), "the plan, said")
        assert not notes.has("resumed")
        await until(
            pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "completion"
        )


async def test_a_file_run_whose_first_plan_fails_says_it_is_paused_and_why(
    tmp_path: Path,
) -> None:
    (tmp_path / "repo").mkdir()
    good = tmp_path / "good.toml"
    good.write_text(
        'title = "From a file"\ngoal = "g"\nrepo = "repo"\nexecutor = "noop"\n'
        "[verifiers]\nauto_detect = false\nllm_judge = false\n"
        '[[steps]]\nname = "one"\n'
    )
    app = DirectiveApp(tmp_path / "tui.db", services=flaky_planning(1), start_file=good)
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        await until(pilot, lambda: notes.has("From a file is paused: planning failed: "
                    "Overloaded (529)", "error"), "the pause, said")  # fmt: skip
        assert notes.has("started: From a file, planning…")
        assert not notes.has("paused again")  # it had never been paused


async def test_changes_to_a_plan_ask_for_what_the_planner_should_change(tmp_path: Path) -> None:
    """A plan has no rework: the comment is what the new plan is asked for."""
    from textual.widgets import Input

    app = app_for(tmp_path, Script())
    async with app.run_test(size=SIZE) as pilot:
        did = await started(pilot, app, chain_spec(tmp_path, [("a", [])], autonomy=Autonomy.MANUAL))
        await until(pilot, lambda: _has_pending(app, did), "the plan approval")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the changes modal")
        placeholder = app.screen.query_one("#comment", Input).placeholder
        assert placeholder == "what to change in the plan (required: the planner is asked for it)"


def _has_pending(app: DirectiveApp, did: str) -> bool:
    screen = app.screen
    return isinstance(screen, DirectiveScreen) and bool(screen.approvals)


async def test_q_quits_from_a_directive_screen_as_from_home_asking_while_steps_run(
    tmp_path: Path,
) -> None:
    app = app_for(tmp_path, Script(delay={"slow": 30.0}))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("slow", [])]))
        await until(pilot, lambda: box_status(app, "slow") == StepStatus.RUNNING, "running")
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the quit question")
        await pilot.press("y")
        await until(pilot, lambda: not app.is_running, "the app to close")


async def test_a_dialog_opening_clears_the_toasts_that_would_lie_over_its_buttons(
    tmp_path: Path,
) -> None:
    """At 80x24 a toast covers a dialog's lower part for its whole timeout."""
    app = app_for(tmp_path, Script(delay={"slow": 30.0}))
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("slow", [])]))
        app.notify("said a moment ago", timeout=30)
        await until(pilot, lambda: app.screen.query("Toast"), "the toast")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the stop question")
        await pilot.pause(0.3)
        assert not app.screen.query("Toast")
        await pilot.press("escape")
