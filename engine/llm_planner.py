"""The `anthropic` planner: Claude turns a directive into a chain of steps.

The answer is structured output (the JSON schema of `ChainDraft`), so it is
parsed, not scraped. A chain that is not a usable DAG (cycle, unknown
dependency, duplicate name, no steps, a blank or over-long name, a blank
description, unknown requirement id) or is too long (over MAX_PLANNED_STEPS)
goes back to the model with the validation error for a bounded number of
corrections;
after that, `PlanningError` says what was still wrong. A replan shows the
model what already passed (kept as it is), what failed and why.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, Field

from engine.llm import DEFAULT_MAX_TOKENS, LLMClient, LLMError, LLMErrorKind, UsageTotal
from engine.models import Directive, PlannerKind, StepSpec, StepType, TokenUsage
from engine.planner import (
    ChainValidationError,
    PlannedChain,
    ReplanContext,
    compose_replan,
    validate_chain,
)

DEFAULT_CORRECTIONS = 2  # attempts after the first, when the chain is invalid
PLAN_MAX_TOKENS = 8_000
# A plan cut off at its token limit is asked for again with twice the limit
# (and asked to be brief), up to this: the same limit would cut it again.
# No higher than the client's default: the SDK refuses a call that is not
# streamed past about 21,000 tokens (a ValueError, not an API error).
PLAN_MAX_TOKENS_CEILING = DEFAULT_MAX_TOKENS
# The prompt asks for 2 to 8 steps; a plan may stretch that, but every step
# is an agent session that costs money, so a far longer one is sent back.
# Kept steps of a replan (already passed) do not count.
MAX_PLANNED_STEPS = 20
MAX_NAME_CHARS = 60  # a name is a label in the DAG and in every event line


def _over_budget(directive: Directive, spent_usd: float) -> str | None:
    """Why another planning call may not be made: the directive's cost, with
    what this planning has spent so far, has reached its limit."""
    limit = directive.spec.limits.max_cost_usd
    total = directive.total_cost_usd + spent_usd
    if limit is None or total < limit:
        return None
    return f"the cost limit ${limit:.2f} is reached (${total:.2f} with this planning)"


class PlanningError(RuntimeError):
    """Planning gave no usable chain. Carries what the failed calls cost."""

    def __init__(
        self, message: str, *, usage: TokenUsage | None = None, cost_usd: float = 0.0
    ) -> None:
        super().__init__(message)
        self.usage = usage or TokenUsage()
        self.cost_usd = cost_usd


# --------------------------------------------------------------------------
# The answer's shape (its JSON schema is what the model must fill)
# --------------------------------------------------------------------------


class StepDraft(BaseModel):
    name: str = Field(
        description="Short unique step name, lowercase with dashes, e.g. 'add-parser'."
    )
    type: StepType = Field(description="What kind of work the step is.")
    description: str = Field(
        description="What to do in this step, concretely enough for a coding agent."
    )
    depends_on: list[str] = Field(description="Names of steps that must finish before this one.")
    requirement_ids: list[str] = Field(
        description="Ids of the directive's requirements this step serves."
    )


class ChainDraft(BaseModel):
    rationale: str = Field(description="One or two sentences on why the chain has this shape.")
    steps: list[StepDraft] = Field(description="The steps, in a sensible running order.")


SYSTEM_PROMPT = """\
You plan software work. Given a directive (a goal for a code repository, with requirements
and acceptance criteria), you return a chain of steps: a directed acyclic graph where each
step is done by a coding agent working in the repository, and is then checked by the
repository's tests and linters and by a reviewer.

