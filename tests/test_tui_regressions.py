"""Regressions a reviewer found after a day of changes: what a screen
showed that it should not have (a key hint cut off, an old score, the
old theme's colours, a cut error) and what it said differently from the
command line or from another key. Each test drives the real app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.models import DirectiveStatus, StepStatus
from tests.engine_kit import Script, chain_spec
from tests.tui_kit import SIZE, app_for, box_status, engine, started, until
from tui.app import DirectiveApp


def screen_text(app: DirectiveApp) -> str:
    """What the terminal shows, as plain text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_escalation_buttons_name_their_keys_in_full_once_the_note_is_left(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    """After `enter` left the note the buttons read `Retry     Skip [s]
    Replan    Stop [x]`: a button kept the width of its first label
    ("Retry"), and "Retry [r]" wrapped onto a hidden second line; at 80
    columns "Cancel [esc]" was cut too. Every label shows whole."""
    from textual.widgets import Button

    from tui.modals.approval import ApprovalModal

    app = app_for(tmp_path, Script(fail={"build": "exit 1"}))
    async with app.run_test(size=size) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(pilot, lambda: box_status(app, "build") == StepStatus.FAILED, "failed")
        screen = app.screen
        await until(pilot, lambda: bool(screen.approvals), "the escalation")  # type: ignore[attr-defined]
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the dialog")
        modal = app.screen
        shown = screen_text(app)
        for label in ("Retry", "Skip", "Replan", "Stop", "Cancel [esc]"):
            assert label in shown, label
        await pilot.press("enter")
        await until(
            pilot,
            lambda: str(modal.query_one("#choice-retry", Button).label) == "Retry [r]",
            "the keys named",
        )
        await pilot.pause()
        shown = screen_text(app)
        for label in ("Retry [r]", "Skip [s]", "Replan [p]", "Stop [x]", "Cancel [esc]"):
            assert label in shown, label


def step_panel(app: DirectiveApp) -> str:
    """The step panel's text (its header, attempts and evaluations)."""
    from textual.widgets import Static

    from tests.tui_kit import printed
    from tui.widgets.step_detail import StepDetail

    detail = app.screen.query_one(StepDetail)
    return printed(detail.query_one("#detail-body", Static).content)


def status_line(app: DirectiveApp, name: str) -> str:
    """The status line of a step's box, as the DAG draws it."""
    from tests.tui_kit import box, dag_of

    dag = dag_of(app)
    assert dag is not None
    step = box(app, name)
    drawn = dag.geometry.boxes[dag.geometry.by_id[step.id]]
    line = dag.render_line(drawn.y + 2 - int(dag.scroll_y)).text
    return line[drawn.x - int(dag.scroll_x) :][:24]


async def test_a_step_running_again_shows_no_score_of_its_earlier_attempt(tmp_path: Path) -> None:
    """A step reworked after a yellow review showed `▶ running yellow 0.60`
    in the DAG and `▶ running  0.60 yellow` in the step panel while its next
    attempt ran, and `– unfinished Y 0.60` once the directive was stopped:
    the score of an attempt that no longer stands. A score shows only with
    the verdict it is (here: the review awaiting approval)."""
    import asyncio

    from engine.models import ApprovalDecision, DirectiveStatus
    from tests.tui_kit import awaiting, directive_status, engine, held_app

    gate = asyncio.Event()
    gate.set()
    app = held_app(tmp_path, Script(scores={"build": [0.6, 1.0]}), {"build": gate})
    async with app.run_test(size=(120, 36)) as pilot:
        did = await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(pilot, lambda: awaiting(app, "build"), "the review")
        await until(pilot, lambda: "0.60" in step_panel(app), "the panel's score")
        assert "Y 0.60" in status_line(app, "build")
        gate.clear()  # the next attempt holds at its start
        (review,) = await engine(app).store.pending_approvals(did)
        await app.answer_approval(review.id, ApprovalDecision.REQUEST_CHANGES, "more")
        await until(pilot, lambda: box_status(app, "build") is StepStatus.RUNNING, "running again")
        await until(pilot, lambda: "running" in step_panel(app), "the panel following")
        assert "running" in status_line(app, "build")
        assert "0.60" not in status_line(app, "build")
        assert "0.60" not in step_panel(app).splitlines()[1]  # the header's status line
        await engine(app).stop_directive(did)
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.STOPPED), "stopped")
        await until(pilot, lambda: "unfinished" in status_line(app, "build"), "unfinished")
        assert "0.60" not in status_line(app, "build")
        await until(pilot, lambda: "unfinished" in step_panel(app), "the panel's unfinished")
        assert "0.60" not in step_panel(app).splitlines()[1]
        gate.set()


def colour_of(widget: Any, text: str) -> Any:
    """The colour `text` is drawn in on the screen, within `widget`."""
    region = widget.region
    strips = widget.app.screen._compositor.render_strips()
    for y in range(region.y, region.bottom):
        for segment in strips[y].crop(region.x, region.right):
            if text in segment.text:
                return segment.style.color if segment.style else None
    shown = "\n".join(s.text for s in strips)
    raise AssertionError(f"{text!r} not drawn in {widget!r} at {region}:\n{shown}")


