"""Executors run for real: shell commands in tmp folders, scripted edits."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.executors import REGISTRY, ExecutorDeps, build_executor
from engine.executors.base import ExecutorError, StepContext
from engine.executors.noop import NoopExecutor
from engine.executors.scripted import ScriptedExecutor
from engine.executors.shell import ShellExecutor
from engine.models import Directive, DirectiveSpec, ExecutorKind, Severity, Step, StepSpec
from engine.procs import run_process
from tests.proc_kit import wait_gone


def make_ctx(
    repo: Path, attempt: int = 1, rework: str | None = None, **step: Any
) -> tuple[StepContext, list[tuple[str, Severity]]]:
    directive = Directive(spec=DirectiveSpec(title="t", goal="g", repo=repo))
    spec = StepSpec.model_validate({"name": "build", **step})
    record = Step(chain_id="c1", directive_id=directive.id, name=spec.name, spec=spec)
    lines: list[tuple[str, Severity]] = []
    ctx = StepContext(
        directive=directive,
        step=record,
        attempt=attempt,
        workdir=repo,
        rework_instructions=rework,
        emit=lambda line, severity=Severity.DEBUG: lines.append((line, severity)),
    )
    return ctx, lines


# --------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------


def test_registry_builds_the_local_kinds() -> None:
    assert isinstance(build_executor("shell", ExecutorDeps()), ShellExecutor)
    assert isinstance(build_executor(ExecutorKind.SCRIPTED, ExecutorDeps()), ScriptedExecutor)
    noop = build_executor("noop")
    assert isinstance(noop, NoopExecutor) and noop.modifies_files is False
    assert {k.value for k in ExecutorKind} <= set(REGISTRY)


def test_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(ExecutorError, match=r"unknown executor kind 'robot'; known kinds: .*shell"):
        build_executor("robot", ExecutorDeps())


async def test_noop_succeeds_at_once(tmp_path: Path) -> None:
    ctx, _ = make_ctx(tmp_path)
    result = await NoopExecutor().run(ctx)
    assert result.success and result.modified_files == []


# --------------------------------------------------------------------------
# shell
# --------------------------------------------------------------------------


async def test_shell_passes_the_attempt_through_the_environment(tmp_path: Path) -> None:
    command = (
        'echo "$DIRECTIVE_ID|$DIRECTIVE_STEP|$DIRECTIVE_ATTEMPT|$DIRECTIVE_REPO"; '
        'echo "rework: $DIRECTIVE_REWORK_INSTRUCTIONS"; echo done > out.txt'
    )
    ctx, lines = make_ctx(tmp_path, attempt=2, rework="fix the test", command=command)
    result = await ShellExecutor().run(ctx)
    assert result.success, result.error
    assert lines == [
        (f"{ctx.directive.id}|build|2|{tmp_path}", Severity.DEBUG),
        ("rework: fix the test", Severity.DEBUG),
    ]
    assert result.summary == "exit 0: rework: fix the test"
    assert (tmp_path / "out.txt").read_text() == "done\n"


async def test_a_shell_step_printing_its_environment_shows_no_api_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-ant-test-shell-step-0123456789abcdef"
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    ctx, lines = make_ctx(tmp_path, command='env; echo "key=[$ANTHROPIC_API_KEY]"')
    result = await ShellExecutor().run(ctx)
    shown = [line for line, _ in lines]
    assert result.success and "key=[]" in shown
    assert any(line.startswith("DIRECTIVE_STEP=build") for line in shown)
    assert not any(key in line for line in shown)
    assert key not in (result.summary or "") + (result.error or "")


async def test_shell_rework_instructions_are_empty_when_none(tmp_path: Path) -> None:
    ctx, lines = make_ctx(tmp_path, command='echo "[${DIRECTIVE_REWORK_INSTRUCTIONS-unset}]"')
    result = await ShellExecutor().run(ctx)
    assert result.success and lines == [("[]", Severity.DEBUG)]


async def test_shell_non_zero_exit_fails_with_the_last_lines_the_very_last_first(
    tmp_path: Path,
) -> None:
    """The one-line views (log, approvals, toast) show the error's first
    line: it was the fifth line from the end, where a build's error is last."""
    ctx, _ = make_ctx(tmp_path, command="for i in 1 2 3 4 5 6 7; do echo line$i; done; exit 3")
    result = await ShellExecutor().run(ctx)
    assert not result.success
    assert result.error == (
        "command exited with 3: line7\nthe output ended:\nline3\nline4\nline5\nline6\nline7"
    )
    assert result.summary == "command exited with 3"
    ctx, _ = make_ctx(tmp_path, command="echo only; exit 1")
    assert (await ShellExecutor().run(ctx)).error == "command exited with 1: only"


