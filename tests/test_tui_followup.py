"""A reviewer's day with the directive screen: what it showed could not be
told apart (names cut alike, attempts mixed in one tail), an answer was
given without seeing what it approved, and colour alone said what needed a
person. Each test drives the real app and shows what was wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.models import DirectiveStatus, FileEdit, StepSpec
from tests.engine_kit import Script, chain_spec
from tests.tui_kit import (
    SIZE,
    app_for,
    awaiting,
    dag_of,
    directive_status,
    engine,
    loaded,
    started,
    until,
)
from tui.app import DirectiveApp


async def box_lines(pilot: Any, app: DirectiveApp, step_id: str) -> tuple[str, str]:
    """The name line and the status line of a step's box, as drawn."""
    dag = dag_of(app)
    assert dag is not None
    dag.focus_step(step_id)
    await pilot.pause()
    box = dag.geometry.boxes[dag.geometry.by_id[step_id]]
    y = box.y - int(dag.scroll_y)
    x = box.x - int(dag.scroll_x)
    name = dag.render_line(y + 1).text[x : x + 24]
    status = dag.render_line(y + 2).text[x : x + 24]
    return name, status


async def test_long_step_names_stay_distinguishable_in_the_dag(tmp_path: Path) -> None:
    """Eight steps `worker-with-a-long-name-1..8` all read
    `worker-with-a-long-…`: a name is cut in the middle, so its end (what
    tells them apart) stays."""
    names = [f"worker-with-a-long-name-{n}" for n in range(1, 9)]
    app = app_for(tmp_path, Script())
    async with app.run_test(size=SIZE) as pilot:
        did = await started(pilot, app, chain_spec(tmp_path, [(n, []) for n in names]))
        await until(
            pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "completed"
        )
        dag = dag_of(app)
        assert dag is not None
        shown = [(await box_lines(pilot, app, s.id))[0] for s in dag.steps]
        assert len(set(shown)) == len(names), shown
        for step, line in zip(dag.steps, shown, strict=True):
            assert "…" in line
            assert line.strip(" │┃").endswith(step.name[-6:])


def modal_text(modal: Any, selector: str) -> str:
    from textual.widgets import Static

    from tests.tui_kit import printed

    return printed(modal.query_one(selector, Static).content)


async def test_a_step_review_shows_the_changed_files_and_opens_their_diff(
    tmp_path: Path, make_git_repo: Any
) -> None:
    """The review dialog showed the verifiers' results but not what the
    attempt changed, and no diff: a person approved unseen work. It lists
    the attempt's changed files, and `D` opens its diff over the dialog;
    closing the diff comes back to the answer."""
    from tests.test_engine_worktrees import BASE, HALF, NO_LLM, edit
    from tests.test_tui_git import scripted
    from tests.tui_kit import awaiting
    from tui.modals.approval import ApprovalModal
    from tui.modals.diff import AttemptDiffs
    from tui.widgets.diff_log import DiffLog

    repo = make_git_repo(BASE)
    attempt = edit("a.txt", "ONE\n")
    attempt.edits.append(FileEdit(path="c.txt", content="new\n"))
    spec = scripted(repo, [StepSpec(name="edit-a", attempts=[attempt])], [HALF])
    app = DirectiveApp(tmp_path / "tui.db", services=NO_LLM)
    async with app.run_test(size=(100, 40)) as pilot:
        await started(pilot, app, spec)
        await until(pilot, lambda: awaiting(app, "edit-a"), "the review")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the dialog")
        modal = app.screen
        files = modal_text(modal, "#approval-files")
        assert "Attempt #1 changed 2 files" in files
        assert "a.txt" in files and "c.txt" in files
        assert "D: the diff" in files
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, AttemptDiffs), "the diff")
        diffs = app.screen
        await until(pilot, lambda: diffs.loaded, "the diff read")  # type: ignore[attr-defined]
        assert "+ONE" in "\n".join(diffs.query_one(DiffLog).shown)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is modal, "back to the answer")


async def test_the_plan_dialog_shows_the_commands_it_will_run(tmp_path: Path) -> None:
    """The plan dialog read only `slow1 -> slow2`; a shell step's command
    is what approving the plan lets run, so each is shown."""
    from engine.models import Autonomy
    from tests.tui_kit import the_plan_dialog

    spec = chain_spec(tmp_path, [("slow1", []), ("slow2", ["slow1"])], autonomy=Autonomy.MANUAL)
    spec.steps[0].command = "sleep 1 && echo one"
    spec.steps[1].command = "rm -rf build/"
    app = app_for(tmp_path, Script())
    async with app.run_test(size=(100, 40)) as pilot:
        await the_plan_dialog(pilot, app, spec)
        plan = modal_text(app.screen, "#approval-plan")
        assert "$ sleep 1 && echo one" in plan
        assert "$ rm -rf build/" in plan
        assert "slow2  implement  after slow1" in plan


