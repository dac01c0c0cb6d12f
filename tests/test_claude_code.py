"""The claude_code executor without the CLI: the missing-package message,
the options it builds, and its handling of the SDK's messages (through a
stand-in module with the SDK's names)."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine.executors import build_executor
from engine.executors.base import Budget, ExecutorError, StepContext
from engine.executors.claude_code import PERMISSION_MODE, ClaudeCodeExecutor
from engine.models import Directive, DirectiveSpec, Severity, Step, StepSpec, TokenUsage
from engine.procs import run_process


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.costs: list[tuple[TokenUsage, float]] = []

    def emit(self, line: str, severity: Severity = Severity.DEBUG) -> None:
        self.lines.append(line)

    async def add_cost(self, usage: TokenUsage, cost: float) -> None:
        self.costs.append((usage, cost))


def make_ctx(
    repo: Path,
    rec: Recorder,
    *,
    model: str | None = None,
    budget: Budget | None = None,
    rework: str | None = None,
) -> StepContext:
    d = Directive(spec=DirectiveSpec(title="t", goal="make add correct", repo=repo, model=model))
    step = Step(
        chain_id="c",
        directive_id=d.id,
        name="implement",
        spec=StepSpec(name="implement", description="fix calc.add"),
    )
    return StepContext(
        directive=d,
        step=step,
        attempt=1,
        workdir=repo,
        rework_instructions=rework,
        budget=budget or Budget(cost_usd=3.0),
        emit=rec.emit,
        add_cost=rec.add_cost,
    )


async def test_missing_package_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "claude_agent_sdk", None)  # import raises ImportError
    executor = build_executor("claude_code")  # building never imports the SDK
    with pytest.raises(ExecutorError, match=r"install directive-tui\[claude-code\]"):
        await executor.run(make_ctx(tmp_path, Recorder()))


def test_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIRECTIVE_MODEL", raising=False)
    rec = Recorder()
    options = ClaudeCodeExecutor(max_turns=12, max_budget_usd=5.0).options(
        make_ctx(tmp_path, rec, budget=Budget(cost_usd=2.5, turns=30))
    )
    assert options["cwd"] == str(tmp_path.resolve())
    assert options["max_turns"] == 12
    assert (
        options["max_budget_usd"] == 2.5
    )  # the smaller of the step's budget and the executor's cap
    assert options["permission_mode"] == PERMISSION_MODE == "acceptEdits"
    assert "Bash" in options["allowed_tools"] and "WebFetch" not in options["allowed_tools"]
    assert options["model"] == "claude-sonnet-5-5"
    assert options["system_prompt"]["preset"] == "claude_code"
    with_model = ClaudeCodeExecutor(allow_bash=False).options(
        make_ctx(tmp_path, rec, model="claude-opus-5-5")
    )
    assert with_model["model"] == "claude-opus-5-5"
    assert "Bash" not in with_model["allowed_tools"]
    unlimited = ClaudeCodeExecutor().options(make_ctx(tmp_path, rec, budget=Budget()))
    assert unlimited["max_budget_usd"] is None


# -- a stand-in for claude_agent_sdk with the names the executor uses --------


@dataclass
class TextBlock:
    text: str


@dataclass
class ToolUseBlock:
    id: str
    name: str
    input: dict[str, Any]


@dataclass
class AssistantMessage:
    content: list[Any]
    model: str = "claude-sonnet-5-5"


@dataclass
class ResultMessage:
    subtype: str
    is_error: bool
    num_turns: int
    total_cost_usd: float | None
    usage: dict[str, Any] | None
    result: str | None = None


@dataclass
class ClaudeAgentOptions:
    cwd: str | None = None
    model: str | None = None
    max_turns: int | None = None
    max_budget_usd: float | None = None
    permission_mode: str | None = None
    allowed_tools: list[str] = field(default_factory=list)
    system_prompt: Any = None
    env: dict[str, str] = field(default_factory=dict)


def fake_sdk(messages: list[Any], seen: dict[str, Any]) -> types.ModuleType:
    module = types.ModuleType("claude_agent_sdk")

    async def query(*, prompt: str, options: ClaudeAgentOptions):  # type: ignore[no-untyped-def]
        seen["prompt"], seen["options"] = prompt, options
        for message in messages:
            yield message

    module.query = query  # type: ignore[attr-defined]
    for cls in (TextBlock, ToolUseBlock, AssistantMessage, ResultMessage, ClaudeAgentOptions):
        setattr(module, cls.__name__, cls)
    return module


async def test_run_records_reported_cost_and_edited_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    messages = [
        AssistantMessage(
            [
                TextBlock("Reading calc.py"),
                ToolUseBlock("1", "Read", {"file_path": str(tmp_path / "calc.py")}),
            ]
        ),
        AssistantMessage(
            [
                ToolUseBlock(
                    "2",
                    "Edit",
                    {"file_path": str(tmp_path / "calc.py"), "old_string": "-", "new_string": "+"},
                )
            ]
        ),
        AssistantMessage(
            [ToolUseBlock("3", "Write", {"file_path": "tests/test_calc.py", "content": "x"})]
        ),
        AssistantMessage(
            [ToolUseBlock("4", "Write", {"file_path": "/etc/elsewhere", "content": "x"})]
        ),
        ResultMessage(
            "success",
            False,
            4,
            0.1234,
            {"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 30},
            "Fixed add.",
        ),
    ]
    monkeypatch.setitem(sys.modules, "claude_agent_sdk", fake_sdk(messages, seen))
    rec = Recorder()
    result = await ClaudeCodeExecutor().run(make_ctx(tmp_path, rec, rework="also add a docstring"))
    assert result.success and result.summary == "Fixed add."
    assert result.modified_files == ["calc.py", "tests/test_calc.py"]
    assert rec.costs == [
        (TokenUsage(input_tokens=10, output_tokens=20, cache_read_input_tokens=30), 0.1234)
    ]
    assert seen["options"].permission_mode == "acceptEdits"
    assert seen["options"].cwd == str(tmp_path.resolve())
    assert "fix calc.add" in seen["prompt"] and "also add a docstring" in seen["prompt"]
    assert "Reading calc.py" in rec.lines


async def test_claude_code_is_handed_the_credentials_our_own_commands_never_get(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claude Code calls the API itself, so it needs the key that
    engine.procs keeps from every other child process."""
    key = "sk-ant-test-claude-code-0123456789abcdef"
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    seen: dict[str, Any] = {}
    messages = [
        AssistantMessage([TextBlock(f"Bash printed ANTHROPIC_API_KEY={key}")]),
        ResultMessage("success", False, 1, 0.01, None, f"done; the key was {key}"),
    ]
    monkeypatch.setitem(sys.modules, "claude_agent_sdk", fake_sdk(messages, seen))
    rec = Recorder()
    result = await ClaudeCodeExecutor().run(make_ctx(tmp_path, rec))
    assert result.success
    assert seen["options"].env == {"ANTHROPIC_API_KEY": key}
    # What it writes back, where its own shell may have put the key, is scrubbed.
    assert rec.lines == ["Bash printed ANTHROPIC_API_KEY=[redacted]"]
    assert result.summary == "done; the key was [redacted]"
    echoed = await run_process('echo "[$ANTHROPIC_API_KEY]"', cwd=tmp_path)
    assert echoed.output == "[]\n"
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    assert ClaudeCodeExecutor().options(make_ctx(tmp_path, Recorder()))["env"] == {}


async def test_error_result_fails_the_step_but_still_records_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = [ResultMessage("error_max_budget_usd", True, 9, 2.5, None, None)]
    monkeypatch.setitem(sys.modules, "claude_agent_sdk", fake_sdk(messages, {}))
    rec = Recorder()
    result = await ClaudeCodeExecutor().run(make_ctx(tmp_path, rec))
    assert not result.success and "error_max_budget_usd" in (result.error or "")
    assert [c for _, c in rec.costs] == [2.5]


async def test_no_budget_left_does_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setitem(sys.modules, "claude_agent_sdk", fake_sdk([], seen))
    result = await ClaudeCodeExecutor().run(
        make_ctx(tmp_path, Recorder(), budget=Budget(cost_usd=0.0))
    )
    assert not result.success and "no cost budget" in (result.error or "")
    assert seen == {}