async def test_a_theme_change_recolours_the_header_and_the_step_panel(tmp_path: Path) -> None:
    """Palette → Theme → textual-light recoloured the DAG, but the header's
    line and the step panel kept the old theme's colours (nearly unreadable
    on a light background) until another step was focused: both draw what
    they show again on a theme change."""
    from engine.models import DirectiveStatus
    from tests.tui_kit import directive_status
    from tui.widgets.header import DirectiveHeader
    from tui.widgets.step_detail import StepDetail

    app = app_for(tmp_path, Script())
    async with app.run_test(size=SIZE) as pilot:
        did = await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "done")
        await until(pilot, lambda: "passed" in step_panel(app), "the step shown")
        header = app.screen.query_one(DirectiveHeader)
        body = app.screen.query_one(StepDetail).query_one("#detail-body")
        await pilot.pause()  # drawn
        dark = (colour_of(header, "completed"), colour_of(body, "passed"))
        app.theme = "textual-light"
        await until(
            pilot, lambda: colour_of(header, "completed") != dark[0], "the header", rounds=200
        )
        await pilot.pause()
        assert colour_of(header, "completed") == header.look("look--passed").color
        assert colour_of(body, "passed") == header.look("look--passed").color
        assert colour_of(body, "passed") != dark[1]


async def test_the_escalation_dialog_shows_the_attempts_error_in_full(tmp_path: Path) -> None:
    """The escalation's summary is cut at 300 characters: the dialog lost
    the end of a long error, where it says where the attempt's files are
    kept, while `enter` on the same event in the log showed "The attempt's
    error in full". The dialog shows it whole too."""
    from textual.widgets import Static

    from tests.tui_kit import printed
    from tui.modals.approval import ApprovalModal

    error = "command exited with 1: " + "boom " * 80 + "(its files are kept in /tmp/kept/worktree)"
    app = app_for(tmp_path, Script(fail={"build": error}))
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        screen = app.screen
        await until(pilot, lambda: bool(screen.approvals), "the escalation")  # type: ignore[attr-defined]
        assert "/tmp/kept/worktree" not in screen.approvals[0].summary  # type: ignore[attr-defined]
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the dialog")
        shown = printed(app.screen.query_one("#approval-error-in-full", Static).content)
        assert "The attempt's error in full" in shown
        assert "(its files are kept in /tmp/kept/worktree)" in shown.replace("\n", "")


async def test_the_apps_merge_says_where_the_branch_was_and_how_to_undo(
    tmp_path: Path, make_git_repo: Any
) -> None:
    """`m` said only "Your branch main now points at f43a4f84d736", where
    the command line's `merge` says where it was and how to undo. The
    question names the old commit and the undo command, and so does the
    toast; the command, run, puts the branch back."""
    import shlex
    import subprocess

    from tests.conftest import git
    from tests.test_engine_worktrees import BASE, NO_LLM
    from tests.test_tui_git import completed_result, left_then_right
    from tests.tui_kit import Notes
    from tui.modals.confirm import ConfirmModal

    repo = make_git_repo(BASE)
    before = git(repo, "rev-parse", "HEAD").strip()
    app = DirectiveApp(tmp_path / "tui.db", services=NO_LLM)
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        await completed_result(pilot, app, left_then_right(repo))
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question")
        question = app.screen.question  # type: ignore[attr-defined]
        assert f"It is at {before[:12]} now" in question
        assert f"reset --keep {before[:12]}" in question
        await pilot.press("y")
        await until(pilot, lambda: notes.has("now points at"), "the fast-forward")
        said = next(m for _, m in notes.messages if "now points at" in m)
        assert f"(it was at {before[:12]})" in said
        undo = said.split("To undo: ", 1)[1]
        assert undo == f"git -C {shlex.quote(str(repo))} reset --keep {before[:12]}"
    assert git(repo, "rev-parse", "HEAD").strip() != before
    subprocess.run(shlex.split(undo), check=True, capture_output=True)
    assert git(repo, "rev-parse", "HEAD").strip() == before


async def test_stop_asks_the_same_question_from_every_key(tmp_path: Path) -> None:
    """The escalation's `x` asked "Stop X for good? Running steps are
    cancelled and its pending approvals closed."; `x` on the directive
    asked only "Stop X? Running steps are cancelled." and closed a pending
    approval all the same. One question, the fuller one, everywhere."""
    from tests.tui_kit import awaiting
    from tui.modals.approval import ApprovalModal
    from tui.modals.confirm import ConfirmModal

    app = app_for(tmp_path, Script(scores={"build": [0.6]}))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(pilot, lambda: awaiting(app, "build"), "the review")
        screen = app.screen
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question")
        from_the_directive = app.screen.question  # type: ignore[attr-defined]
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, "back")
    expected = (
        "Stop test directive for good? Running steps are cancelled and its pending"
        " approvals closed."
    )
    assert from_the_directive == expected

    app = app_for(tmp_path / "2", Script(fail={"build": "exit 1"}))
    (tmp_path / "2").mkdir()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        screen = app.screen
        await until(pilot, lambda: bool(screen.approvals), "the escalation")  # type: ignore[attr-defined]
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the dialog")
        await pilot.press("enter", "x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question")
        assert app.screen.question == expected  # type: ignore[attr-defined]


