"""Run a step's shell command: the executor that needs no model at all.

The command learns which attempt it is and why it is being rerun through
`DIRECTIVE_*` environment variables, so a script can act on rework
instructions the same way an agent would.
"""

from __future__ import annotations

import signal

from engine.executors.base import ExecutionResult, StepContext
from engine.models import Severity
from engine.procs import ProcessResult, run_process

DEFAULT_TIMEOUT_S = 1800.0
TAIL_LINES = 5
TAIL_CHARS = 1_000


def step_env(ctx: StepContext) -> dict[str, str]:
    """What the command is told about the attempt it runs in."""
    return {
        "DIRECTIVE_ID": ctx.directive.id,
        "DIRECTIVE_STEP": ctx.step.name,
        "DIRECTIVE_ATTEMPT": str(ctx.attempt),
        "DIRECTIVE_REWORK_INSTRUCTIONS": ctx.rework_instructions or "",
        "DIRECTIVE_REPO": str(ctx.workdir),
    }


def last_lines(output: str, count: int = TAIL_LINES, limit: int = TAIL_CHARS) -> str:
    lines = [line.rstrip("\r") for line in output.splitlines() if line.strip()]
    tail = "\n".join(lines[-count:])
    return tail[-limit:]


def _exit_description(result: ProcessResult, timeout_s: float) -> str:
    if result.timed_out:
        return f"command timed out after {timeout_s:g} s"
    code = result.exit_code
    if code is not None and code < 0:
        try:
            return f"command killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"command killed by signal {-code}"
    return f"command exited with {code}"


class ShellExecutor:
    kind = "shell"
    modifies_files = True

    async def run(self, ctx: StepContext) -> ExecutionResult:
        command = ctx.step.spec.command
        if command is None or not command.strip():
            return ExecutionResult(
                success=False,
                error=f"step {ctx.step.name!r} has no command: "
                "the shell executor runs the step's `command`",
            )
        timeout_s = ctx.step.spec.timeout_s or DEFAULT_TIMEOUT_S
        if ctx.budget.wall_time_s is not None:
            timeout_s = max(min(timeout_s, ctx.budget.wall_time_s), 1.0)
        result = await run_process(
            command,
            cwd=ctx.workdir,
            env=step_env(ctx),
            timeout_s=timeout_s,
            on_line=lambda line: ctx.emit(line, Severity.DEBUG),
        )
        tail = last_lines(result.output)
        if result.ok:
            last = tail.splitlines()[-1] if tail else "(no output)"
            return ExecutionResult(success=True, summary=f"exit 0: {last}")
        what = _exit_description(result, timeout_s)
        return ExecutionResult(success=False, summary=what, error=failure(what, tail))


def failure(what: str, tail: str) -> str:
    """Why the step failed, its last output line first: the views of one
    line (the log, the approvals, a toast) show the error's first line, and
    a build's error is its last (they showed the fifth line from the end).
    The lines before it follow, for the rework and the step panel."""
    if not tail:
        return f"{what} (no output)"
    *before, last = tail.splitlines()
    if not before:
        return f"{what}: {last}"
    return f"{what}: {last}\nthe output ended:\n{tail}"
