"""`CompositeEvaluator`: many verifier results -> one score and level.

Programmatic verifiers run one after another (on a small machine they
compete for the same cores, and a fixed order keeps runs reproducible),
then the LLM judge, which reads their results. The score is the weighted
mean; the level follows the directive's thresholds, and a failed gating
verifier makes the step red whatever the mean says.

Rules worth knowing:
* No verifiers at all: green 1.0, flagged `no_verifiers`. The engine only
  evaluates successful executions, so the executor's result stands.
* Verifiers that all weigh 0 count for nothing in the score (1.0, flagged
  `no_weighted_verifiers`), but a gating one that fails still makes it red.
* A verifier that raises is recorded as failed with score 0 and flagged
  `verifier_error: NAME`: a check that could not run has not passed.
* A verifier that raises `NoVerdictError` (the LLM judge when the API is
  down or its answer is unusable, a check whose tool is not installed) has
  no opinion, which is not a score of 0: it is recorded with the reason,
  weighs nothing, is flagged `no_verdict: NAME` and never becomes rework
  instructions (an agent cannot fix an API outage). When nothing else
  scored the attempt, it is yellow (a person decides), never green on its
  own. A gating one is a gate that stays shut: red, and a person decides
  (`for_a_person`), since no rework can open it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import PurePosixPath

from engine.flags import NO_VERDICT
from engine.models import ConfidenceLevel, Evaluation, Thresholds, VerifierResult
from engine.text import clip
from engine.verifiers.base import NoVerdictError, PauseDirective, Verifier, VerifyContext

LLM_JUDGE_KIND = "llm_judge"
SCORE_DIGITS = 6  # rounding before threshold checks: 0.8 must not become 0.7999999
REWORK_TAIL_LINES = 60
REWORK_TAIL_CHARS = 3_000
REWORK_LINE_CHARS = 300  # an output line longer than this is cut: one line must not fill the tail
FAILING_SHOWN = 30  # failing tests named one per line, before "and N more"
FLAG_FILES_SHOWN = 8

NO_VERIFIERS_SUMMARY = "no verifiers ran: accepted on the executor's result"
FOR_A_PERSON = "for_a_person"  # flag: nothing scored the attempt; no autonomy passes it

# Changed files that deserve a reviewer's eye: a step that edits the tests
# or the checks' configuration can make verification pass without doing the work.
# Each pattern matches the file name, or (with a "/") any path suffix.
FLAG_PATTERNS: dict[str, tuple[str, ...]] = {
    "tests_modified": (
        "test_*.py", "*_test.py", "conftest.py", "*_test.go", "*.spec.*", "*.test.*",
        "tests/*", "test/*", "__tests__/*",
    ),
    "verifier_config_modified": (
        "pyproject.toml", "setup.cfg", "pytest.ini", "tox.ini", "ruff.toml", ".ruff.toml",
        "mypy.ini", ".mypy.ini", "package.json", "tsconfig.json", "Cargo.toml", "go.mod",
        "Makefile", "makefile", "GNUmakefile", ".eslintrc*", "eslint.config.*",
    ),
}  # fmt: skip
# What a file flag's files are, as rework instructions name them (the
# flags' own words for people are engine.flags.FLAG_WORDS).
FLAGGED_FILES = {
    "tests_modified": "test files",
    "verifier_config_modified": "verifier configuration",
}


def _matches(path: str, pattern: str) -> bool:
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if "/" not in pattern:
        return bool(parts) and fnmatch(parts[-1], pattern)
    directory = pattern.split("/", 1)[0]
    return directory in parts[:-1]


def file_flags(modified_files: Sequence[str]) -> list[str]:
    """`tests_modified: a, b` / `verifier_config_modified: c` for the
    changed files that match `FLAG_PATTERNS`."""
    flags = []
    for flag, patterns in FLAG_PATTERNS.items():
        hits = [f for f in modified_files if any(_matches(f, p) for p in patterns)]
        if hits:
            shown = ", ".join(hits[:FLAG_FILES_SHOWN])
            more = (
                f" and {len(hits) - FLAG_FILES_SHOWN} more" if len(hits) > FLAG_FILES_SHOWN else ""
            )
            flags.append(f"{flag}: {shown}{more}")
    return flags


def gave_no_verdict(result: VerifierResult) -> bool:
    return bool(result.details.get(NO_VERDICT))


def weighted_score(results: Sequence[VerifierResult]) -> float | None:
    """Weighted mean of the scores; None when nothing carries weight."""
    total = sum(r.weight for r in results if r.weight > 0)
    if total == 0:
        return None
    mean = sum(r.score * r.weight for r in results if r.weight > 0) / total
    return round(mean, SCORE_DIGITS)


def confidence_level(score: float, gating_failed: bool, thresholds: Thresholds) -> ConfidenceLevel:
    if gating_failed or score < thresholds.yellow:
        return ConfidenceLevel.RED
    if score >= thresholds.green:
        return ConfidenceLevel.GREEN
    return ConfidenceLevel.YELLOW


def _tail(text: str, lines: int = REWORK_TAIL_LINES, chars: int = REWORK_TAIL_CHARS) -> str:
    kept = "\n".join(clip(line, REWORK_LINE_CHARS) for line in text.rstrip().splitlines()[-lines:])
    return kept if len(kept) <= chars else "..." + kept[-chars:]


def _failing(result: VerifierResult) -> list[str]:
    """The tests a parser named as failing (`details["failing"]`), so the
    agent has each one even when the output's tail shows only the last."""
    names = [str(name) for name in result.details.get("failing") or ()]
    if not names:
        return []
    more = len(names) - FAILING_SHOWN
    shown = [f"- {name}" for name in names[:FAILING_SHOWN]]
    return ["Failing:", *shown, *([f"- and {more} more"] if more > 0 else [])]