async def test_stop_in_the_escalation_dialog_asks_first(tmp_path: Path) -> None:
    """After `enter` left the note, `x` stopped the directive for good with
    no question, where `x` on the directive asks first: it asks too. While
    the note has the focus the buttons said `Retry [r]` ... `Stop [x]`,
    keys that were typed in the note: they name their keys only once the
    focus has left it."""
    from textual.widgets import Button

    from tests.tui_kit import box_status
    from tui.modals.approval import ApprovalModal
    from tui.modals.confirm import ConfirmModal

    app = app_for(tmp_path, Script(fail={"build": "exit 1"}))
    async with app.run_test(size=SIZE) as pilot:
        did = await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        screen = app.screen
        await until(pilot, lambda: bool(screen.approvals), "the escalation")  # type: ignore[attr-defined]
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the dialog")
        modal = app.screen

        def label(decision: str) -> str:
            return str(modal.query_one(f"#choice-{decision}", Button).label)

        assert label("stop") == "Stop" and label("retry") == "Retry"
        await pilot.press(*"x marks it", "enter")
        await until(pilot, lambda: label("stop") == "Stop [x]", "the keys named")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question")
        assert "for good" in app.screen.question  # type: ignore[attr-defined]
        await pilot.press("escape")  # not stopped: back to the choice
        await until(pilot, lambda: app.screen is modal, "the choice again")
        assert directive_status(app, did, DirectiveStatus.ACTIVE)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question")
        await pilot.press("y")
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.STOPPED), "stopped")
        assert box_status(app, "build") is not None
        [escalation] = await engine(app).store.list_approvals(did)
        assert escalation.comment == "x marks it"


def live_output(app: DirectiveApp) -> str:
    from textual.widgets import Static

    from tests.tui_kit import printed
    from tui.widgets.step_detail import StepDetail

    details = app.screen.query(StepDetail)
    if not details:  # not composed yet
        return ""
    detail = details.first()
    return printed(detail.query_one("#detail-tail", Static).content)


async def test_the_live_output_is_the_latest_attempt_s(tmp_path: Path) -> None:
    """The step panel kept 12 output lines per step, not per attempt: after
    a rework the lines of attempts 1, 2 and 3 came mixed. A new attempt
    starts the tail afresh, and its heading says which attempt it is, live
    and when the screen is opened again (read back from the log)."""
    from engine.models import StepStatus
    from tests.tui_kit import box_status

    app = app_for(tmp_path, Script(scores={"build": [0.3, 0.3, 0.95]}))
    async with app.run_test(size=SIZE) as pilot:
        did = await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(
            pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "completed"
        )
        assert box_status(app, "build") is StepStatus.PASSED
        await until(pilot, lambda: "(attempt 3)" in live_output(app), "the third attempt's line")
        for seen in (live_output(app),):
            assert "Live output · attempt 3" in seen
            assert "(attempt 1)" not in seen and "(attempt 2)" not in seen
        await pilot.press("escape")
        app.open_directive_screen(did)
        await until(pilot, lambda: loaded(app), "the screen again")
        await until(pilot, lambda: "(attempt 3)" in live_output(app), "read back")
        seen = live_output(app)
        assert "Live output · attempt 3" in seen
        assert "(attempt 1)" not in seen and "(attempt 2)" not in seen


async def test_enter_on_a_failure_shows_its_whole_error(tmp_path: Path) -> None:
    """ "enter on an event: its full text" was not full for a long failure:
    the engine keeps a status's reason to 200 characters, so the end of the
    error (where a kept worktree's path is said) was cut in the dialog too.
    The attempt's error, kept whole, is shown under the event's line."""
    from tui.modals.event_text import EventText
    from tui.widgets.event_log import EventLog

    error = "boom " * 60 + "(its files are kept in /tmp/somewhere/build-7 while the step waits)"
    app = app_for(tmp_path, Script(fail={"build": error}))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        log = app.screen.query_one(EventLog)
        await until(
            pilot, lambda: any("-> failed" in row[1] for row in log.lines), "the failure logged"
        )
        at = next(i for i, row in enumerate(log.lines) if "-> failed" in row[1])
        assert "build-7 while" not in log.lines[at][1]  # the engine's cut
        log.focus()
        log.cursor = at
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, EventText), "the event's text")
        assert "build-7 while the step waits)" in app.screen.message  # type: ignore[attr-defined]


