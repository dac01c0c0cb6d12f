"""The `agent` executor: Claude works on a step with tools, in the repository.

A plain tool-use loop: send the conversation, run the tools the model asks
for (`engine.agent_tools`: file tools confined to the repository, and a
shell that starts there with the user's rights, which is not confined),
send the results back, until the model answers without a tool call.
Bounded by turns, dollars and wall time; the model is told what is left on
every turn. Each call's cost is recorded at once through `ctx.record_cost`,
so the engine's cost breaker sees it while the step is still running. The
system prompt and the tool definitions are marked for prompt caching, and
so is the newest turn, so each call pays full price only for what is new.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from engine.agent_tools import DEFAULT_COMMAND_TIMEOUT_S, AgentTools, ToolOutcome
from engine.executors.base import ExecutionResult, ExecutorError, StepContext
from engine.llm import LLMClient, LLMError, LLMErrorKind, LLMResponse
from engine.models import ExecutorKind, Severity

DEFAULT_MAX_TURNS = 40
CACHE = {"type": "ephemeral"}
EMIT_TEXT_CHARS = 240
# A tool call the model was still writing when max_tokens cut the reply has
# arguments that are not whole (a file's content stops mid-line): it is
# answered with this instead of being run.
CUT_CALL = (
    "not run: your reply reached max_tokens while this call was being written, so its "
    "arguments are incomplete. Make the call again with less in it (edit_file for a part "
    "of a file, or write a long file in pieces)."
)

SYSTEM_PROMPT = """\
You are a careful software engineer doing one step of a larger plan in a code repository.
You work only through the tools you are given. The file tools take paths relative to the
repository root and refuse anything outside it. run_command runs a shell in the repository
root with the user's rights: it is not confined, so keep commands to this repository.

How to work:
- Look before you change: list and read the relevant files, search for usages.
- Make the smallest change that does the step well, in the repository's existing style.
- Prefer edit_file for changes to existing files; use write_file for new files.
- Run the project's tests or checks with run_command when they exist, and fix what you broke.
- Do only this step; later steps of the plan will do the rest.
- Watch the budget shown with each turn. When little is left, finish what you have.

When the step is done, reply without calling a tool: a short summary of what you changed
(files and why) and how you checked it. That reply ends the step.
"""


@dataclass
class _Limits:
    turns: int
    cost_usd: float | None
    wall_time_s: float | None

    def said(self) -> str:
        """'at most 40 turns, $4.99, 7200s', for the step's first line."""
        parts = [f"at most {self.turns} turns"]
        if self.cost_usd is not None:
            parts.append(f"${self.cost_usd:.2f}")
        if self.wall_time_s is not None:
            parts.append(f"{self.wall_time_s:.0f}s")
        return ", ".join(parts)


