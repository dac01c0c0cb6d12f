"""Small, honest doubles for engine tests: an executor and a verifier whose
behaviour is written per step and attempt, so each test reads as the story
it pins down. Everything else (store, bus, engine, evaluator) is real."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.engine import DirectiveEngine, EngineServices
from engine.executors.base import ExecutionResult, StepContext
from engine.models import (
    Autonomy,
    DirectiveSpec,
    ExecutorKind,
    Limits,
    PlannerKind,
    StepSpec,
    TokenUsage,
    VerifierConfig,
    VerifierResult,
)
from engine.verifiers.base import VerifyContext


@dataclass
class Script:
    """Per step name: one score per run (the last repeats); optional cost,
    failure and delay. `writes`: each run leaves `out/<step>` (its attempt
    number) in its working tree, so a git workspace gets a commit per step."""

    scores: dict[str, list[float]] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)
    fail: dict[str, str] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)
    gating: bool = False
    writes: bool = False
    calls: list[tuple[str, int, str | None]] = field(default_factory=list)

    def score(self, step: str) -> float:
        """The score for the latest run of `step`, counting runs across
        replanned chains too."""
        runs = sum(1 for name, _, _ in self.calls if name == step)
        seq = self.scores.get(step, [1.0])
        return seq[min(runs, len(seq)) - 1]


class ScriptExecutor:
    kind = "script"
    modifies_files = False

    def __init__(self, script: Script) -> None:
        self.script = script

    async def run(self, ctx: StepContext) -> ExecutionResult:
        name = ctx.step.name
        self.script.calls.append((name, ctx.attempt, ctx.rework_instructions))
        ctx.emit(f"working on {name} (attempt {ctx.attempt})")
        if name in self.script.delay:
            await asyncio.sleep(self.script.delay[name])
        if name in self.script.costs:
            await ctx.record_cost(TokenUsage(input_tokens=1000), self.script.costs[name])
        if name in self.script.fail:
            return ExecutionResult(success=False, error=self.script.fail[name])
        if self.script.writes:
            (ctx.workdir / "out").mkdir(exist_ok=True)
            (ctx.workdir / "out" / name).write_text(f"{ctx.attempt}\n")
        return ExecutionResult(success=True, summary=f"{name} done")


class ScriptVerifier:
    name = "scripted-check"
    kind = "command"
    weight = 1.0

    def __init__(self, script: Script) -> None:
        self.script = script
        self.gating = script.gating

    async def verify(self, ctx: VerifyContext) -> VerifierResult:
        score = self.script.score(ctx.step.name)
        return VerifierResult(
            name=self.name,
            passed=score >= 0.8,
            score=score,
            gating=self.gating,
            summary=f"score {score}",
            output_tail=f"{ctx.step.name} attempt {ctx.run.attempt} scored {score}",
        )


def services(script: Script) -> EngineServices:
    return EngineServices(
        llm_provider=lambda spec: None,
        executor=lambda kind, llm: ScriptExecutor(script),
        verifiers=lambda d, step, llm: [ScriptVerifier(script)],
        track_changes=False,
        output_flush_s=0.01,
    )


def chain_spec(
    repo: Path,
    steps: list[tuple[str, list[str]]],
    *,
    autonomy: Autonomy = Autonomy.GUARDRAILS,
    **limits: Any,
) -> DirectiveSpec:
    """A directive with explicit steps given as (name, depends_on)."""
    return DirectiveSpec(
        title="test directive",
        goal="exercise the engine",
        repo=repo,
        autonomy=autonomy,
        planner=PlannerKind.EXPLICIT,
        executor=ExecutorKind.SHELL,
        verifiers=VerifierConfig(auto_detect=False, llm_judge=False),
        limits=Limits(**limits),
        steps=[StepSpec(name=n, type="implement", depends_on=deps) for n, deps in steps],
    )


async def statuses(engine: DirectiveEngine, directive_id: str) -> dict[str, str]:
    chain = await engine.store.current_chain(directive_id)
    if chain is None:
        return {}
    return {s.name: s.status.value for s in await engine.store.list_steps(chain.id)}
