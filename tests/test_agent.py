"""The agent executor against the fake Messages API, in a real git repo."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from engine.executors.agent import AgentExecutor
from engine.executors.base import Budget, ExecutorError, StepContext
from engine.llm import LLMClient
from engine.models import (
    Directive,
    DirectiveSpec,
    Requirement,
    Severity,
    Step,
    StepSpec,
    TokenUsage,
)
from engine.pricing import cost_usd
from tests.fake_anthropic import (
    FAKE_KEY,
    FakeAnthropic,
    tool_use,
    usage,
)

pytest_plugins = ["tests.conftest_llm"]

MODEL = "claude-sonnet-5-5"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "T")
    (root / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "seed")
    (tmp_path / "outside.txt").write_text("OUTSIDE-SECRET")
    return root


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, Severity]] = []
        self.costs: list[tuple[TokenUsage, float]] = []

    def emit(self, line: str, severity: Severity = Severity.DEBUG) -> None:
        self.lines.append((line, severity))

    async def add_cost(self, usage: TokenUsage, cost: float) -> None:
        self.costs.append((usage, cost))

    @property
    def total(self) -> float:
        return sum(c for _, c in self.costs)


def make_ctx(
    repo: Path,
    rec: Recorder,
    *,
    budget: Budget | None = None,
    rework: str | None = None,
    attempt: int = 1,
) -> StepContext:
    spec = DirectiveSpec(
        title="Fix add",
        goal="add() must return the sum",
        repo=repo,
        requirements=[Requirement(id="R1", text="add returns a + b")],
        acceptance_criteria=["add(2, 3) == 5"],
    )
    directive = Directive(spec=spec)
    step = Step(
        chain_id="c1",
        directive_id=directive.id,
        name="implement",
        spec=StepSpec(
            name="implement", description="Fix the bug in calc.add", requirement_ids=["R1"]
        ),
    )
    return StepContext(
        directive=directive,
        step=step,
        attempt=attempt,
        workdir=repo,
        rework_instructions=rework,
        budget=budget or Budget(cost_usd=5.0, wall_time_s=600),
        emit=rec.emit,
        add_cost=rec.add_cost,
    )


def expected_cost(*usages: dict[str, int]) -> float:
    return sum(
        cost_usd(
            MODEL,
            TokenUsage(
                input_tokens=u["input_tokens"],
                output_tokens=u["output_tokens"],
                cache_creation_input_tokens=u["cache_creation_input_tokens"],
                cache_read_input_tokens=u["cache_read_input_tokens"],
            ),
        )
        for u in usages
    )


async def test_agent_changes_real_files_and_records_every_cost(
    fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path
) -> None:
    usages = [
        usage(3000, 120, cache_write=2500),
        usage(200, 80, cache_read=2500),
        usage(300, 200, cache_read=2700),
        usage(400, 90, cache_read=3000),
        usage(100, 60, cache_read=3400),
    ]
    fake_api.reply(
        "Let me look.", tools=[tool_use("read_file", {"path": "calc.py"})], usage=usages[0]
    )
    fake_api.reply(
        tools=[tool_use("edit_file", {"path": "calc.py", "old": "a - b", "new": "a + b"})],
        usage=usages[1],
    )
    fake_api.reply(
        tools=[
            tool_use(
                "write_file",
                {
                    "path": "tests/test_calc.py",
                    "content": "from calc import add\n\ndef test_add():\n    assert add(2, 3) == 5\n",
                },
            )
        ],
        usage=usages[2],
    )
    fake_api.reply(
        tools=[
            tool_use(
                "run_command", {"command": "python3 -c 'from calc import add; print(add(2, 3))'"}
            )
        ],
        usage=usages[3],
    )
    fake_api.reply("Fixed add() to return a + b and added tests/test_calc.py.", usage=usages[4])
    rec = Recorder()

    result = await AgentExecutor(fake_llm).run(make_ctx(repo, rec))

    assert result.success, result.error
    assert result.summary == "Fixed add() to return a + b and added tests/test_calc.py."
    assert result.modified_files == ["calc.py", "tests/test_calc.py"]
    assert (repo / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert "+    return a + b" in git(repo, "diff")
    assert "tests/" in git(repo, "status", "--porcelain")
    # Every call's cost went through record_cost, and adds up to the price table's sum.
    assert len(rec.costs) == 5
    assert rec.total == pytest.approx(expected_cost(*usages))
    # The command ran in the repo and its output reached the model.
    run_result = fake_api.requests[4].tool_results()[0]
    assert run_result["content"] == "exit code 0\n5\n"
    # Progress lines streamed: text and tool calls.
    lines = [line for line, _ in rec.lines]
    assert "Let me look." in lines
    assert any(line.startswith("edit_file path=calc.py") for line in lines)


async def test_requests_cache_system_and_tools_and_show_the_budget(
    fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path
) -> None:
    fake_api.reply(tools=[tool_use("list_files", {})], usage=usage(1000, 10))
    fake_api.reply("done", usage=usage(100, 10))
    rec = Recorder()
    result = await AgentExecutor(fake_llm, max_turns=7).run(
        make_ctx(repo, rec, budget=Budget(cost_usd=1.0, wall_time_s=300))
    )
    assert result.success
    first, second = fake_api.requests
    assert first.body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert first.body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert [t["name"] for t in first.body["tools"]] == [
        "list_files",
        "read_file",
        "search",
        "write_file",
        "edit_file",
        "run_command",
    ]
    assert "tool_choice" not in first.body  # newest models refuse forced tools
    # The budget is in the prompt and updated each turn.
    assert "7 of 7 turns, $1.00 of $1.00" in first.last_user_text
    assert "6 of 7 turns" in second.last_user_text
    spent = expected_cost(usage(1000, 10))
    assert f"${1.0 - spent:.2f} of $1.00" in second.last_user_text
    # Exactly one moving cache marker in the conversation.
    markers = [
        b
        for m in second.messages
        if isinstance(m["content"], list)
        for b in m["content"]
        if "cache_control" in b
    ]
    assert len(markers) == 1 and markers[0] is second.messages[-1]["content"][-1]
    # The task: goal, requirement, criteria, step.
    assert "add() must return the sum" in first.all_text
    assert "R1: add returns a + b" in first.all_text
    assert "add(2, 3) == 5" in first.all_text


async def test_escaping_tool_calls_are_refused_and_the_model_sees_it(
    fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path, tmp_path: Path
) -> None:
    (repo / "sneaky").symlink_to(tmp_path / "outside.txt")
    fake_api.reply(
        tools=[
            tool_use("read_file", {"path": "../outside.txt"}),
            tool_use("read_file", {"path": str(tmp_path / "outside.txt")}),
            tool_use("read_file", {"path": "sneaky"}),
            tool_use("write_file", {"path": "../../pwned.txt", "content": "x"}),
        ]
    )
    fake_api.reply("I cannot reach those files.")
    result = await AgentExecutor(fake_llm).run(make_ctx(repo, Recorder()))
    assert result.success
    results = fake_api.requests[1].tool_results()
    assert len(results) == 4
    assert all(r["is_error"] is True for r in results)
    assert all("refused" in r["content"] for r in results)
    assert "OUTSIDE-SECRET" not in fake_api.requests[1].all_text
    assert not (tmp_path.parent / "pwned.txt").exists()
    assert result.modified_files == []


async def test_cost_cap_stops_the_loop(
    fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path
) -> None:
    big = usage(20_000, 2_000)  # $0.06 on claude-sonnet-5-5
    for _ in range(5):
        fake_api.reply(tools=[tool_use("list_files", {})], usage=big)
    rec = Recorder()
    result = await AgentExecutor(fake_llm).run(make_ctx(repo, rec, budget=Budget(cost_usd=0.10)))
    assert not result.success
    # In the dollars the budget and the breaker are said in ("$0.1200 of the
    # step's $0.1000" read as another sum beside the breaker's "$1.00").
    assert result.error == "cost cap reached: this attempt spent $0.12 of the $0.10 it had"
    assert len(fake_api.requests) == 2  # $0.06, then $0.12 >= $0.10: no third call
    assert rec.total == pytest.approx(expected_cost(big, big))


async def test_no_budget_left_makes_no_call(
    fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path
) -> None:
    result = await AgentExecutor(fake_llm).run(
        make_ctx(repo, Recorder(), budget=Budget(cost_usd=0.0))
    )
    assert not result.success and "cost cap" in (result.error or "")
    assert fake_api.requests == []


async def test_turn_cap(fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path) -> None:
    for _ in range(3):
        fake_api.reply(tools=[tool_use("list_files", {})])
    result = await AgentExecutor(fake_llm).run(make_ctx(repo, Recorder(), budget=Budget(turns=2)))
    assert not result.success and "turn limit reached (2 turns)" in (result.error or "")
    assert len(fake_api.requests) == 2


async def test_a_tool_call_cut_off_by_max_tokens_is_not_run(
    fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path
) -> None:
    """At max_tokens the last tool call's arguments are unfinished: run, it
    wrote half a file over calc.py (seen end to end). The complete call
    before it runs; the cut one is answered with an error saying why."""
    fake_api.reply(
        tools=[
            tool_use("write_file", {"path": "notes.md", "content": "plan\n"}),
            tool_use("write_file", {"path": "calc.py", "content": "def add(a, b):\n    ret"}),
        ],
        stop_reason="max_tokens",
    )
    fake_api.reply(
        tools=[tool_use("edit_file", {"path": "calc.py", "old": "a - b", "new": "a + b"})]
    )
    fake_api.reply("Fixed add.")
    rec = Recorder()
    result = await AgentExecutor(fake_llm).run(make_ctx(repo, rec))
    assert result.success
    assert (repo / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert (repo / "notes.md").read_text() == "plan\n"
    done, cut = fake_api.requests[1].tool_results()
    assert "is_error" not in done
    assert cut["is_error"] is True and "reached max_tokens" in cut["content"]
    assert any("write_file: not run" in line for line, _ in rec.lines)


async def test_a_full_context_window_fails_the_step_saying_so(
    fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path
) -> None:
    """stop_reason model_context_window_exceeded is not the agent finishing:
    taken for its summary, it passed a step that was cut short."""
    fake_api.reply(tools=[tool_use("read_file", {"path": "calc.py"})])
    fake_api.reply("So the fix is to", stop_reason="model_context_window_exceeded")
    rec = Recorder()
    result = await AgentExecutor(fake_llm).run(make_ctx(repo, rec))
    assert not result.success
    assert result.error == (
        "the conversation filled the model's context window before the agent finished (2 turns)"
    )
    assert len(rec.costs) == 2  # both calls charged
    assert len(fake_api.requests) == 2


async def test_rework_instructions_reach_the_next_attempt(
    fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path
) -> None:
    fake_api.reply("reworked")
    rework = "Reviewer comment: also handle negative numbers and add a docstring."
    await AgentExecutor(fake_llm).run(make_ctx(repo, Recorder(), rework=rework, attempt=2))
    text = fake_api.requests[0].all_text
    assert rework in text
    assert "attempt 2" in text


async def test_auth_failure_is_a_clear_step_failure(fake_api: FakeAnthropic, repo: Path) -> None:
    client = LLMClient(api_key=FAKE_KEY, base_url=fake_api.base_url, max_retries=3)
    fake_api.error(401, "invalid x-api-key")
    result = await AgentExecutor(client).run(make_ctx(repo, Recorder()))
    assert not result.success
    assert "set a valid ANTHROPIC_API_KEY and start directive-tui again" in (result.error or "")
    assert FAKE_KEY not in (result.error or "")
    assert len(fake_api.requests) == 1


async def test_refusal_stops_the_step_and_records_its_cost(
    fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path
) -> None:
    fake_api.reply("I won't do that.", stop_reason="refusal", usage=usage(500, 5))
    rec = Recorder()
    result = await AgentExecutor(fake_llm).run(make_ctx(repo, rec))
    assert not result.success and "refusal" in (result.error or "")
    assert rec.total == pytest.approx(expected_cost(usage(500, 5)))


async def test_cancellation_stops_the_loop_and_the_running_command(
    fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path
) -> None:
    fake_api.reply(tools=[tool_use("run_command", {"command": "echo $$ > pid.txt; exec sleep 30"})])
    task = asyncio.create_task(AgentExecutor(fake_llm).run(make_ctx(repo, Recorder())))
    pid_file = repo / "pid.txt"
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.02)
    pid = int(pid_file.read_text())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert len(fake_api.requests) == 1


def test_agent_needs_a_client() -> None:
    with pytest.raises(ExecutorError, match="ANTHROPIC_API_KEY"):
        AgentExecutor(None)


async def test_a_retry_is_said_in_the_step_while_it_waits(
    fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path
) -> None:
    """The SDK sleeps through a 429's retry-after inside the call: the step's
    live output said nothing until the answer came."""
    fake_api.error(429, "slow down", retry_after_ms=1000)
    fake_api.reply("Nothing to change.")
    rec = Recorder()
    result = await AgentExecutor(fake_llm).run(make_ctx(repo, rec))
    assert result.success
    assert (
        "retry 1 of 1 in 1s: rate limited by the Anthropic API (HTTP 429)",
        Severity.WARNING,
    ) in rec.lines


async def test_the_step_says_which_model_works_on_it_and_its_budget(
    fake_api: FakeAnthropic, repo: Path
) -> None:
    """The model (the directive's, DIRECTIVE_MODEL's or the default) was named
    nowhere a user looks: the live output starts with it."""
    client = LLMClient(api_key=FAKE_KEY, base_url=fake_api.base_url, model="claude-haiku-5-5")
    fake_api.reply("Nothing to change.")
    rec = Recorder()
    ctx = make_ctx(repo, rec, budget=Budget(cost_usd=1.5, wall_time_s=900, turns=12))
    try:
        await AgentExecutor(client).run(ctx)
    finally:
        await client.aclose()
    assert rec.lines[0] == (
        "claude-haiku-5-5 works on the step: at most 12 turns, $1.50, 900s",
        Severity.INFO,
    )
    assert fake_api.requests[0].body["model"] == "claude-haiku-5-5"


async def test_a_reply_cut_off_at_max_tokens_is_said_and_continued(
    fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path
) -> None:
    """The cut reply's text was shown as if whole, and the turn that asked
    the model to go on was not shown at all."""
    fake_api.reply("The fix is to change the operator in", stop_reason="max_tokens")
    fake_api.reply("calc.add; done.")
    rec = Recorder()
    result = await AgentExecutor(fake_llm).run(make_ctx(repo, rec))
    assert result.success and result.summary == "calc.add; done."
    shown = [line for line, _ in rec.lines]
    assert shown[1:] == [
        "The fix is to change the operator in",
        "the reply was cut off (max_tokens): asked to continue",
        "calc.add; done.",
    ]
    assert "continue where you stopped" in fake_api.requests[1].last_user_text
