"""What a person at the keyboard ran into: keys that did nothing or said
the wrong thing, text cut off without a sign, and a start the app could
tell would fail at its first step."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.containers import ScrollableContainer
from textual.widget import Widget
from textual.widgets import Input

from engine.models import (
    ApprovalDecision,
    ApprovalKind,
    DirectiveStatus,
    ScriptedAttempt,
    StepSpec,
    StepStatus,
)
from tests.engine_kit import Script, chain_spec
from tests.tui_kit import (
    SIZE,
    Notes,
    app_for,
    awaiting,
    box_status,
    engine,
    footer_keys,
    open_the_form,
    plain_text,
    printed,
    started,
    until,
)
from tui.app import DirectiveApp
from tui.modals.approval import ApprovalModal, EvaluationView
from tui.screens.directive import DirectiveScreen
from tui.screens.help import help_sections
from tui.screens.home import HomeScreen
from tui.screens.new_directive import NewDirectiveScreen
from tui.widgets.approvals import ApprovalsPanel


async def test_enter_on_the_approvals_panel_of_a_directive_answers_the_row(
    tmp_path: Path,
) -> None:
    """As on home: the panel's rows are approvals, and Enter opens the one
    highlighted (it did nothing on a directive's screen)."""
    app = app_for(tmp_path, Script(scores={"build": [0.6]}))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(pilot, lambda: box_status(app, "build") == StepStatus.AWAITING_APPROVAL, "⚑")
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
    step review in hand beside one brings back the three."""
    app = app_for(tmp_path, Script(fail={"build": "exit 1"}, scores={"check": [0.6]}))
    async with app.run_test(size=SIZE) as pilot:
        did = await started(pilot, app, chain_spec(tmp_path, [("build", []), ("check", [])]))
        screen = app.screen
        assert isinstance(screen, DirectiveScreen)
        await until(pilot, lambda: len(screen.approvals) == 2, "an escalation and a review")
        screen.dag.focus_step(_step_id(screen, "check"))
        await until(pilot, lambda: "d" in footer_keys(screen), "the review's keys")
        assert footer_keys(screen)[1:4] == ["a", "d", "c"]
        assert ("a", "Approve") in help_sections(screen)[0][1]

        review = next(a for a in screen.approvals if a.kind is ApprovalKind.STEP_REVIEW)
        await engine(app).resolve_approval(review.id, ApprovalDecision.APPROVE)
        await until(pilot, lambda: len(screen.approvals) == 1, "the escalation alone")
        await until(pilot, lambda: "d" not in footer_keys(screen), "the footer to follow")
        assert "a" in footer_keys(screen)
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


async def test_the_footer_names_a_for_the_approval_it_answers(tmp_path: Path) -> None:
    """With a review and an escalation both pending, the footer said
    "a Approve" while the escalation was the one in hand, and `a` opened
    its retry/skip/replan/stop choice. It follows the approval the keys
    answer: the focused step's, or the approvals panel's highlighted row."""
    app = app_for(tmp_path, Script(fail={"build": "exit 1"}, scores={"check": [0.6]}))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("build", []), ("check", [])]))
        screen = app.screen
        assert isinstance(screen, DirectiveScreen)
        await until(pilot, lambda: len(screen.approvals) == 2, "an escalation and a review")

        screen.dag.focus_step(_step_id(screen, "build"))  # failed: its escalation
        await until(pilot, lambda: "d" not in footer_keys(screen), "Decide for the escalation")
        assert ("a", "Decide") in help_sections(screen)[0][1]
        screen.dag.focus_step(_step_id(screen, "check"))  # scored yellow: its review
        await until(pilot, lambda: "d" in footer_keys(screen), "Approve for the review")
        assert ("a", "Approve") in help_sections(screen)[0][1]

        await pilot.press("2")  # the approvals panel: its highlighted row is in hand
        panel = screen.query_one(ApprovalsPanel)
        await until(pilot, lambda: screen.focused is panel, "the panel focused")
        for _ in range(len(screen.approvals)):
            in_hand = panel.selected
            assert in_hand is not None
            decide = in_hand.kind is ApprovalKind.ESCALATION
            await until(
                pilot,
                lambda decide=decide: ("d" not in footer_keys(screen)) == decide,
                f"the footer to follow the {in_hand.kind.value} row",
            )
            await pilot.press("down")


def _step_id(screen: DirectiveScreen, name: str) -> str:
    return next(s.id for s in screen.dag.steps if s.name == name)


async def test_a_directive_that_needs_claude_is_not_started_without_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `directive-tui run` refuses such a file: started without
    ANTHROPIC_API_KEY, its first step failed at once and waited for a
    person. The form's Create and start says why under the executor and
    saves nothing; Create saves a draft, whose `s` says why too."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    app = DirectiveApp(tmp_path / "tui.db")  # the app's own services: Claude needs the key
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        await open_the_form(pilot, app)
        form = app.screen
        assert isinstance(form, NewDirectiveScreen)
        for name, value in {"title": "Tidy", "goal": "Tidy up", "repo": str(tmp_path)}.items():
            form.query_one(f"#field-{name}", Input).value = value
        await pilot.press("ctrl+r")
        error = form.query_one("#error-executor")
        await until(pilot, lambda: "ANTHROPIC_API_KEY" in plain_text(error), "why not")
        assert 'executor = "agent" needs ANTHROPIC_API_KEY, which is not set' in plain_text(error)
        await until(pilot, lambda: _in_view(error), "the form to scroll to it")
        assert app.screen is form
        assert await engine(app).store.list_directives() == []

        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, HomeScreen), "back home")
        [draft] = await engine(app).store.list_directives()
        await until(pilot, lambda: "s" in footer_keys(app.screen), "s offered for the draft")
        await pilot.press("s")
        await until(pilot, lambda: notes.has('Tidy: executor = "agent" needs', "error"), "why")
        assert (await engine(app).store.get_directive(draft.id)).status is DirectiveStatus.DRAFT


def _in_view(widget: Widget) -> bool:
    """Whether `widget` is inside the scrolled view that holds it."""
    view = next(a for a in widget.ancestors if isinstance(a, ScrollableContainer))
    return view.region.contains_region(widget.region)


async def test_a_mistake_below_the_fold_of_the_form_is_scrolled_into_view(tmp_path: Path) -> None:
    """At 30 rows the limits are below the fold: a bad one was marked
    where nobody could see it, and Create seemed to do nothing."""
    app = app_for(tmp_path, Script())
    async with app.run_test(size=SIZE) as pilot:
        await open_the_form(pilot, app)
        form = app.screen
        for name, value in {"title": "Tidy", "goal": "Tidy up", "repo": str(tmp_path)}.items():
            form.query_one(f"#field-{name}", Input).value = value
        form.query_one("#field-max_rework_cycles", Input).value = "lots"
        error = form.query_one("#error-max_rework_cycles")
        assert not _in_view(form.query_one("#field-max_rework_cycles"))
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "not a whole number" in plain_text(error), "the mistake")
        await until(pilot, lambda: _in_view(error), "the form to scroll to it")
        assert await engine(app).store.list_directives() == []


async def test_a_header_too_long_for_the_screen_ends_in_an_ellipsis(tmp_path: Path) -> None:
    """The header was wrapped onto a second line its one row never shows:
    the id went missing with nothing to say the line was cut."""
    from tui.widgets.header import DirectiveHeader

    app = app_for(tmp_path, Script(delay={"slow": 30.0}))
    async with app.run_test(size=(80, 24)) as pilot:
        spec = chain_spec(tmp_path, [("slow", [])]).model_copy(
            update={"title": "A title long enough to push the rest of the header off the line"}
        )
        did = await started(pilot, app, spec)
        header = app.screen.query_one(DirectiveHeader)
        # its chain and its status: the screen can read the directive while it
        # still plans, and the chain just after it was planned
        await until(pilot, lambda: box_status(app, "slow") == StepStatus.RUNNING, "running")
        await until(pilot, lambda: "active" in plain_text(header) and "1 steps" in plain_text(header),
                    "the header")  # fmt: skip
        await pilot.pause()
        line = "".join(s.text for s in header.render_line(0)).rstrip()
        assert line.startswith(" ▶ active  A title long enough")
        assert line.endswith("…") and did not in line


async def test_the_palette_has_one_keys_entry_the_help_of_question_mark(tmp_path: Path) -> None:
    """Textual's own "Keys" (a side panel) sat beside ours (`?`): two
    entries of one name that did different things."""
    from tui.commands import screen_commands

    app = app_for(tmp_path, Script())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine_ready, "the engine")
        ours = [(title, key) for title, key, _, _ in screen_commands(app.screen)]
        textual = [c.title for c in app.get_system_commands(app.screen)]
        assert ("Keys", "key: ?") in ours and "Keys" not in textual
        assert "Quit" in textual  # the rest of Textual's stay


async def test_help_names_the_panes_in_words_not_class_names(tmp_path: Path) -> None:
    """Home's help headed the tables' keys "DirectiveTable" and "ApprovalsPanel".
    The directives table binds no key of its own (Enter is the screen's Open)."""
    app = app_for(tmp_path, Script())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine_ready, "the engine")
        titles = [title for title, _ in help_sections(app.screen)]
        assert titles == ["This screen", "Pending approvals", "Everywhere"]


async def test_an_ended_directive_that_changed_nothing_says_no_changes_not_yet(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    from tests.test_engine_worktrees import BASE, NO_LLM, OK
    from tests.test_tui_git import completed_result, scripted, shown
    from tui.widgets.diff_log import DiffLog

    repo = make_git_repo(BASE)
    app = DirectiveApp(tmp_path / "tui.db", services=NO_LLM)
    async with app.run_test(size=SIZE) as pilot:
        spec = scripted(
            repo, [StepSpec(name="look", attempts=[ScriptedAttempt(summary="looked")])], [OK]
        )
        _, result = await completed_result(pilot, app, spec)
        text = shown(result.query_one(DiffLog))
        assert "No changes: git result is completed and no step changed anything." in text
        assert "yet" not in text


async def test_help_lists_each_key_once_and_only_the_keys_we_bind(tmp_path: Path) -> None:
    """The help listed the palette twice and, for every table and scroll
    view, Textual's ten scrolling keys again, under class names like
    "StepDetail". Those keys are one line under Everywhere now."""
    app = app_for(tmp_path, Script(scores={"build": [0.6]}))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(pilot, lambda: box_status(app, "build") == StepStatus.AWAITING_APPROVAL, "⚑")
        sections = dict(help_sections(app.screen))
        assert list(sections) == [
            "This screen",
            "The chain (DAG)",
            "Pending approvals",
            "The event log",
            "Everywhere",
        ]
        assert sections["Pending approvals"] == [("⏎", "Answer the highlighted request")]
        everywhere = [what for _, what in sections["Everywhere"]]
        assert sum("palette" in what.lower() for what in everywhere) == 1
        assert any(what.startswith("Move or scroll in the focused pane") for what in everywhere)
        listed = [what for keys in sections.values() for _, what in keys]
        assert not {"Scroll Up", "Page Left", "Focus Next", "Cursor up"} & set(listed)


def _seen(widget: Widget) -> bool:
    """Whether a person sees `widget`: the screen shows it at its middle
    (not clipped by its dialog, not under another widget)."""
    if not widget.display or not widget.region.area:
        return False
    x, y = widget.region.center
    try:
        return widget.screen.get_widget_at(x, y)[0] in (widget, *widget.walk_children())
    except Exception:  # noqa: BLE001 - outside the screen
        return False


async def test_at_80x24_the_request_changes_dialog_keeps_its_buttons_under_its_error(
    tmp_path: Path,
) -> None:
    """Enter with no comment shows "A comment is required…": the line pushed
    Request changes / Cancel out of the dialog. The evaluation above gives
    way (it scrolls); the comment, the error and the buttons stay."""
    app = app_for(tmp_path, Script(scores={"build": [0.6]}))
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(pilot, lambda: awaiting(app, "build"), "⚑, its approval on screen")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the changes dialog")
        modal = app.screen
        await pilot.press("enter")
        error = modal.query_one("#approval-error")
        await until(pilot, lambda: "A comment is required" in plain_text(error), "the error")
        await pilot.pause()
        for part in ("#comment", "#approval-error", "#choice-request_changes", "#cancel"):
            assert _seen(modal.query_one(part)), part


async def test_at_80x24_the_limits_dialog_keeps_its_buttons_under_four_errors(
    tmp_path: Path,
) -> None:
    """Four "is not a number" lines pushed Save / Cancel off the dialog:
    the fields scroll, the buttons stay, and the first mistake is shown."""
    from tui.modals.limits import LIMIT_FIELDS, LimitsModal

    app = app_for(tmp_path, Script(delay={"slow": 30.0}))
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("slow", [])]))
        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, LimitsModal), "the limits dialog")
        modal = app.screen
        for field in LIMIT_FIELDS:
            modal.query_one(f"#limit-{field.name}", Input).value = "x"
        modal.query_one(f"#limit-{LIMIT_FIELDS[-1].name}", Input).focus()
        await pilot.press("enter")
        first = modal.query_one(f"#error-{LIMIT_FIELDS[0].name}")
        await until(pilot, lambda: "is not a number" in plain_text(first), "the errors")
        await until(pilot, lambda: _seen(first), "the first mistake in view")
        assert modal.focused is modal.query_one(f"#limit-{LIMIT_FIELDS[0].name}")
        for button in ("#save", "#cancel"):
            assert _seen(modal.query_one(button)), button