def toasts(app: DirectiveApp) -> list[Any]:
    from textual.widgets._toast import Toast

    return list(app.screen.query(Toast))


@pytest.mark.parametrize("leave", ["G", "escape"])
async def test_the_result_toast_goes_when_its_screen_does_or_g_is_pressed(
    tmp_path: Path, make_git_repo: Any, leave: str
) -> None:
    """ "Directive completed … press G to see the diff" stayed 15 s: it
    followed you home, where G does nothing, and sat over the diff G
    opened. It goes once G is pressed, or with the directive's screen."""
    from tests.test_engine_worktrees import BASE, NO_LLM
    from tests.test_tui_git import left_then_right
    from tests.tui_kit import Notes, directive_status
    from tui.screens.home import HomeScreen
    from tui.screens.result import ResultScreen

    def result_toast() -> bool:
        return any("press G" in str(t.render()) for t in toasts(app))

    repo = make_git_repo(BASE)
    app = DirectiveApp(tmp_path / "tui.db", services=NO_LLM)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        notes = Notes(app)
        did = await started(pilot, app, left_then_right(repo))
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "done")
        await until(pilot, lambda: notes.has("press G"), "the result toast")
        await until(pilot, result_toast, "the toast shown")
        await pilot.press(leave)
        gone_to = ResultScreen if leave == "G" else HomeScreen
        await until(pilot, lambda: isinstance(app.screen, gone_to), "the next screen")
        await pilot.pause()
        assert not result_toast()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_an_answer_s_toast_fits_one_line_of_the_toast(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    """An answer's toast cut the request's summary at 72 characters, which
    still wrapped to 2-3 lines in a toast at 80 columns (36 cells of text):
    it is cut to what one line holds, at 80 columns and wider."""
    from engine.models import ApprovalDecision
    from tests.tui_kit import awaiting

    app = app_for(tmp_path, Script(scores={"a-step-with-a-rather-long-name-indeed": [0.6]}))
    async with app.run_test(size=size, notifications=True) as pilot:
        did = await started(
            pilot, app, chain_spec(tmp_path, [("a-step-with-a-rather-long-name-indeed", [])])
        )
        await until(pilot, lambda: awaiting(app, "a-step-with-a-rather-long-name-indeed"), "asked")
        (review,) = await engine(app).store.pending_approvals(did)
        assert len(review.summary) > 72
        app.clear_notifications()
        assert await app.answer_approval(review.id, ApprovalDecision.APPROVE)
        await until(pilot, lambda: toasts(app), "the toast")
        await pilot.pause()
        (toast,) = [t for t in toasts(app) if str(t.render()).startswith("Approved")]
        text = str(toast.render())
        assert text.startswith("Approved: ") and text.endswith("…")
        assert toast.size.height == 1, (toast.size, text)  # (its padding aside)
        assert len(text) == toast.content_region.width, (len(text), toast.content_region)


async def test_the_checkpoints_say_what_r_resets_to_at_80_columns(
    tmp_path: Path, make_git_repo: Any
) -> None:
    """The checkpoints' border read `r / enter: reset to` and stopped, as
    if cut: it says to what, whole at 80 columns."""
    from tests.test_engine_worktrees import BASE, HALF, NO_LLM, OK, three_to_reset
    from tests.test_tui_git import open_result, scripted
    from tests.tui_kit import footer_keys

    repo = make_git_repo(BASE)
    app = DirectiveApp(tmp_path / "tui.db", services=NO_LLM)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app, scripted(repo, three_to_reset(), [HALF, OK]))
        await until(pilot, lambda: box_status(app, "s3") == "awaiting_approval", "s3 waits")
        screen = await open_result(pilot, app)
        await until(pilot, lambda: "r" in footer_keys(screen), "r, while it is active")
        await pilot.pause()
        assert "r / enter: reset to the selected checkpoint" in screen_text(app)


async def test_the_plan_dialog_claims_no_missing_evaluation(tmp_path: Path) -> None:
    """The plan dialog said "No evaluation behind this request.": a plan is
    never evaluated, so it says nothing of one."""
    from engine.models import Autonomy
    from tests.tui_kit import the_plan_dialog

    spec = chain_spec(tmp_path, [("one", [])], autonomy=Autonomy.MANUAL)
    app = app_for(tmp_path, Script())
    async with app.run_test(size=(100, 40)) as pilot:
        await the_plan_dialog(pilot, app, spec)
        await pilot.pause()
        assert "Approve the plan?" in screen_text(app)
        assert "No evaluation" not in screen_text(app)
