"""The LLM judge: Claude reviews a step attempt like a careful reviewer.

It reads what the programmatic checks cannot: whether the change does what
the step and the directive's acceptance criteria ask. It gets the step, the
criteria, the diff (from git when the workdir is a git tree, else the
changed files' contents; trimmed) and the results of the programmatic
verifiers, and answers in a fixed shape (structured output): a score in
[0, 1], a summary, a verdict per criterion and rework instructions. It never
gates: it weighs in the composite score like any other verifier.

An answer that does not fit the shape (not JSON, a score of 7 or 85 or NaN)
is sent back once for correction; still unusable, or the API failing, the
judge gives no verdict (`JudgeError`, a `NoVerdictError`): the evaluator
leaves it out of the score instead of reading it as "wrong". A refused key
pauses the directive instead (`PauseDirective`): no step could be judged.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from engine.agent_tools import ToolError, read_regular
from engine.llm import LLMClient, LLMError, LLMErrorKind, ParsedResponse, UsageTotal
from engine.models import VerifierResult
from engine.paths import PathEscapeError, resolve_in_repo
from engine.procs import run_process, trim_output
from engine.verifiers.base import NoVerdictError, PauseDirective, VerifyContext

NAME = "llm_judge"
KIND = "llm_judge"
DIFF_CHARS = 40_000
FILE_CHARS = 12_000
RESULT_TAIL_CHARS = 1_500
GIT_TIMEOUT_S = 30.0
JUDGE_MAX_TOKENS = 4_000
JUDGE_CORRECTIONS = 1  # a malformed verdict is asked for again once; an outage is not


class JudgeError(NoVerdictError):
    """The judge could not give a verdict (the API failed or answered badly)."""


class UnbuiltClient:
    """Stands in for the Claude client when it could not be built (a bad
    DIRECTIVE_LLM_* setting): the judge then gives no verdict naming the
    reason, and the evaluation goes on instead of breaking."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def parse(self, **_: Any) -> Any:
        raise LLMError(LLMErrorKind.API, self.reason)


class _Unusable(Exception):
    """One answer that cannot be used as a verdict; the model may correct it.
    `cut_off`: it stopped at max_tokens (the same limit would cut it again)."""

    def __init__(self, message: str, *, cut_off: bool = False) -> None:
        super().__init__(message)
        self.cut_off = cut_off


class CriterionVerdict(BaseModel):
    criterion: str = Field(description="The acceptance criterion, as given.")
    met: bool = Field(description="Whether this attempt meets it.")
    note: str = Field(description="One sentence of evidence from the diff or the check results.")


class JudgeVerdict(BaseModel):
    # Structured outputs cannot enforce the bounds: validation does, and an
    # out-of-range score (7 out of 10, 85 percent, NaN) is a malformed verdict.
    score: float = Field(
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="0.0 (not done or wrong) to 1.0 (done, correct, clean).",
    )
    summary: str = Field(description="Two or three sentences: what the attempt did and how well.")
    criteria: list[CriterionVerdict] = Field(description="One verdict per criterion listed.")
    rework_instructions: str = Field(
        description="Concrete instructions for the next attempt; empty when nothing needs to change."
    )


SYSTEM_PROMPT = """\
You review one step of a software change made by a coding agent. You see the step, the
directive's acceptance criteria, the diff and the results of the automated checks.
Judge the step's own job: criteria that later steps of the plan are responsible for are
not failures of this step (say so in the note and do not lower the score for them).
Be strict about correctness and about tests or checks weakened to make them pass.
Score: 0.9-1.0 done and clean; 0.7-0.9 done with small issues; 0.4-0.7 partly done or
doubtful; below 0.4 wrong or not done. Give rework instructions a coding agent can act on.
"""


async def _git(workdir: Path, *args: str) -> tuple[bool, str]:
    result = await run_process(
        ["git", "-c", "core.quotepath=off", *args],
        cwd=workdir,
        timeout_s=GIT_TIMEOUT_S,
        max_output=DIFF_CHARS * 2,
    )
    return result.ok, result.output