def _min(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _brief(arguments: Any, limit: int = 120) -> str:
    """A tool call's arguments in one short line for the progress log."""
    if not isinstance(arguments, dict):
        return ""
    parts = []
    for key, value in arguments.items():
        text = value if isinstance(value, str) else json.dumps(value)
        text = text.replace("\n", "\\n")
        parts.append(f"{key}={text[:60]}{'...' if len(text) > 60 else ''}")
    line = " ".join(parts)
    return line[:limit]


def task_prompt(ctx: StepContext) -> str:
    """The first user turn: the directive, this step and, on a rework, what
    must change this time."""
    spec = ctx.directive.spec
    step = ctx.step.spec
    wanted = set(step.requirement_ids)
    requirements = [r for r in spec.requirements if not wanted or r.id in wanted]
    parts = [
        f"Directive: {spec.title}",
        f"Goal: {spec.goal}",
    ]
    if requirements:
        parts.append("Requirements:\n" + "\n".join(f"- {r.id}: {r.text}" for r in requirements))
    if spec.acceptance_criteria:
        parts.append(
            "Acceptance criteria:\n" + "\n".join(f"- {c}" for c in spec.acceptance_criteria)
        )
    parts.append(
        f"Your step: {ctx.step.name} (type {step.type}), attempt {ctx.attempt}.\n"
        + (step.description or "(no description)")
    )
    if ctx.rework_instructions:
        parts.append(
            "The previous attempt at this step was reviewed and needs rework. "
            "Address these instructions first:\n" + ctx.rework_instructions
        )
    return "\n\n".join(parts)


class AgentExecutor:
    """Runs a step as a Claude tool-use loop in `ctx.workdir` (see the module docstring)."""

    kind = ExecutorKind.AGENT.value
    modifies_files = True

    def __init__(
        self,
        llm: LLMClient | None,
        *,
        max_turns: int = DEFAULT_MAX_TURNS,
        max_cost_usd: float | None = None,
        command_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
        max_tokens: int | None = None,
    ) -> None:
        if llm is None:
            raise ExecutorError("the agent executor needs Claude: set ANTHROPIC_API_KEY")
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        self.llm = llm
        self.max_turns = max_turns
        self.max_cost_usd = max_cost_usd
        self.command_timeout_s = command_timeout_s
        self.max_tokens = max_tokens

    def _limits(self, ctx: StepContext) -> _Limits:
        turns = min(ctx.budget.turns, self.max_turns) if ctx.budget.turns else self.max_turns
        return _Limits(
            turns=turns,
            cost_usd=_min(ctx.budget.cost_usd, self.max_cost_usd),
            wall_time_s=ctx.budget.wall_time_s,
        )

    async def run(self, ctx: StepContext) -> ExecutionResult:
        tools = AgentTools(
            ctx.workdir,
            command_timeout_s=self.command_timeout_s,
            on_command_line=lambda line: ctx.emit(f"  | {line}", Severity.DEBUG),
        )
        run = _Run(ctx, self._limits(ctx), tools)
        ctx.emit(f"{self.llm.model} works on the step: {run.limits.said()}", Severity.INFO)
        run.say(task_prompt(ctx) + "\n\n" + run.budget_note(0))
        for turn in range(run.limits.turns):
            over = run.over_budget()
            if over:
                return run.stop(over)
            try:
                response = await self.llm.create(
                    system=run.system,
                    tools=run.definitions,
                    messages=run.marked_messages(),
                    max_tokens=self.max_tokens,
                    on_retry=lambda line: ctx.emit(line, Severity.WARNING),
                )
            except LLMError as exc:
                if exc.cost_usd:
                    await ctx.record_cost(exc.usage, exc.cost_usd)
                stopped = run.stop(f"model call failed: {exc}")
                if exc.kind is LLMErrorKind.AUTH:  # every step would fail the same way
                    stopped.pause_reason = str(exc)
                return stopped
            await run.heard(response)
            if response.stop_reason == "model_context_window_exceeded":
                return run.stop(
                    "the conversation filled the model's context window before the agent "
                    f"finished ({turn + 1} turns)"
                )
            calls = response.tool_uses
            if not calls:
                if response.stop_reason in ("max_tokens", "pause_turn"):
                    why = f"the reply was cut off ({response.stop_reason}): asked to continue"
                    ctx.emit(why, Severity.INFO)
                    run.say(
                        "Your reply was cut off; continue where you stopped.\n"
                        + run.budget_note(turn + 1)
                    )
                    continue
                return ExecutionResult(
                    success=True,
                    summary=response.text or "(the agent finished without a summary)",
                    modified_files=list(tools.modified),
                )
            over = run.over_budget(turns=False)
            if over:
                return run.stop(over)
            last = response.content[-1] if response.content else None
            cut = last if response.stop_reason == "max_tokens" and last in calls else None
            results = [await run.answer(call, cut=call is cut) for call in calls]
            results.append({"type": "text", "text": run.budget_note(turn + 1)})
            run.messages.append({"role": "user", "content": results})
        return run.stop(f"turn limit reached ({run.limits.turns} turns) before the agent finished")


class _Run:
    """One step's conversation with the agent: its messages, what it has
    spent and what is left, and the tools' answers to its calls."""

    def __init__(self, ctx: StepContext, limits: _Limits, tools: AgentTools) -> None:
        self.ctx, self.limits, self.tools = ctx, limits, tools
        self.definitions = tools.definitions()
        self.definitions[-1]["cache_control"] = CACHE
        self.system = [{"type": "text", "text": SYSTEM_PROMPT, "cache_control": CACHE}]
        self.messages: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self.spent = 0.0
        self.last_text = ""
        self._marked: dict[str, Any] | None = None

    def say(self, text: str) -> None:
        self.messages.append({"role": "user", "content": [{"type": "text", "text": text}]})

    def budget_note(self, turns_used: int) -> str:
        limits = self.limits
        left = [f"{limits.turns - turns_used} of {limits.turns} turns"]
        if limits.cost_usd is not None:
            left.append(f"${max(limits.cost_usd - self.spent, 0):.2f} of ${limits.cost_usd:.2f}")
        if limits.wall_time_s is not None:
            elapsed = time.monotonic() - self.started
            left.append(f"{max(limits.wall_time_s - elapsed, 0):.0f}s of wall time")
        return "[Budget left for this step: " + ", ".join(left) + "]"

    def over_budget(self, *, turns: bool = True) -> str | None:
        """Why the agent may not go on (its dollars, or, before a turn, its
        wall time), or None."""
        cap = self.limits.cost_usd
        if cap is not None and self.spent >= cap:
            return (
                f"cost cap reached: this attempt spent ${self.spent:.2f} of the ${cap:.2f} it had"
            )
        wall = self.limits.wall_time_s
        if turns and wall is not None and time.monotonic() - self.started >= wall:
            return f"wall time used up ({wall:.0f}s) before the agent finished"
        return None

    def marked_messages(self) -> list[dict[str, Any]]:
        """The conversation, cached up to its newest turn: one moving marker."""
        if self._marked is not None:
            self._marked.pop("cache_control", None)
        self._marked = self.messages[-1]["content"][-1]
        self._marked["cache_control"] = CACHE
        return self.messages

    async def heard(self, response: LLMResponse) -> None:
        """A reply: its cost recorded at once (the breaker sees it while the
        step runs), its text shown, and it joins the conversation."""
        self.spent += response.cost_usd
        await self.ctx.record_cost(response.usage, response.cost_usd)
        if response.text:
            self.last_text = response.text
            self.ctx.emit(response.text[:EMIT_TEXT_CHARS].replace("\n", " "), Severity.INFO)
        self.messages.append({"role": "assistant", "content": response.content_params()})

    async def answer(self, call: Any, *, cut: bool) -> dict[str, Any]:
        """The tool's result for one call; a call cut off mid-arguments is
        not run."""
        self.ctx.emit(f"{call.name} {_brief(call.input)}", Severity.INFO)
        if cut:
            outcome = ToolOutcome(CUT_CALL, is_error=True)
        else:
            outcome = await self.tools.call(call.name, call.input)
        result: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": call.id,
            "content": outcome.content,
        }
        if outcome.is_error:
            first = outcome.content.splitlines()[0] if outcome.content else ""
            self.ctx.emit(f"{call.name}: {first[:EMIT_TEXT_CHARS]}", Severity.WARNING)
            result["is_error"] = True
        return result

    def stop(self, error: str) -> ExecutionResult:
        self.ctx.emit(error, Severity.WARNING)
        return ExecutionResult(
            success=False,
            summary=self.last_text,
            modified_files=list(self.tools.modified),
            error=error,
        )
