"""An executor that does nothing and succeeds: for benchmarks of the engine
itself and for tests that only care about the chain."""

from __future__ import annotations

from engine.executors.base import ExecutionResult, StepContext


class NoopExecutor:
    kind = "noop"
    modifies_files = False  # the engine skips change tracking

    async def run(self, ctx: StepContext) -> ExecutionResult:
        return ExecutionResult(
            success=True, summary=f"noop: {ctx.step.name} (attempt {ctx.attempt})"
        )
