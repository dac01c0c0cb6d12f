"""Planning: a directive becomes a validated chain of steps.

`Planner` implementations: `TemplatePlanner` (research -> implement -> test),
`ExplicitPlanner` (the steps written in the directive file) and, in
`engine.llm_planner`, the Claude planner. Every plan passes `validate_chain`
before the engine stores it.
"""

from __future__ import annotations

import heapq
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from types import MappingProxyType
from typing import Any, Protocol

from pydantic import BaseModel, Field

from engine.models import (
    Directive,
    DirectiveSpec,
    PlannerKind,
    Step,
    StepSpec,
    StepType,
    TokenUsage,
)


class PlannedChain(BaseModel):
    steps: list[StepSpec]
    rationale: str = ""
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost_usd: float = 0.0  # what planning itself cost (LLM planner)
    charged_usd: float = 0.0  # of cost_usd, charged call by call while it planned


@dataclass
class ReplanContext:
    """What a replan knows: steps that passed (kept as they are), the step
    that failed or was blocked, and why the chain is being replaced."""

    reason: str
    kept: list[Step] = field(default_factory=list)
    failed: Step | None = None


class Planner(Protocol):
    kind: str

    async def plan(
        self, directive: Directive, replan: ReplanContext | None = None
    ) -> PlannedChain: ...


class ChainValidationError(ValueError):
    """The chain is not a usable DAG; the message names the offending steps."""


# --------------------------------------------------------------------------
# Chain validation
# --------------------------------------------------------------------------

KNOWN_STEP_TYPES: tuple[str, ...] = tuple(t.value for t in StepType)
_MAX_CYCLES_REPORTED = 5


def _and_list(items: Sequence[object]) -> str:
    """'a', 'a and b', 'a, b and c': how a person lists things."""
    words = [str(i) for i in items]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _check_not_empty(steps: Sequence[StepSpec]) -> list[str]:
    return [] if steps else ["the chain has no steps"]


def _check_unique_names(steps: Sequence[StepSpec]) -> list[str]:
    positions: dict[str, list[int]] = {}
    for number, step in enumerate(steps, start=1):
        positions.setdefault(step.name, []).append(number)
    return [
        f"duplicate step name {name!r} (steps {_and_list(numbers)})"
        for name, numbers in positions.items()
        if len(numbers) > 1
    ]


def _check_known_types(steps: Sequence[StepSpec]) -> list[str]:
    problems = [
        f"step {s.name!r} has unknown type {s.type!r}"
        for s in steps
        if s.type not in KNOWN_STEP_TYPES
    ]
    if problems:
        problems[-1] += f" (known types: {', '.join(KNOWN_STEP_TYPES)})"
    return problems


def _check_no_self_dependency(steps: Sequence[StepSpec]) -> list[str]:
    return [f"step {s.name!r} depends on itself" for s in steps if s.name in s.depends_on]


def _check_no_repeated_dependency(steps: Sequence[StepSpec]) -> list[str]:
    """A dependency listed twice is one edge; the store keeps each edge once
    and would refuse the whole chain at the insert."""
    return [
        f"step {s.name!r} lists dependency {dep!r} more than once"
        for s in steps
        for dep in dict.fromkeys(s.depends_on)
        if s.depends_on.count(dep) > 1
    ]


def _check_known_dependencies(steps: Sequence[StepSpec]) -> list[str]:
    names = {s.name for s in steps}
    return [
        f"step {s.name!r} depends on unknown step {dep!r}"
        for s in steps
        for dep in dict.fromkeys(s.depends_on)
        if dep not in names
    ]


def _find_cycles(steps: Sequence[StepSpec]) -> list[str]:
    """Every cycle graphlib finds, one at a time: report one, drop its steps,
    look again. Each is written in running order, from its earliest step in
    the file: `a -> b -> a` means b needs a and a needs b."""
    index = {s.name: i for i, s in enumerate(steps)}
    graph = {s.name: set(s.depends_on) for s in steps}
    found: list[str] = []
    while len(found) < _MAX_CYCLES_REPORTED:
        try:
            TopologicalSorter(graph).prepare()
            return found
        except CycleError as exc:
            cycle = list(exc.args[1][:-1])
        start = min(range(len(cycle)), key=lambda i: index.get(cycle[i], len(index)))
        cycle = cycle[start:] + cycle[:start]
        found.append("cycle: " + " -> ".join([*cycle, cycle[0]]))
        for name in cycle:
            graph.pop(name, None)
        graph = {name: deps - set(cycle) for name, deps in graph.items()}
    found[-1] += " (and maybe more cycles)"
    return found