async def test_the_budget_bars_keep_replans_and_failed_whatever_the_numbers(
    tmp_path: Path,
) -> None:
    """A figure wider than its half of the header wrapped onto a second line,
    and the bars' two rows then showed no replans / failed. Each bar keeps
    to its line, cut with "…" if it must."""
    from tui.widgets.budgets import BudgetBars

    app = app_for(tmp_path, Script(costs={"spend": 1e300}, delay={"slow": 30.0}))
    async with app.run_test(size=(80, 24)) as pilot:
        spec = chain_spec(tmp_path, [("spend", []), ("slow", ["spend"])], max_cost_usd=None)
        await started(pilot, app, spec)
        bars = app.screen.query_one(BudgetBars)
        await until(pilot, lambda: bars.directive and bars.directive.total_cost_usd, "the cost")
        await pilot.pause()
        lines = [bars.render_line(y).text for y in range(bars.size.height)]
        assert len(lines) == 2, lines
        assert lines[0].lstrip().startswith("cost") and "time" in lines[0]
        assert "…" in lines[0]  # the cost, cut
        assert lines[1].lstrip().startswith("replans") and "failed" in lines[1]


def _request_rows(panel: Widget) -> list[str]:
    """The lines the approvals table shows: its header, then a row each."""
    return [panel.render_line(y).text.rstrip() for y in range(panel.size.height)]


