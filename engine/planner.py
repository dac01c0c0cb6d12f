"""Planning: a directive becomes a validated chain of steps.

`Planner` implementations: `TemplatePlanner` (research -> implement -> test),
`ExplicitPlanner` (the steps written in the directive file) and, in
`engine.llm_planner`, the Claude planner. Every plan passes `validate_chain`
before the engine stores it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel, Field

from engine.models import Directive, Step, StepSpec, TokenUsage


class PlannedChain(BaseModel):
    steps: list[StepSpec]
    rationale: str = ""
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost_usd: float = 0.0  # what planning itself cost (LLM planner)


@dataclass
class ReplanContext:
    """What a replan knows: steps that passed (kept as they are), the step
    that failed or was blocked, and why the chain is being replaced."""

    reason: str
    kept: list[Step] = field(default_factory=list)
    failed: Step | None = None


class Planner(Protocol):
    kind: str

    async def plan(self, directive: Directive, replan: ReplanContext | None = None) -> PlannedChain: ...


class ChainValidationError(ValueError):
    """The chain is not a usable DAG; the message names the offending steps."""