def _file_text(workdir: Path, rel: str) -> str:
    """A new or changed file as the judge sees it. Only its start is read
    (a step may leave a data file of gigabytes), and only a regular file is
    opened at all (a named pipe would block the event loop)."""
    try:
        path = resolve_in_repo(workdir, rel)
    except PathEscapeError as exc:  # out, or a symlink loop
        return f"--- {rel}: not shown ({exc})"
    if not path.exists():
        return f"--- {rel}: deleted"
    if path.is_dir():
        return f"--- {rel}: a directory"
    try:
        data, size = read_regular(path, FILE_CHARS * 4)
    except (OSError, ToolError) as exc:
        return f"--- {rel}: not shown ({exc})"
    if b"\0" in data[:8192]:
        return f"--- {rel}: binary file ({size} bytes)"
    text = trim_output(data.decode("utf-8", errors="replace"), FILE_CHARS)
    whole = "full content" if size <= len(data) else f"its first {len(data)} of {size} bytes"
    return f"--- {rel} (new or changed file, {whole})\n{text}"


def _files_text(workdir: Path, rels: list[str]) -> list[str]:
    """`_file_text` of each file until DIFF_CHARS are filled, then how many
    more there are: reading thousands of new files would all be trimmed away."""
    parts: list[str] = []
    used = 0
    for shown, rel in enumerate(rels):
        if used >= DIFF_CHARS:
            parts.append(f"--- and {len(rels) - shown} more new or changed files, not shown")
            break
        parts.append(_file_text(workdir, rel))
        used += len(parts[-1])
    return parts


async def gather_diff(workdir: Path, modified_files: list[str], base: str | None = None) -> str:
    """What changed: `git diff HEAD` plus untracked files' contents in a git
    tree (`git diff base` when the attempt was committed in its own worktree,
    since HEAD then already holds the change), else the modified files'
    contents. Trimmed to DIFF_CHARS."""
    workdir = Path(workdir)
    in_git, _ = await _git(workdir, "rev-parse", "--is-inside-work-tree")
    has_head = in_git and (await _git(workdir, "rev-parse", "--verify", "-q", "HEAD"))[0]
    if not has_head:
        parts = _files_text(workdir, modified_files)
        text = "\n\n".join(parts) if parts else "(no modified files reported)"
        return trim_output(text, DIFF_CHARS)
    scope = ["--", *modified_files] if modified_files else []
    _, diff = await _git(workdir, "diff", "--no-color", "--no-ext-diff", base or "HEAD", *scope)
    _, untracked = await _git(workdir, "ls-files", "--others", "--exclude-standard", *scope)
    parts = [diff.strip()] if diff.strip() else []
    parts += _files_text(workdir, [rel for rel in untracked.splitlines() if rel.strip()])
    text = "\n\n".join(parts) if parts else "(no changes in the working tree)"
    return trim_output(text, DIFF_CHARS)


def _results_text(results: list[VerifierResult]) -> str:
    if not results:
        return "(no automated checks ran)"
    blocks = []
    for r in results:
        state = "passed" if r.passed else ("FAILED (gating)" if r.gating else "failed")
        head = f"- {r.name} [{r.kind}] {state}, score {r.score:.2f}"
        if r.summary:
            head += f": {r.summary}"
        tail = r.output_tail.strip()
        if tail and not r.passed:
            head += "\n  output (end):\n" + trim_output(tail, RESULT_TAIL_CHARS)
        blocks.append(head)
    return "\n".join(blocks)


def judge_prompt(ctx: VerifyContext, diff: str) -> str:
    spec = ctx.directive.spec
    step = ctx.step.spec
    wanted = set(step.requirement_ids)
    requirements = [r for r in spec.requirements if not wanted or r.id in wanted]
    criteria = spec.acceptance_criteria or [
        f"The step is done: {step.description or ctx.step.name}"
    ]
    parts = [
        f"Directive goal: {spec.goal}",
        f"Step: {ctx.step.name} (type {step.type}, attempt {ctx.run.attempt})\n{step.description}",
    ]
    if requirements:
        parts.append(
            "Requirements this step serves:\n"
            + "\n".join(f"- {r.id}: {r.text}" for r in requirements)
        )
    parts.append(
        "Acceptance criteria (give one verdict each):\n" + "\n".join(f"- {c}" for c in criteria)
    )
    if ctx.run.summary:
        parts.append(f"The agent's own summary:\n{ctx.run.summary}")
    parts.append(f"Automated checks:\n{_results_text(ctx.prior_results)}")
    parts.append(f"Changes:\n```diff\n{diff}\n```")
    return "\n\n".join(parts)