async def test_a_long_request_ends_in_an_ellipsis_with_no_sideways_scrollbar(
    tmp_path: Path,
) -> None:
    """The Request column took the whole text: cut mid-word by the pane with
    no "…", and a horizontal scrollbar, still there once the rows had gone.
    It fits the pane now, at every width, and Enter shows the whole text."""
    from tui.widgets.approvals import ApprovalsPanel

    app = app_for(tmp_path, Script(fail={"build": "the build said " + "words " * 50}))
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.engine_ready, "the engine")
        spec = chain_spec(tmp_path, [("build", [])]).model_copy(
            update={"title": "tally: discounts and VAT on invoices"}
        )
        d = await engine(app).create_directive(spec)
        await engine(app).start_directive(d.id)
        panel = app.screen.query_one(ApprovalsPanel)
        await until(pilot, lambda: panel.approvals, "the approval on home")
        (approval,) = panel.approvals
        for size in ((120, 30), (80, 24), (200, 40)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            row = _request_rows(panel)[1]
            assert row.endswith("…") and panel.max_scroll_x == 0, (size, row)
            assert not panel.show_horizontal_scrollbar
        app.open_directive_screen(d.id)  # its Approvals tab: the same table, no Directive
        await until(pilot, lambda: isinstance(app.screen, DirectiveScreen), "the directive")
        await pilot.press("2")
        tab = app.screen.query_one(ApprovalsPanel)
        await until(pilot, lambda: tab.approvals and tab.size.width, "the Approvals tab")
        await pilot.pause()
        assert _request_rows(tab)[1].endswith("…") and tab.max_scroll_x == 0
        await engine(app).resolve_approval(approval.id, ApprovalDecision.SKIP)
        await until(pilot, lambda: not tab.approvals, "the row to go")
        await pilot.pause()
        assert tab.max_scroll_x == 0 and not tab.show_horizontal_scrollbar
        await pilot.press("escape")
        await until(pilot, lambda: not panel.approvals, "home's row to go")
        await pilot.pause()
        assert panel.max_scroll_x == 0 and not panel.show_horizontal_scrollbar


async def test_two_directives_of_one_title_are_told_apart_by_a_short_id(tmp_path: Path) -> None:
    """Home showed the same title twice and nothing else to tell them apart.
    Each title has its id's first six characters after it (what `limits`,
    `events` ... take as an id). At 80 columns the titles give way first;
    where the id would leave a title under 12 cells, only titles two
    directives share keep theirs (the 80x24 home snapshot shows none)."""
    from tui.widgets.directive_table import DirectiveTable

    app = app_for(tmp_path, Script())
    async with app.run_test(size=(120, 24)) as pilot:
        await until(pilot, lambda: app.engine_ready, "the engine")
        made = []
        for title in ("tally: discounts and VAT on invoices",) * 2 + ("Speed up the tokenizer",):
            spec = chain_spec(tmp_path, [("build", [])]).model_copy(update={"title": title})
            made.append(await engine(app).create_directive(spec))
        table = app.screen.query_one(DirectiveTable)
        await until(pilot, lambda: len(table.rows) == 3, "the three rows")
        await pilot.pause()

        def row_of(directive_id: str) -> str:
            return table.render_line(1 + table.get_row_index(directive_id)).text

        first, second, other = made
        assert first.id[:6] != second.id[:6]
        for d in made:
            assert f"{d.title} " in row_of(d.id) and f" {d.id[:6]} " in row_of(d.id)
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: "…" in row_of(first.id), "the titles to give way")
        await pilot.pause()
        assert f" {first.id[:6]} " in row_of(first.id) and f" {second.id[:6]} " in row_of(second.id)
        assert "Speed up the" in row_of(other.id)  # a title keeps TITLE_MIN cells
        for d in made:
            assert row_of(d.id).rstrip().endswith("–")  # the Approvals column stays