def _short(result: VerifierResult) -> str:
    if gave_no_verdict(result):
        return f"{result.name} no verdict [{result.summary}]"
    mark = "" if result.passed else (" FAILED (gating)" if result.gating else " failed")
    summary = f" [{result.summary}]" if result.summary else ""
    return f"{result.name} {result.score:.2f}{mark}{summary}"


def _needs_rework(result: VerifierResult, thresholds: Thresholds) -> bool:
    if gave_no_verdict(result):
        return False
    return not result.passed or (result.weight > 0 and result.score < thresholds.green)


def _section(result: VerifierResult) -> str:
    role = "gating check" if result.gating else "check"
    state = "failed" if not result.passed else "scored low"
    lines = [f"## {result.name} ({role}) {state}: score {result.score:.2f}"]
    if result.command:
        lines.append(f"Command: {result.command}")
    if result.summary:
        lines.append(f"Result: {result.summary}")
    lines += _failing(result)
    if result.timed_out:
        lines.append("It timed out: look for a hang or an endless loop, or make it faster.")
    tail = _tail(result.output_tail)
    if tail:
        lines += [f"Output (last {REWORK_TAIL_LINES} lines at most):", "```", tail, "```"]
    return "\n".join(lines)


def rework_instructions(
    score: float,
    level: ConfidenceLevel,
    results: Sequence[VerifierResult],
    flags: Sequence[str],
    thresholds: Thresholds,
) -> str:
    """What a coding agent needs to fix the step: each failing or low check
    with its command, result and the end of its output, and the judge's own
    instructions."""
    parts = [
        f"Verification did not pass (score {score:.2f}, {level.value}; "
        f"green needs {thresholds.green:.2f} with every gating check passing). "
        "Fix the causes below, run the commands to confirm, and do not weaken or "
        "delete tests or checks to make them pass."
    ]
    for result in results:
        if result.kind == LLM_JUDGE_KIND:
            continue
        if _needs_rework(result, thresholds):
            parts.append(_section(result))
    for result in results:
        if result.kind != LLM_JUDGE_KIND:
            continue
        judge = str(result.details.get("rework_instructions") or "").strip()
        if (judge and not gave_no_verdict(result)) or _needs_rework(result, thresholds):
            body = judge or result.summary or "no details given"
            parts.append(f"## Reviewer ({result.name}): score {result.score:.2f}\n{body}")
    changed = [
        f"{FLAGGED_FILES[name]} ({files})"
        for name, _, files in (flag.partition(": ") for flag in flags)
        if name in FLAGGED_FILES
    ]
    if changed:
        parts.append(
            f"Note: this attempt changed {' and '.join(changed)}. Keep such changes only "
            "where the task asks for them."
        )
    return "\n\n".join(parts)