async def test_shell_timeout_is_a_clear_error(tmp_path: Path) -> None:
    ctx, _ = make_ctx(tmp_path, command="echo waiting; sleep 1000", timeout_s=0.3)
    result = await ShellExecutor().run(ctx)
    assert not result.success
    assert result.error == "command timed out after 0.3 s: waiting"


@pytest.mark.parametrize("command", [None, "   "])
async def test_shell_step_without_command(tmp_path: Path, command: str | None) -> None:
    ctx, _ = make_ctx(tmp_path, command=command)
    result = await ShellExecutor().run(ctx)
    assert not result.success
    assert result.error is not None and "step 'build' has no command" in result.error


async def test_shell_cancellation_stops_the_command(tmp_path: Path) -> None:
    started = asyncio.Event()
    ctx, _ = make_ctx(tmp_path, command="echo $$ > pid; echo go; sleep 1000")
    ctx.emit = lambda line, severity=Severity.DEBUG: started.set()
    task = asyncio.create_task(ShellExecutor().run(ctx))
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pid = int((tmp_path / "pid").read_text())
    assert await wait_gone(pid), f"shell {pid} still running after cancellation"


# --------------------------------------------------------------------------
# scripted
# --------------------------------------------------------------------------

ATTEMPTS = [
    {
        "summary": "first try",
        "edits": [
            {"path": "src/pkg/calc.py", "content": "def add(a, b):\n    return a - b\n"},
            {"path": "notes.md", "content": "draft\n"},
        ],
    },
    {
        "summary": "fixed",
        "edits": [
            {"path": "src/pkg/calc.py", "replace": "a - b", "with": "a + b"},
            {"path": "notes.md", "delete": True},
        ],
    },
]


async def test_scripted_applies_each_attempt_in_turn(tmp_path: Path) -> None:
    ctx, lines = make_ctx(tmp_path, attempt=1, attempts=ATTEMPTS)
    first = await ScriptedExecutor().run(ctx)
    assert first.success and first.summary == "first try"
    assert first.modified_files == ["src/pkg/calc.py", "notes.md"]
    assert (tmp_path / "src/pkg/calc.py").read_text().endswith("return a - b\n")
    assert [line for line, _ in lines] == [
        "wrote src/pkg/calc.py (2 lines)",
        "wrote notes.md (1 lines)",
    ]

    ctx, lines = make_ctx(tmp_path, attempt=2, attempts=ATTEMPTS)
    second = await ScriptedExecutor().run(ctx)
    assert second.success and second.summary == "fixed"
    assert (tmp_path / "src/pkg/calc.py").read_text().endswith("return a + b\n")
    assert not (tmp_path / "notes.md").exists()
    assert [line for line, _ in lines] == [
        "edited src/pkg/calc.py: replaced 1 occurrence",
        "deleted notes.md",
    ]


async def test_scripted_later_attempts_reuse_the_last_script(tmp_path: Path) -> None:
    script = [{"edits": [{"path": "n.txt", "content": "x"}]}, {"fail": "still broken"}]
    ctx, _ = make_ctx(tmp_path, attempt=5, attempts=script)
    result = await ScriptedExecutor().run(ctx)
    assert not result.success and result.error == "still broken"
    assert not (tmp_path / "n.txt").exists()