async def test_a_failed_command_s_reason_is_shown_once_in_the_step_panel() -> None:
    """The attempt read `command exited with 1`, then `command exited with
    1: boom (its files are kept in …)`: the error begins with the summary."""
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    from engine.models import Step, StepRun
    from tests.tui_kit import printed
    from tui.widgets.step_detail import StepDetail

    class Panel(App[None]):
        def compose(self) -> ComposeResult:
            yield StepDetail(id="detail")

    step = Step(id="s1", chain_id="c", directive_id="d", name="build", layer=0, row=0,
                spec=StepSpec(name="build", type="implement"), status=StepStatus.FAILED)  # fmt: skip
    failed = StepRun(step_id="s1", directive_id="d", attempt=1, executor="shell", status="failed",
                     summary="command exited with 1",
                     error="command exited with 1: boom (its files are kept in /tmp/a1)")  # fmt: skip
    other = StepRun(step_id="s1", directive_id="d", attempt=2, executor="agent", status="failed",
                    summary="edited two files", error="the model gave up")  # fmt: skip
    app = Panel()
    async with app.run_test(size=(100, 30)) as pilot:
        app.query_one(StepDetail).show(step, [failed, other], [], [])
        await pilot.pause()
        shown = printed(app.query_one("#detail-body", Static).content)
        assert shown.count("command exited with 1") == 1
        assert "command exited with 1: boom (its files are kept in /tmp/a1)" in shown
        assert "edited two files" in shown and "the model gave up" in shown  # unlike: both


