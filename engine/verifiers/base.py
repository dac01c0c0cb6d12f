"""The verifier interface: score a step attempt in [0, 1]."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from engine.models import Directive, Step, StepRun, TokenUsage, VerifierResult


class NoVerdictError(RuntimeError):
    """The verifier could not judge this attempt (its service was down or
    answered badly). That says nothing about the work, so a non-gating
    verifier raising it is left out of the score instead of scoring 0."""


class PauseDirective(RuntimeError):
    """The verifier met what no attempt can mend and every step would meet
    alike (the API refused the key): the evaluation stops, the attempt is
    put back to run again, and the directive pauses with this message as
    its reason, as when the agent's key is refused. Not a silent "no
    verdict" on every step while the run goes on unjudged."""


@dataclass
class VerifyContext:
    directive: Directive
    step: Step
    run: StepRun
    workdir: Path
    modified_files: list[str] = field(default_factory=list)
    prior_results: list[VerifierResult] = field(default_factory=list)  # for the LLM judge
    diff_base: str | None = None  # the attempt's start commit, when it ran in a worktree
    emit: Callable[[str, str], None] = lambda source, line: None  # (verifier name, line)
    add_cost: Callable[[TokenUsage, float], Awaitable[None]] | None = None


class Verifier(Protocol):
    name: str
    kind: str
    weight: float
    gating: bool

    async def verify(self, ctx: VerifyContext) -> VerifierResult: ...
