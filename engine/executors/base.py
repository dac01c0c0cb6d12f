"""The executor interface: run one attempt of a step in a working tree.

Executors are small adapters (shell, scripted, agent, claude_code) behind one
protocol, found by kind in `engine.executors.REGISTRY`. The engine owns
everything around an attempt (status changes, the change tracker, events,
cancellation); an executor only does the work and reports through `StepContext`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from engine.models import Directive, Severity, Step, TokenUsage


@dataclass
class Budget:
    """What the attempt may still spend; None means no limit."""

    cost_usd: float | None = None
    wall_time_s: float | None = None
    turns: int | None = None


@dataclass
class StepContext:
    directive: Directive
    step: Step
    attempt: int  # 1-based
    workdir: Path  # the repository, or the attempt's worktree
    rework_instructions: str | None = None
    budget: Budget = field(default_factory=Budget)
    # A progress line -> a StepOutput event. Never blocks.
    emit: Callable[[str, Severity], None] = lambda line, severity=Severity.DEBUG: None
    # Record the cost of one model call on the run and the directive, at once,
    # so the cost breaker sees it while the attempt is still going.
    add_cost: Callable[[TokenUsage, float], Awaitable[None]] | None = None

    async def record_cost(self, usage: TokenUsage, cost_usd: float) -> None:
        if self.add_cost is not None:
            await self.add_cost(usage, cost_usd)


@dataclass
class ExecutionResult:
    success: bool
    summary: str = ""
    modified_files: list[str] = field(default_factory=list)
    error: str | None = None
    # A failure no retry of this step can mend, whatever step runs (the API
    # refused the key): the directive pauses with this reason, the step is
    # ready again, and no failed step or decision is asked of a person.
    pause_reason: str | None = None


class Executor(Protocol):
    kind: str

    async def run(self, ctx: StepContext) -> ExecutionResult:
        """Do the step's work in `ctx.workdir`. Must stop promptly (killing any
        subprocess it started) when its task is cancelled."""
        ...


class ExecutorError(RuntimeError):
    """The executor could not run at all (misconfigured step, missing tool)."""