async def test_a_deny_dialog_at_80x24_opens_with_its_whole_title_in_view(tmp_path: Path) -> None:
    """Focus on the reason field scrolled the dialog one line: a two-line
    title read as the step name alone, its "Deny step" hidden."""
    name = "implement-the-very-long-step-name-for-vat-and-discounts-and-more-words"
    app = app_for(tmp_path, Script(scores={name: [0.6]}))
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [(name, [])]))
        await until(pilot, lambda: awaiting(app, name), "⚑, its approval on screen")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the deny dialog")
        await pilot.pause(0.2)
        assert app.screen.query_one("#approval-dialog").scroll_y == 0
        assert app.screen.focused is not None and app.screen.focused.id == "comment"


async def test_the_help_at_80x24_scrolls_to_its_last_line(tmp_path: Path) -> None:
    """Its body was taller than the dialog had room for: End stopped short
    of the Everywhere keys and "esc closes"."""
    from tui.screens.help import HelpScreen

    app = app_for(tmp_path, Script())
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("only", [])]))
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        body = app.screen.query_one("#help-body")
        dialog = app.screen.query_one("#help-dialog")
        assert body.region.bottom <= dialog.content_region.bottom


async def test_ctrl_q_quits_from_a_dialog_too(tmp_path: Path) -> None:
    """The README says it quits from any screen; in a dialog it did nothing."""
    from tui.screens.help import HelpScreen

    app = app_for(tmp_path, Script())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine_ready, "the engine")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: app.return_code is not None, "the app to quit")


async def test_the_approval_dialog_says_the_evaluation_s_summary_once(tmp_path: Path) -> None:
    """The request's summary quotes the evaluation's ("step build scored
    0.60 (yellow): yellow 0.60: ..."), and the dialog printed it a second
    time under the score; a step naming an unknown verifier read the same
    sentence three times."""
    app = app_for(tmp_path, Script(scores={"build": [0.6]}))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(pilot, lambda: awaiting(app, "build"), "⚑, its approval on screen")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the approval modal")
        modal = app.screen
        assert isinstance(modal, ApprovalModal) and modal.evaluation is not None
        said = modal.evaluation.summary
        assert said and said in modal.approval.summary
        evaluation = modal.query_one("#approval-evaluation", EvaluationView)
        shown = plain_text(modal.query_one("#approval-summary")) + printed(
            evaluation._render_evaluation()
        )
        assert shown.count(said) == 1
        assert "Evaluation  0.60 yellow" in shown  # the score and the verifiers stay