Rules for the chain:
- Between 2 and 8 steps; each small enough for one focused agent session.
- Unique names; depends_on only names steps of this chain; no cycles.
- Step types: research (read and report, change nothing), design, implement, test, review, docs.
- Every requirement id is served by at least one step; use only the ids given.
- Put tests with or right after the code they test.
"""


def _directive_text(directive: Directive) -> str:
    spec = directive.spec
    parts = [f"Directive: {spec.title}", f"Goal: {spec.goal}"]
    if spec.requirements:
        parts.append(
            "Requirements:\n" + "\n".join(f"- {r.id}: {r.text}" for r in spec.requirements)
        )
    else:
        parts.append("Requirements: none listed (use empty requirement_ids).")
    if spec.acceptance_criteria:
        parts.append(
            "Acceptance criteria:\n" + "\n".join(f"- {c}" for c in spec.acceptance_criteria)
        )
    return "\n\n".join(parts)


def _step_line(spec: StepSpec) -> str:
    deps = f" (after {', '.join(spec.depends_on)})" if spec.depends_on else ""
    return f"- {spec.name} [{spec.type}]{deps}: {spec.description}"


def _replan_text(replan: ReplanContext) -> str:
    parts = [f"This is a replan. The previous chain is being replaced because: {replan.reason}"]
    if replan.kept:
        parts.append(
            "These steps already passed and are kept exactly as they are (their work is done; "
            "include them unchanged in your chain so later steps can depend on them):\n"
            + "\n".join(_step_line(s.spec) for s in replan.kept)
        )
    if replan.failed is not None:
        failed = replan.failed
        why = failed.rework_instructions or "no further detail"
        parts.append(
            f"This step {failed.status.value} after {failed.attempts} attempt(s) and "
            f"{failed.rework_count} rework cycle(s):\n{_step_line(failed.spec)}\n"
            f"What went wrong: {why}\n"
            "Plan around it: split it, approach it differently, or add a step that unblocks it."
        )
    return "\n\n".join(parts)


def _one_line(name: str) -> str:
    """A name with its whitespace runs (newlines too) made single spaces and
    its other control and invisible characters (an escape sequence's ESC, a
    NUL, a zero-width space) dropped: a step name is printed in one-line
    events, the headless output and the DAG, and a directive file may not
    hold them either. Dependencies are cleaned alike, so they still match."""
    shown = "".join(c for c in name if c.isspace() or unicodedata.category(c) not in ("Cc", "Cf"))
    return " ".join(shown.split())


def _unique(items: list[str]) -> list[str]:
    """Names on one line, blanks dropped, each once: a name the model
    repeats is one edge, not a chain error worth a paid correction."""
    return list(dict.fromkeys(_one_line(i) for i in items if i.strip()))


def _to_specs(draft: ChainDraft) -> list[StepSpec]:
    """The drafted steps as specs. A blank name or description is a chain
    error the model can fix (StepSpec itself would refuse a blank name with a
    bare ValidationError; a blank description leaves the agent nothing to do)."""
    problems = [
        f"step {i} of the chain has an empty {what}"
        for i, s in enumerate(draft.steps, 1)
        for what, text in (("name", _one_line(s.name)), ("description", s.description))
        if not text.strip()
    ]
    if problems:
        raise ChainValidationError(
            "; ".join(problems) + ": give every step a short unique name and a description "
            "a coding agent can act on"
        )
    return [
        StepSpec(
            name=_one_line(s.name),
            type=s.type.value,
            description=s.description.strip(),
            depends_on=_unique(s.depends_on),
            requirement_ids=_unique(s.requirement_ids),
        )
        for s in draft.steps
    ]


def _check_requirements(steps: list[StepSpec], directive: Directive) -> None:
    known = {r.id for r in directive.spec.requirements}
    unknown = [
        f"step {s.name!r} names unknown requirement {rid!r}"
        for s in steps
        for rid in s.requirement_ids
        if rid not in known
    ]
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise ChainValidationError("; ".join(unknown) + f" (requirement ids: {allowed})")


def _check_size(steps: list[StepSpec], replan: ReplanContext | None) -> None:
    """The new steps (kept ones are facts) are few and have short names."""
    kept = {s.spec.name for s in replan.kept} if replan is not None else set()
    new = [s for s in steps if s.name not in kept]
    if len(new) > MAX_PLANNED_STEPS:
        raise ChainValidationError(
            f"the chain has {len(new)} new steps, more than the {MAX_PLANNED_STEPS} allowed; "
            "plan 2 to 8 steps, each one focused agent session (merge small steps)"
        )
    long = [
        f"step name {s.name[:30]!r}... is {len(s.name)} characters, more than {MAX_NAME_CHARS}"
        for s in new
        if len(s.name) > MAX_NAME_CHARS
    ]
    if long:
        raise ChainValidationError(
            "; ".join(long) + ": give every step a short name (a few words with dashes)"
        )


def _chain(steps: list[StepSpec], replan: ReplanContext | None) -> list[StepSpec]:
    """The valid chain the drafted steps make. Kept steps are facts, not
    suggestions: any the model left out or changed are put back as they
    passed, minus dependencies on steps the new chain no longer has (a
    skipped step, say), which the model could not fix."""
    if replan is None or not replan.kept:
        validate_chain(steps)
        return steps
    return compose_replan([s.spec.model_copy(deep=True) for s in replan.kept], steps)


class LLMPlanner:
    """Plans with Claude; see the module docstring."""

    kind = PlannerKind.ANTHROPIC.value

    def __init__(
        self,
        llm: LLMClient,
        *,
        corrections: int = DEFAULT_CORRECTIONS,
        max_tokens: int = PLAN_MAX_TOKENS,
    ) -> None:
        if corrections < 0:
            raise ValueError(f"corrections must be >= 0, got {corrections}")
        self.llm = llm
        self.corrections = corrections
        self.max_tokens = max_tokens
        self._spent = UsageTotal()
        # Told each call's cost as it is paid (the engine charges it then,
        # so an engine killed mid-plan has charged what was spent).
        self.on_cost: Callable[[float], Awaitable[None]] | None = None
        # Told each retry the SDK is about to make (a 429's wait is slept
        # through inside the call), in plain words, for the directive's log.
        self.on_retry: Callable[[str], None] | None = None

    @property
    def spent_usd(self) -> float:
        """What the calls of the plan under way (or the last one) cost so
        far: charged by the engine when it cancels planning midway."""
        return self._spent.cost_usd

    async def _paid(self, cost_usd: float) -> None:
        if cost_usd and self.on_cost is not None:
            await self.on_cost(cost_usd)

    async def plan(self, directive: Directive, replan: ReplanContext | None = None) -> PlannedChain:
        prompt = _directive_text(directive)
        if replan is not None:
            prompt += "\n\n" + _replan_text(replan)
        prompt += "\n\nReturn the chain."
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        spent = self._spent = UsageTotal()
        problem = ""
        attempts = 1 + self.corrections
        max_tokens = self.max_tokens
        for attempt in range(attempts):
            over = _over_budget(directive, spent.cost_usd) if attempt else None
            if over:  # a correction would spend past the directive's cost limit
                raise PlanningError(
                    f"the anthropic planner stopped correcting its chain: {over}; "
                    f"last problem: {problem}",
                    usage=spent.usage,
                    cost_usd=spent.cost_usd,
                )
            try:
                response = await self.llm.parse(
                    messages=messages,
                    output_format=ChainDraft,
                    system=SYSTEM_PROMPT,
                    max_tokens=max_tokens,
                    on_retry=self.on_retry,
                )
            except LLMError as exc:
                spent.add(exc.usage, exc.cost_usd)
                await self._paid(exc.cost_usd)
                if exc.kind is not LLMErrorKind.MALFORMED:
                    raise PlanningError(
                        f"the anthropic planner could not plan: {exc}",
                        usage=spent.usage,
                        cost_usd=spent.cost_usd,
                    ) from exc
                problem = str(exc)
                ask = "Return the whole chain again as JSON matching the schema."
                if exc.cut_off:
                    ask += (
                        f" It was cut off at {max_tokens} tokens: keep each description"
                        " to a few sentences, and the rationale to one."
                    )
                    max_tokens = min(max_tokens * 2, max(PLAN_MAX_TOKENS_CEILING, max_tokens))
                messages += [
                    {"role": "assistant", "content": "(an answer that did not match the schema)"},
                    {"role": "user", "content": f"That answer was not usable: {problem}\n{ask}"},
                ]
                continue
            spent.add(response.usage, response.cost_usd)
            await self._paid(response.cost_usd)
            assert response.parsed is not None
            try:
                drafted = _to_specs(response.parsed)
                _check_size(drafted, replan)
                steps = _chain(drafted, replan)
                _check_requirements(steps, directive)
            except ChainValidationError as exc:
                problem = str(exc)
                messages += [
                    {"role": "assistant", "content": response.text},
                    {
                        "role": "user",
                        "content": f"That chain is invalid: {problem}\n"
                        "Fix it and return the whole corrected chain.",
                    },
                ]
                continue
            return PlannedChain(
                steps=steps,
                rationale=response.parsed.rationale.strip(),
                usage=spent.usage,
                cost_usd=spent.cost_usd,
            )
        raise PlanningError(
            f"the anthropic planner gave no valid chain in {attempts} attempts; last problem: {problem}",
            usage=spent.usage,
            cost_usd=spent.cost_usd,
        )