def _ordered(steps: Sequence[StepSpec]) -> list[str]:
    """Topological order, ties broken by file order: a file that is already in
    a valid order comes back unchanged."""
    index = {s.name: i for i, s in enumerate(steps)}
    sorter = TopologicalSorter({s.name: s.depends_on for s in steps})
    sorter.prepare()
    heap: list[tuple[int, str]] = []
    order: list[str] = []
    while sorter.is_active():
        for name in sorter.get_ready():
            heapq.heappush(heap, (index[name], name))
        _, name = heapq.heappop(heap)
        order.append(name)
        sorter.done(name)
    return order


# Checks run in this order; the first kind that finds problems is reported
# (a cycle search on a chain with duplicate names would only confuse).
_STRUCTURE_CHECKS = (
    _check_unique_names,
    _check_no_self_dependency,
    _check_no_repeated_dependency,
    _check_known_dependencies,
    _find_cycles,
)
_CHAIN_CHECKS = (_check_not_empty, _check_unique_names, _check_known_types, *_STRUCTURE_CHECKS[1:])


Check = Callable[[Sequence[StepSpec]], list[str]]


def _run_checks(steps: Sequence[StepSpec], checks: Sequence[Check]) -> list[str]:
    for check in checks:
        problems = check(steps)
        if problems:
            raise ChainValidationError("; ".join(problems))
    return _ordered(steps)


def topological_order(steps: Sequence[StepSpec]) -> list[str]:
    """The running order of a chain whose shape is sound (unique names, known
    dependencies, no cycle); step types are not looked at. Raises
    ChainValidationError otherwise."""
    return _run_checks(steps, _STRUCTURE_CHECKS)


def validate_chain(steps: Sequence[StepSpec]) -> list[str]:
    """Check that `steps` form a usable chain and return their running order
    (ties in file order). Raises ChainValidationError naming every offending
    step of the first kind of problem found: no steps, duplicate names,
    unknown types, self-dependency, repeated dependency, unknown dependency,
    cycle."""
    return _run_checks(steps, _CHAIN_CHECKS)


def compose_replan(kept: Sequence[StepSpec], planned: Sequence[StepSpec]) -> list[StepSpec]:
    """The chain after a replan: the kept (passed) steps first, as they are,
    then the planned steps whose names are not kept.

    A kept step's dependency on a step the new chain no longer has is
    dropped: the kept step passed already, so the order it asked for was met
    (this happens when a dependency was skipped). Everything else must make a
    valid chain, or ChainValidationError says why."""
    kept_names = {s.name for s in kept}
    new = [s for s in planned if s.name not in kept_names]
    names = kept_names | {s.name for s in new}

    def present_dependencies(step: StepSpec) -> StepSpec:
        deps = [d for d in step.depends_on if d in names]
        return step if deps == step.depends_on else step.model_copy(update={"depends_on": deps})

    chain = [present_dependencies(s) for s in kept] + new
    validate_chain(chain)
    return chain


# --------------------------------------------------------------------------
# Planners without a model
# --------------------------------------------------------------------------


def _bullets(title: str, lines: Sequence[str]) -> str:
    return f"\n\n{title}:\n" + "\n".join(f"- {line}" for line in lines) if lines else ""


def _requirement_lines(spec: DirectiveSpec) -> list[str]:
    return [f"{r.id}: {r.text}" for r in spec.requirements]


def _research(spec: DirectiveSpec) -> str:
    return (
        f"Study the repository and work out what must change to reach the goal: {spec.goal}\n"
        "Name the files, functions and tests involved and the approach; change no files."
        + _bullets("Requirements to account for", _requirement_lines(spec))
    )