class CompositeEvaluator:
    """Runs the verifiers for one step attempt and combines their results."""

    def __init__(self, verifiers: Sequence[Verifier], thresholds: Thresholds) -> None:
        names = [v.name for v in verifiers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"verifier names must be unique; repeated: {', '.join(duplicates)}")
        self.verifiers = list(verifiers)
        self.thresholds = thresholds

    @property
    def ordered(self) -> list[Verifier]:
        """Programmatic verifiers first, in their given order; judges last."""
        return [v for v in self.verifiers if v.kind != LLM_JUDGE_KIND] + [
            v for v in self.verifiers if v.kind == LLM_JUDGE_KIND
        ]

    async def _run(
        self, verifier: Verifier, ctx: VerifyContext, prior: list[VerifierResult]
    ) -> tuple[VerifierResult, str | None]:
        run_ctx = dataclasses.replace(ctx, prior_results=list(prior))
        try:
            result = await verifier.verify(run_ctx)
        except PauseDirective:  # not this attempt's result: the attempt's owner pauses
            raise
        except Exception as exc:  # noqa: BLE001 - recorded as a failed check, not lost
            if isinstance(exc, NoVerdictError):
                return self._unscored(verifier, exc), f"{NO_VERDICT}: {verifier.name}"
            message = f"{type(exc).__name__}: {exc}"
            failed = VerifierResult(
                name=verifier.name,
                kind=verifier.kind,
                passed=False,
                score=0.0,
                summary=clip(f"verifier error: {message}", 300),
                details={"error": message},
            )
            return self._configured(failed, verifier), f"verifier_error: {verifier.name}"
        return self._configured(result, verifier), None

    @staticmethod
    def _unscored(verifier: Verifier, exc: NoVerdictError) -> VerifierResult:
        """The record of a verifier that gave no verdict: why, weighing nothing."""
        return VerifierResult(
            name=verifier.name,
            kind=verifier.kind,
            passed=False,
            score=0.0,
            weight=0.0,
            gating=verifier.gating,
            summary=clip(str(exc), 300),
            details={"error": f"{type(exc).__name__}: {exc}", NO_VERDICT: True},
        )

    @staticmethod
    def _configured(result: VerifierResult, verifier: Verifier) -> VerifierResult:
        """The verifier's configuration decides weight and gating, not its result."""
        return result.model_copy(update={"weight": verifier.weight, "gating": verifier.gating})

    async def evaluate(self, ctx: VerifyContext) -> Evaluation:
        flags = file_flags(ctx.modified_files)
        results: list[VerifierResult] = []
        for verifier in self.ordered:
            result, error_flag = await self._run(verifier, ctx, results)
            results.append(result)
            if error_flag:
                flags.append(error_flag)
        return self.combine(ctx, results, flags)

    def combine(
        self, ctx: VerifyContext, results: list[VerifierResult], flags: list[str]
    ) -> Evaluation:
        base = dict(directive_id=ctx.directive.id, step_id=ctx.step.id, run_id=ctx.run.id)
        if not results:
            return Evaluation(
                **base,
                score=1.0,
                level=ConfidenceLevel.GREEN,
                passed=True,
                summary=NO_VERIFIERS_SUMMARY,
                flags=["no_verifiers", *flags],
            )
        mean = weighted_score(results)
        gating_failed = any(r.gating and not r.passed for r in results)
        silent = [r for r in results if gave_no_verdict(r)]
        shut = any(r.gating for r in silent)  # a gate that could not run: no rework opens it
        failed_gate = any(r.gating and not r.passed and not gave_no_verdict(r) for r in results)
        if mean is None and silent and not failed_gate:
            level = ConfidenceLevel.RED if shut else ConfidenceLevel.YELLOW
            return self._for_a_person(base, results, flags, [r.name for r in silent], level)
        if mean is None:
            flags.append("no_weighted_verifiers")
        if shut:
            flags.append(FOR_A_PERSON)
        score = 1.0 if mean is None else mean
        level = confidence_level(score, gating_failed, self.thresholds)
        summary = f"{level.value} {score:.2f}: " + "; ".join(_short(r) for r in results)
        instructions = (
            rework_instructions(score, level, results, flags, self.thresholds)
            if level is not ConfidenceLevel.GREEN
            and any(_needs_rework(r, self.thresholds) for r in results)
            else None
        )
        return Evaluation(
            **base,
            score=score,
            level=level,
            passed=level is ConfidenceLevel.GREEN,
            results=results,
            summary=summary,
            rework_instructions=instructions,
            flags=flags,
        )

    @staticmethod
    def _for_a_person(
        base: dict[str, str | None],
        results: list[VerifierResult],
        flags: list[str],
        silent: list[str],
        level: ConfidenceLevel,
    ) -> Evaluation:
        """Nothing scored the attempt and a verifier gave no verdict: it must
        not pass on its own, and there is nothing for an agent to fix, so a
        person decides (yellow, or red when a gate could not run; no rework
        instructions)."""
        summary = (
            f"{level.value}, not scored: {', '.join(silent)} gave no verdict and nothing else "
            "scored this attempt, so a person decides; " + "; ".join(_short(r) for r in results)
        )
        return Evaluation(
            **base,
            score=0.0,
            level=level,
            passed=False,
            results=results,
            summary=summary,
            flags=[*flags, FOR_A_PERSON],
        )