async def test_a_stopped_directive_s_undone_steps_read_not_run(tmp_path: Path) -> None:
    """A stopped directive's steps that never ran read `◌ ready` and
    `○ pending`, as if they would run: they read "not run", in the DAG and
    in the step panel; the failed step stays failed."""
    from textual.widgets import Static

    from tests.tui_kit import printed

    app = app_for(tmp_path, Script(fail={"s1": "exit 1"}))
    async with app.run_test(size=SIZE) as pilot:
        spec = chain_spec(tmp_path, [("s1", []), ("s2", ["s1"]), ("s3", []), ("s4", ["s3"])])
        spec.limits.max_parallel_steps = 1
        did = await started(pilot, app, spec)
        screen = app.screen
        await until(pilot, lambda: bool(screen.approvals), "the escalation")  # type: ignore[attr-defined]
        await engine(app).stop_directive(did)
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.STOPPED), "stopped")
        dag = dag_of(app)
        assert dag is not None
        shown = {s.name: (await box_lines(pilot, app, s.id))[1] for s in dag.steps}
        assert "failed" in shown["s1"]
        assert "not run" in shown["s2"], shown
        assert all("ready" not in line and "pending" not in line for line in shown.values())
        s2 = next(s for s in dag.steps if s.name == "s2")
        dag.focus_step(s2.id)
        from tui.widgets.step_detail import StepDetail

        detail = app.screen.query_one(StepDetail)
        await until(
            pilot,
            lambda: "not run" in printed(detail.query_one("#detail-body", Static).content),
            "the step panel",
        )


def contrast(fore: Any, back: Any) -> float:
    """WCAG's contrast ratio of two Rich colours."""

    def luminance(colour: Any) -> float:
        def channel(c: int) -> float:
            v = c / 255
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

        r, g, b = colour.get_truecolor()
        return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)

    high, low = sorted((luminance(fore), luminance(back)), reverse=True)
    return (high + 0.05) / (low + 0.05)


async def test_what_needs_a_person_stands_out_without_colour_and_in_light_themes(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """With NO_COLOR=1 `■ blocked` was the dimmest text on screen (red
    turned dark grey): what needs a person is reversed. In textual-light
    the yellow of `⚑ 1 awaiting you`, of the approval lines and of a
    yellow score was 1.3:1 on its background: the theme's text colours keep
    3:1 at least. And a score said its level by colour alone: the box
    names it (`green 1.00`, or `Y 0.50` where the word does not fit)."""
    monkeypatch.setenv("NO_COLOR", "1")
    app = app_for(tmp_path, Script(scores={"review": [0.6]}))
    async with app.run_test(size=SIZE) as pilot:
        assert app.no_color
        await started(pilot, app, chain_spec(tmp_path, [("done", []), ("review", [])]))
        await until(pilot, lambda: awaiting(app, "review"), "the review")
        dag = dag_of(app)
        assert dag is not None
        for look in ("look--awaiting", "look--blocked", "look--failed"):
            assert dag.get_component_rich_style(look, partial=True).reverse, look
        ids = {s.name: s.id for s in dag.steps}
        _, review = await box_lines(pilot, app, ids["review"])
        assert "Y 0.60" in review
        _, done = await box_lines(pilot, app, ids["done"])
        assert "green 1.00" in done

    monkeypatch.delenv("NO_COLOR")
    app = app_for(tmp_path / "light", Script(scores={"review": [0.6]}))
    (tmp_path / "light").mkdir()
    async with app.run_test(size=SIZE) as pilot:
        app.theme = "textual-light"
        await started(pilot, app, chain_spec(tmp_path, [("review", [])]))
        await until(pilot, lambda: awaiting(app, "review"), "the review")
        dag = dag_of(app)
        assert dag is not None
        back = dag.rich_style.bgcolor
        for look in (
            "look--awaiting",
            "level--yellow",
            "sev--warning",
            "look--key",
            "look--failed",
        ):
            fore = dag.get_component_rich_style(look, partial=True).color
            assert contrast(fore, back) >= 3, (look, fore, back, contrast(fore, back))


async def test_the_palette_s_screenshot_is_saved_without_a_downloads_folder(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Textual saves a screenshot in ~/Downloads; without one the palette
    said "Failed to save screenshot". It is saved in the current folder
    then, and the toast names the file."""
    from tests.tui_kit import Notes

    home, here = tmp_path / "home", tmp_path / "here"
    home.mkdir()
    here.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(here)
    app = app_for(tmp_path, Script())
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        await until(pilot, lambda: app.engine_ready, "the engine")
        app.deliver_screenshot()
        await until(pilot, lambda: notes.has("Saved screenshot to"), "the toast")
        assert not notes.has("Failed", "error")
        [saved] = here.glob("*.svg")
        assert notes.has(str(saved))


async def test_an_answer_s_toast_is_one_line(tmp_path: Path) -> None:
    """A skip's toast repeated the whole request, a failure's many lines
    with it, and covered the log: it says the request's first line."""
    from tests.tui_kit import Notes
    from tui.modals.approval import ApprovalModal

    error = "FATAL: the build broke\n" + "\n".join(f"line {n} of the output" for n in range(30))
    app = app_for(tmp_path, Script(fail={"build": error}))
    async with app.run_test(size=SIZE) as pilot:
        notes = Notes(app)
        did = await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        screen = app.screen
        await until(pilot, lambda: bool(screen.approvals), "the escalation")  # type: ignore[attr-defined]
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalModal), "the dialog")
        await pilot.press("enter", "s")
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "done")
        [said] = [m for _, m in notes.messages if m.startswith("Skipped: ")]
        # (cut to one line of the toast: tests/test_tui_regressions.py)
        assert "\n" not in said and len(said) <= app.toast_room(), said
        assert said.startswith("Skipped: step build needs a decision")