def _implement(spec: DirectiveSpec) -> str:
    return (
        f"Make the changes that reach the goal: {spec.goal}\n"
        "Follow the research step's findings and the repository's existing style."
        + _bullets("Requirements", _requirement_lines(spec))
    )


def _test(spec: DirectiveSpec) -> str:
    return (
        f"Add or update tests that show the goal is met, then run them: {spec.goal}"
        + _bullets("Acceptance criteria", spec.acceptance_criteria)
        + _bullets("Requirements covered", _requirement_lines(spec))
    )


@dataclass(frozen=True)
class _TemplateStep:
    name: str
    type: StepType
    depends_on: tuple[str, ...]
    carries_requirements: bool
    describe: Callable[[DirectiveSpec], str]


TEMPLATE: tuple[_TemplateStep, ...] = (
    _TemplateStep("research", StepType.RESEARCH, (), False, _research),
    _TemplateStep("implement", StepType.IMPLEMENT, ("research",), True, _implement),
    _TemplateStep("test", StepType.TEST, ("implement",), True, _test),
)


class TemplatePlanner:
    """research -> implement -> test, worded from the directive. A replan
    gives the same three steps; the engine keeps the ones that passed."""

    kind = PlannerKind.TEMPLATE.value

    async def plan(self, directive: Directive, replan: ReplanContext | None = None) -> PlannedChain:
        spec = directive.spec
        requirement_ids = [r.id for r in spec.requirements]
        steps = [
            StepSpec(
                name=t.name,
                type=t.type.value,
                description=t.describe(spec),
                depends_on=list(t.depends_on),
                requirement_ids=requirement_ids if t.carries_requirements else [],
            )
            for t in TEMPLATE
        ]
        validate_chain(steps)
        rationale = "template: research -> implement -> test"
        if replan is not None:
            rationale += f" (replanned: {replan.reason})"
        return PlannedChain(steps=steps, rationale=rationale)


class ExplicitPlanner:
    """The steps written in the directive file, as written. A replan gives
    them again; the engine keeps the ones that passed and reruns the rest."""

    kind = PlannerKind.EXPLICIT.value

    async def plan(self, directive: Directive, replan: ReplanContext | None = None) -> PlannedChain:
        if not directive.spec.steps:
            raise ChainValidationError(
                "the explicit planner needs steps: add [[steps]] tables to the directive file"
            )
        steps = [s.model_copy(deep=True) for s in directive.spec.steps]
        validate_chain(steps)
        rationale = "explicit: the steps written in the directive file"
        if replan is not None:
            rationale += f" (replanned: {replan.reason})"
        return PlannedChain(steps=steps, rationale=rationale)


# --------------------------------------------------------------------------
# Planner registry
# --------------------------------------------------------------------------


class PlannerUnavailableError(RuntimeError):
    """The planner kind exists but cannot run here (no API key, say)."""


def _template_planner(llm: Any) -> Planner:
    return TemplatePlanner()


def _explicit_planner(llm: Any) -> Planner:
    return ExplicitPlanner()


def _anthropic_planner(llm: Any) -> Planner:
    # Imported here, not at the top: the Claude planner pulls in anthropic,
    # which is slow to import and not needed by the other kinds.
    if llm is None:
        raise PlannerUnavailableError("the anthropic planner needs ANTHROPIC_API_KEY")
    return importlib.import_module("engine.llm_planner").LLMPlanner(llm)


PLANNERS: Mapping[PlannerKind, Callable[[Any], Planner]] = MappingProxyType(
    {
        PlannerKind.TEMPLATE: _template_planner,
        PlannerKind.EXPLICIT: _explicit_planner,
        PlannerKind.ANTHROPIC: _anthropic_planner,
    }
)


def make_planner(kind: PlannerKind | str, *, llm: Any = None) -> Planner:
    """The planner for `kind`; `llm` is the model client the anthropic kind needs."""
    try:
        planner_kind = PlannerKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in PLANNERS)
        raise ValueError(f"unknown planner kind {kind!r} (known: {known})") from None
    return PLANNERS[planner_kind](llm)
