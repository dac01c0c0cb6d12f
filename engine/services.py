"""Pluggable services: what the engine builds planners, executors, verifiers
and the evaluator with. Tests and benchmarks swap these; the app uses the
defaults, which import their modules only when first used."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.executors.base import Executor
from engine.models import Directive, DirectiveSpec, PlannerKind, Step, StepSpec
from engine.verifiers.base import Verifier


def default_llm_provider(spec: DirectiveSpec) -> Any | None:
    """A Claude client when a key is configured; imported only then."""
    if not os.environ.get("ANTHROPIC_API_KEY"):
        return None
    from engine.llm import LLMClient

    return LLMClient.from_env(model=spec.model)


def default_planner(kind: PlannerKind, llm: Any | None) -> Any:
    from engine.planner import make_planner

    return make_planner(kind, llm=llm)


def default_executor(kind: str, llm: Any | None) -> Executor:
    from engine.executors import ExecutorDeps, build_executor

    return build_executor(kind, ExecutorDeps(llm=llm))


# Steps that read and think rather than change code are not judged by the
# repository's tests and linters (which may well be red before the fix), only
# by the LLM judge when there is one, unless the step names its verifiers.
READING_STEP_TYPES = frozenset({"research", "design", "review"})


def judged_as(spec: StepSpec) -> StepSpec:
    """The step as its checks are chosen: a reading step (research, design,
    review) that names none is judged by the LLM judge alone (the
    repository's tests may well be red before the fix, no fault of its)."""
    from engine.verifiers.registry import LLM_JUDGE_NAME

    if spec.verifiers is None and spec.type in READING_STEP_TYPES:
        return spec.model_copy(update={"verifiers": [LLM_JUDGE_NAME]})
    return spec


def default_verifiers(directive: Directive, step: Step, llm: Any | None) -> list[Verifier]:
    from engine.verifiers.registry import build_verifiers

    spec = judged_as(step.spec)
    judge = None
    if llm is not None and directive.spec.verifiers.llm_judge:
        from engine.verifiers.llm_judge import LLMJudge

        judge = LLMJudge(llm, weight=directive.spec.verifiers.llm_judge_weight)
    return build_verifiers(directive.spec, Path(directive.spec.repo), spec, llm_judge=judge)


def default_evaluator(verifiers: list[Verifier], directive: Directive) -> Any:
    from engine.evaluator import CompositeEvaluator

    return CompositeEvaluator(verifiers, directive.spec.thresholds)


@dataclass
class EngineServices:
    llm_provider: Callable[[DirectiveSpec], Any | None] = default_llm_provider
    planner: Callable[[PlannerKind, Any | None], Any] = default_planner
    executor: Callable[[str, Any | None], Executor] = default_executor
    verifiers: Callable[[Directive, Step, Any | None], list[Verifier]] = default_verifiers
    evaluator: Callable[[list[Verifier], Directive], Any] = default_evaluator
    track_changes: bool = True
    output_flush_s: float = 0.05
    # Git worktrees per attempt (when the repo is a git work tree), kept in
    # `work_dir` (default: beside the database, never inside the repo).
    isolate_steps: bool = True
    work_dir: Path | None = None
    # One running engine per database file (engine/lease.py): a second one
    # watches, and takes over when the holder is gone.
    take_lease: bool = True
    lease_heartbeat_s: float = 5.0
    lease_stale_after_s: float = 30.0
    external_poll_s: float = 0.5  # how often to look for other processes' writes