async def test_scripted_fail_after_edits_keeps_them(tmp_path: Path) -> None:
    script = [{"edits": [{"path": "half.txt", "content": "half\n"}], "fail": "ran out of ideas"}]
    ctx, _ = make_ctx(tmp_path, attempts=script)
    result = await ScriptedExecutor().run(ctx)
    assert not result.success and result.error == "ran out of ideas"
    assert result.modified_files == ["half.txt"]


async def test_scripted_without_attempts_has_nothing_to_do(tmp_path: Path) -> None:
    ctx, _ = make_ctx(tmp_path)
    result = await ScriptedExecutor().run(ctx)
    assert result.success and result.summary == "nothing to do"


async def test_scripted_replace_of_missing_text_fails(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    script = [{"edits": [{"path": "a.py", "replace": "y = 2", "with": "y = 3"}]}]
    ctx, lines = make_ctx(tmp_path, attempts=script)
    result = await ScriptedExecutor().run(ctx)
    assert not result.success
    assert result.error == "cannot replace text in a.py: 'y = 2' is not in the file"
    assert lines[-1] == (result.error, Severity.ERROR)
    assert (tmp_path / "a.py").read_text() == "x = 1\n"


@pytest.mark.parametrize(
    ("path", "why"),
    [("../escape.txt", "leads outside"), ("/tmp/abs.txt", "absolute paths are not allowed")],
)
async def test_scripted_refuses_paths_outside_the_repo(tmp_path: Path, path: str, why: str) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    ctx, _ = make_ctx(repo, attempts=[{"edits": [{"path": path, "content": "x"}]}])
    result = await ScriptedExecutor().run(ctx)
    assert not result.success
    assert result.error is not None and result.error.startswith("refused:") and why in result.error
    assert not (tmp_path / "escape.txt").exists()


async def test_scripted_refuses_writing_through_a_symlink_out(tmp_path: Path) -> None:
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    repo.mkdir()
    outside.mkdir()
    (repo / "link").symlink_to(outside, target_is_directory=True)
    ctx, _ = make_ctx(repo, attempts=[{"edits": [{"path": "link/x.txt", "content": "x"}]}])
    result = await ScriptedExecutor().run(ctx)
    assert not result.success and "is a symlink" in (result.error or "")
    assert not (outside / "x.txt").exists()


async def test_scripted_names_an_edit_through_a_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "loop_a").symlink_to("loop_b")
    (tmp_path / "loop_b").symlink_to("loop_a")
    ctx, _ = make_ctx(tmp_path, attempts=[{"edits": [{"path": "loop_a/x.txt", "content": "x"}]}])
    result = await ScriptedExecutor().run(ctx)
    assert not result.success
    assert (result.error or "").startswith("refused: 'loop_a/x.txt' leads nowhere: Symlink loop")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"path": "a"}, "must give exactly one of content, replace or delete"),
        ({"path": "a", "content": "x", "delete": True}, "(it gives content, delete)"),
        ({"path": "a", "replace": "x"}, "`replace` needs `with`"),
        ({"path": "a", "content": "x", "with": "y"}, "`with` only goes with `replace`"),
        ({"path": "gone.txt", "delete": True}, "cannot delete gone.txt: no such file"),
    ],
)
async def test_scripted_bad_edits_are_named(
    tmp_path: Path, edit: dict[str, Any], message: str
) -> None:
    (tmp_path / "a").write_text("text")
    ctx, _ = make_ctx(tmp_path, attempts=[{"edits": [edit]}])
    result = await ScriptedExecutor().run(ctx)
    assert not result.success and message in (result.error or "")


async def test_registry_imports_nothing_heavy_up_front() -> None:
    code = (
        "import sys, engine.executors as e; "
        "print(sorted(m for m in ('engine.executors.agent', 'engine.executors.claude_code', "
        "'engine.executors.shell', 'anthropic', 'claude_agent_sdk') if m in sys.modules))"
    )
    result = await run_process(
        [sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1]
    )
    assert result.ok, result.output
    assert result.output.strip() == "[]"
