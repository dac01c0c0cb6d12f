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
from engine.llm import LLMClient, LLMError
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
        limits = self._limits(ctx)
        tools = AgentTools(
            ctx.workdir,
            command_timeout_s=self.command_timeout_s,
            on_command_line=lambda line: ctx.emit(f"  | {line}", Severity.DEBUG),
        )
        definitions = tools.definitions()
        definitions[-1]["cache_control"] = CACHE
        system = [{"type": "text", "text": SYSTEM_PROMPT, "cache_control": CACHE}]
        started = time.monotonic()
        spent = 0.0
        last_text = ""

        def budget_note(turns_used: int) -> str:
            left = [f"{limits.turns - turns_used} of {limits.turns} turns"]
            if limits.cost_usd is not None:
                left.append(f"${max(limits.cost_usd - spent, 0):.2f} of ${limits.cost_usd:.2f}")
            if limits.wall_time_s is not None:
                elapsed = time.monotonic() - started
                left.append(f"{max(limits.wall_time_s - elapsed, 0):.0f}s of wall time")
            return "[Budget left for this step: " + ", ".join(left) + "]"

        def stop(error: str) -> ExecutionResult:
            ctx.emit(error, Severity.WARNING)
            return ExecutionResult(
                success=False, summary=last_text, modified_files=list(tools.modified), error=error
            )

        messages: list[dict[str, Any]] = [
            {
                "role": "user",
                "content": [{"type": "text", "text": task_prompt(ctx) + "\n\n" + budget_note(0)}],
            }
        ]
        marked: dict[str, Any] | None = None
        for turn in range(limits.turns):
            if limits.cost_usd is not None and spent >= limits.cost_usd:
                return stop(
                    f"cost cap reached: spent ${spent:.4f} of the step's ${limits.cost_usd:.4f}"
                )
            if limits.wall_time_s is not None and time.monotonic() - started >= limits.wall_time_s:
                return stop(
                    f"wall time used up ({limits.wall_time_s:.0f}s) before the agent finished"
                )
            # Cache everything up to the newest turn; only one moving marker.
            if marked is not None:
                marked.pop("cache_control", None)
            marked = messages[-1]["content"][-1]
            marked["cache_control"] = CACHE
            try:
                response = await self.llm.create(
                    system=system, tools=definitions, messages=messages, max_tokens=self.max_tokens
                )
            except LLMError as exc:
                if exc.cost_usd:
                    await ctx.record_cost(exc.usage, exc.cost_usd)
                return stop(f"model call failed: {exc}")
            spent += response.cost_usd
            await ctx.record_cost(response.usage, response.cost_usd)
            if response.text:
                last_text = response.text
                ctx.emit(response.text[:EMIT_TEXT_CHARS].replace("\n", " "), Severity.INFO)
            messages.append({"role": "assistant", "content": response.content_params()})
            if response.stop_reason == "model_context_window_exceeded":
                return stop(
                    "the conversation filled the model's context window before the agent "
                    f"finished ({turn + 1} turns)"
                )

            calls = response.tool_uses
            last = response.content[-1] if response.content else None
            cut = last if response.stop_reason == "max_tokens" and last in calls else None
            if not calls:
                if response.stop_reason in ("max_tokens", "pause_turn"):
                    messages.append(
                        {
                            "role": "user",
                            "content": [
                                {
                                    "type": "text",
                                    "text": "Your reply was cut off; continue where you stopped.\n"
                                    + budget_note(turn + 1),
                                }
                            ],
                        }
                    )
                    continue
                return ExecutionResult(
                    success=True,
                    summary=response.text or "(the agent finished without a summary)",
                    modified_files=list(tools.modified),
                )
            if limits.cost_usd is not None and spent >= limits.cost_usd:
                return stop(
                    f"cost cap reached: spent ${spent:.4f} of the step's ${limits.cost_usd:.4f}"
                )

            results: list[dict[str, Any]] = []
            for call in calls:
                ctx.emit(f"{call.name} {_brief(call.input)}", Severity.INFO)
                outcome = (
                    ToolOutcome(CUT_CALL, is_error=True)
                    if call is cut
                    else await tools.call(call.name, call.input)
                )
                if outcome.is_error:
                    ctx.emit(
                        f"{call.name}: {outcome.content.splitlines()[0][:EMIT_TEXT_CHARS]}",
                        Severity.WARNING,
                    )
                result: dict[str, Any] = {
                    "type": "tool_result",
                    "tool_use_id": call.id,
                    "content": outcome.content,
                }
                if outcome.is_error:
                    result["is_error"] = True
                results.append(result)
            results.append({"type": "text", "text": budget_note(turn + 1)})
            messages.append({"role": "user", "content": results})
        return stop(f"turn limit reached ({limits.turns} turns) before the agent finished")