async def test_a_running_attempt_s_cost_moves_in_the_step_panel(tmp_path: Path) -> None:
    """The header's cost moved with each model call while the focused step's
    attempt line stayed at $0.00 until the step ended."""
    import asyncio

    from textual.widgets import Static

    from engine.executors.base import ExecutionResult, StepContext
    from engine.models import TokenUsage
    from tests.engine_kit import ScriptExecutor, services
    from tests.tui_kit import printed
    from tui.widgets.step_detail import StepDetail

    spend, finish = asyncio.Event(), asyncio.Event()

    class Costly(ScriptExecutor):
        async def run(self, ctx: StepContext) -> ExecutionResult:
            await spend.wait()  # the panel has shown the attempt by then
            await ctx.record_cost(TokenUsage(input_tokens=1000), 0.25)
            await finish.wait()  # still running while the test looks
            return await super().run(ctx)

    script = Script()
    kit = services(script)
    kit.executor = lambda kind, llm: Costly(script)
    app = DirectiveApp(tmp_path / "tui.db", services=kit)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app, chain_spec(tmp_path, [("build", [])]))
        await until(pilot, lambda: loaded(app), "the directive screen")

        def attempt_line() -> str:
            body = app.screen.query_one(StepDetail).query_one("#detail-body", Static)
            text = printed(body.content)
            return next((line for line in text.splitlines() if line.startswith("#1 ")), "")

        await until(pilot, lambda: "running  $0.00" in attempt_line(), "the attempt running")
        spend.set()
        await until(pilot, lambda: "running  $0.25" in attempt_line(), "its cost in the panel")
        finish.set()


async def test_home_under_a_directive_screen_waits_to_be_shown_before_it_reloads(
    tmp_path: Path,
) -> None:
    """Textual's is_current holds for the screen just under the top one:
    home reloaded every directive and redrew its table after each batch of
    a run on the screen above it (with 130 directives, steps 5x slower and
    keys frozen up to 0.9 s)."""
    import asyncio

    from tests.tui_kit import HeldExecutor
    from tui.screens.home import HomeScreen

    app = app_for(tmp_path, Script())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.engine_ready, "the engine")
        home = next(s for s in app.screen_stack if isinstance(s, HomeScreen))
        loads = 0
        real_load = home.load

        async def counted() -> None:
            nonlocal loads
            loads += 1
            await real_load()

        home.load = counted  # type: ignore[method-assign]
        gate = asyncio.Event()
        app.services.executor = lambda kind, llm: HeldExecutor(Script(), {"a": gate})
        did = await started(pilot, app, chain_spec(tmp_path, [("a", []), ("b", ["a"])]))
        await until(pilot, lambda: loaded(app), "the directive screen on top")
        loads = 0
        gate.set()
        await until(pilot, lambda: directive_status(app, did, DirectiveStatus.COMPLETED), "done")
        assert loads == 0 and home._stale  # read once, when it shows again
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is home and loads == 1, "home shown, read once")
