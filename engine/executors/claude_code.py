"""The `claude_code` executor: hand a step to Claude Code (claude-agent-sdk).

An optional extra (`pip install 'directive-tui[claude-code]'`, which also
needs the Claude Code CLI); imported only when a step runs, so the app
starts without it. Claude Code brings its own tools and loop; we give it the
repository as its working directory, the step as the prompt, a turn cap and
a dollar cap, and record the total cost it reports.

Permission mode, chosen deliberately: `acceptEdits`. File edits inside the
working directory are approved without asking (there is nobody to ask, and
the engine tracks and verifies every change afterwards). Other tools are not
blanket-approved as `bypassPermissions` would do: only the ones listed in
`allowed_tools` run (reading, searching and — so it can run the tests —
Bash, like our own agent's run_command); anything else (web access, MCP
servers) is refused.

Claude Code calls the API itself, so it is the one component handed the
Anthropic credentials on purpose (`options["env"]`); commands run through
`engine.procs` never get them. Its own shell does, so what it writes back is
scrubbed of them before it becomes an event or the step's summary.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine import pricing
from engine.executors.agent import task_prompt
from engine.executors.base import ExecutionResult, ExecutorError, StepContext
from engine.models import ExecutorKind, Severity, TokenUsage
from engine.paths import PathEscapeError, relative_to_repo
from engine.procs import credentials, scrub, secret_values

INSTALL_HINT = "install directive-tui[claude-code] (pip install 'directive-tui[claude-code]')"
PERMISSION_MODE = "acceptEdits"
READ_TOOLS = ("Read", "Glob", "Grep", "LS")
EDIT_TOOLS = ("Edit", "MultiEdit", "Write", "NotebookEdit")  # tools whose file_path we report
DEFAULT_MAX_TURNS = 40
EMIT_CHARS = 240

APPEND_PROMPT = (
    "You are doing one step of a larger plan that other steps continue. Do only this step, "
    "in the repository's style; run its tests when it has them. End with a short summary of "
    "what you changed and how you checked it."
)


def _import_sdk() -> Any:
    try:
        import claude_agent_sdk  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ExecutorError(
            f"the claude_code executor needs the claude-agent-sdk package: {INSTALL_HINT}"
        ) from exc
    return claude_agent_sdk


def _usage(raw: Any) -> TokenUsage:
    data = raw if isinstance(raw, dict) else {}

    def count(name: str) -> int:
        value = data.get(name)
        return int(value) if isinstance(value, (int, float)) else 0

    return TokenUsage(
        input_tokens=count("input_tokens"),
        output_tokens=count("output_tokens"),
        cache_creation_input_tokens=count("cache_creation_input_tokens"),
        cache_read_input_tokens=count("cache_read_input_tokens"),
    )


class ClaudeCodeExecutor:
    """Runs a step through Claude Code; see the module docstring."""

    kind = ExecutorKind.CLAUDE_CODE.value
    modifies_files = True

    def __init__(
        self,
        *,
        max_turns: int = DEFAULT_MAX_TURNS,
        max_budget_usd: float | None = None,
        allow_bash: bool = True,
        model: str | None = None,
    ) -> None:
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        self.max_turns = max_turns
        self.max_budget_usd = max_budget_usd
        self.allow_bash = allow_bash
        self.model = model

    def options(self, ctx: StepContext) -> dict[str, Any]:
        """The ClaudeAgentOptions for this attempt, as keyword arguments."""
        budgets = [b for b in (ctx.budget.cost_usd, self.max_budget_usd) if b is not None]
        turns = min(ctx.budget.turns, self.max_turns) if ctx.budget.turns else self.max_turns
        model = (
            self.model
            or ctx.directive.spec.model
            or os.environ.get("DIRECTIVE_MODEL", "").strip()
            or pricing.DEFAULT_MODEL
        )
        tools = [*READ_TOOLS, *EDIT_TOOLS] + (["Bash"] if self.allow_bash else [])
        return {
            "cwd": str(Path(ctx.workdir).resolve()),
            "model": model,
            "max_turns": turns,
            "max_budget_usd": min(budgets) if budgets else None,
            "permission_mode": PERMISSION_MODE,
            "allowed_tools": tools,
            "system_prompt": {"type": "preset", "preset": "claude_code", "append": APPEND_PROMPT},
            "env": credentials(),
        }

    async def run(self, ctx: StepContext) -> ExecutionResult:
        sdk = _import_sdk()
        options = self.options(ctx)
        if options["max_budget_usd"] is not None and options["max_budget_usd"] <= 0:
            return ExecutionResult(success=False, error="no cost budget left for this step")
        root = Path(options["cwd"])
        modified: list[str] = []
        last_text = ""
        secrets = secret_values(options["env"])
        result: Any = None
        try:
            async for message in sdk.query(
                prompt=task_prompt(ctx), options=sdk.ClaudeAgentOptions(**options)
            ):
                if isinstance(message, sdk.ResultMessage):
                    result = message
                    continue
                if not isinstance(message, sdk.AssistantMessage):
                    continue
                for block in message.content:
                    if isinstance(block, sdk.TextBlock) and block.text.strip():
                        last_text = scrub(block.text.strip(), secrets)
                        ctx.emit(last_text[:EMIT_CHARS].replace("\n", " "), Severity.INFO)
                    elif isinstance(block, sdk.ToolUseBlock):
                        path = (block.input or {}).get("file_path") or (block.input or {}).get(
                            "notebook_path"
                        )
                        ctx.emit(f"{block.name} {path or ''}".strip(), Severity.INFO)
                        if block.name in EDIT_TOOLS and isinstance(path, str):
                            rel = _relative(root, path)
                            if rel and rel not in modified:
                                modified.append(rel)
        except Exception as exc:
            if type(exc).__name__ == "CLINotFoundError":
                raise ExecutorError(
                    f"the Claude Code CLI was not found ({exc}); install Claude Code, then {INSTALL_HINT}"
                ) from exc
            raise
        if result is None:
            return ExecutionResult(
                success=False,
                summary=last_text,
                modified_files=modified,
                error="Claude Code ended without a result message",
            )
        cost = float(getattr(result, "total_cost_usd", None) or 0.0)
        await ctx.record_cost(_usage(getattr(result, "usage", None)), cost)
        summary = scrub((getattr(result, "result", None) or last_text or "").strip(), secrets)
        if getattr(result, "is_error", False):
            subtype = getattr(result, "subtype", "error")
            return ExecutionResult(
                success=False,
                summary=summary,
                modified_files=modified,
                error=f"Claude Code stopped: {subtype}" + (f": {summary[:300]}" if summary else ""),
            )
        return ExecutionResult(
            success=True, summary=summary or "(no summary)", modified_files=modified
        )


def _relative(root: Path, path: str) -> str | None:
    """`path` relative to the repository, or None when it is outside."""
    try:
        return relative_to_repo(root, path)
    except PathEscapeError:
        return None