class LLMJudge:
    """A non-gating verifier whose score is Claude's review of the attempt."""

    name = NAME
    kind = KIND
    gating = False

    def __init__(self, llm: LLMClient, weight: float = 1.0) -> None:
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        self.llm = llm
        self.weight = weight

    async def _ask(
        self,
        ctx: VerifyContext,
        messages: list[dict[str, Any]],
        spent: UsageTotal,
        max_tokens: int = JUDGE_MAX_TOKENS,
    ) -> ParsedResponse[JudgeVerdict]:
        """One call, its cost recorded (and added to `spent`) whatever the
        answer. An unusable answer raises `_Unusable`; an API failure,
        `JudgeError`."""
        try:
            response = await self.llm.parse(
                messages=messages,
                output_format=JudgeVerdict,
                system=SYSTEM_PROMPT,
                max_tokens=max_tokens,
                on_retry=lambda line: ctx.emit(self.name, line),
            )
        except LLMError as exc:
            spent.add(exc.usage, exc.cost_usd)
            if exc.cost_usd and ctx.add_cost is not None:
                await ctx.add_cost(exc.usage, exc.cost_usd)
            if exc.kind is LLMErrorKind.MALFORMED:
                raise _Unusable(str(exc), cut_off=exc.cut_off) from exc
            if exc.kind is LLMErrorKind.AUTH:  # every step's judge would be refused alike
                raise PauseDirective(f"the LLM judge could not judge: {exc}") from exc
            raise JudgeError(f"the LLM judge gave no verdict: {exc}") from exc
        spent.add(response.usage, response.cost_usd)
        if ctx.add_cost is not None:
            await ctx.add_cost(response.usage, response.cost_usd)
        return response

    async def _verdict(
        self, ctx: VerifyContext, prompt: str, spent: UsageTotal
    ) -> ParsedResponse[JudgeVerdict]:
        """A usable verdict, after at most JUDGE_CORRECTIONS corrections."""
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        max_tokens = JUDGE_MAX_TOKENS
        for _ in range(JUDGE_CORRECTIONS):
            try:
                return await self._ask(ctx, messages, spent, max_tokens)
            except _Unusable as exc:
                cut = ""
                if exc.cut_off:  # room to finish, and a word to be brief
                    cut = f" It was cut off at {max_tokens} tokens: keep each note to one sentence."
                    max_tokens *= 2
                messages += [
                    {"role": "assistant", "content": "(a verdict that did not fit the schema)"},
                    {
                        "role": "user",
                        "content": f"That verdict is not usable: {exc}\n"
                        "Give the whole verdict again as JSON matching the schema, "
                        f"with a score from 0.0 to 1.0.{cut}",
                    },
                ]
        try:
            return await self._ask(ctx, messages, spent, max_tokens)
        except _Unusable as exc:
            tries = 1 + JUDGE_CORRECTIONS
            raise JudgeError(
                f"the LLM judge gave no verdict: {exc} (still after {tries} tries)"
            ) from exc

    async def verify(self, ctx: VerifyContext) -> VerifierResult:
        started = time.monotonic()
        diff = await gather_diff(ctx.workdir, list(ctx.modified_files), ctx.diff_base)
        spent = UsageTotal()  # every call, the corrections too
        response = await self._verdict(ctx, judge_prompt(ctx, diff), spent)
        verdict = response.parsed
        assert verdict is not None
        score = verdict.score
        passed = score >= ctx.directive.spec.thresholds.yellow
        criteria = [c.model_dump() for c in verdict.criteria]
        lines = [f"[{'x' if c.met else ' '}] {c.criterion}: {c.note}" for c in verdict.criteria]
        ctx.emit(self.name, f"score {score:.2f}: {verdict.summary}")
        return VerifierResult(
            name=self.name,
            kind=self.kind,
            command=f"claude ({response.model})",
            passed=passed,
            score=score,
            weight=self.weight,
            gating=self.gating,
            duration_s=time.monotonic() - started,
            summary=verdict.summary.strip(),
            output_tail="\n".join(lines),
            cost_usd=spent.cost_usd,
            details={
                "criteria": criteria,
                "rework_instructions": verdict.rework_instructions.strip(),
                "model": response.model,
                "usage": spent.usage.model_dump(),
            },
        )
