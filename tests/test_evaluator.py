"""CompositeEvaluator: levels at the threshold edges, gating, flags, the
judge's place, rework instructions; and one evaluation of a real project."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.evaluator import (
    FLAG_PATTERNS,
    FLAGGED_FILES,
    FOR_A_PERSON,
    NO_VERIFIERS_SUMMARY,
    CompositeEvaluator,
    confidence_level,
    file_flags,
    rework_instructions,
)
from engine.models import ConfidenceLevel, Thresholds, VerifierResult
from engine.verifiers.base import NoVerdictError, VerifyContext
from engine.verifiers.runners import CommandVerifier
from tests.test_verifiers import PASSING, make_ctx, pytest_verifier, write

GREEN, YELLOW, RED = ConfidenceLevel.GREEN, ConfidenceLevel.YELLOW, ConfidenceLevel.RED


@dataclass
class Fixed:
    """A verifier whose result is given: the arithmetic under test is the evaluator's."""

    name: str
    score: float
    passed: bool = True
    weight: float = 1.0
    gating: bool = False
    kind: str = "command"
    output: str = ""
    details: dict = field(default_factory=dict)
    seen_prior: list[str] | None = None

    async def verify(self, ctx: VerifyContext) -> VerifierResult:
        self.seen_prior = [r.name for r in ctx.prior_results]
        return VerifierResult(
            name=self.name,
            kind=self.kind,
            command=f"check-{self.name}",
            passed=self.passed,
            score=self.score,
            summary=f"{self.name} summary",
            output_tail=self.output,
            details=self.details,
        )


class Broken:
    name, kind, weight, gating = "broken", "command", 1.0, False

    async def verify(self, ctx: VerifyContext) -> VerifierResult:
        raise RuntimeError("tool exploded")


@dataclass
class Silent:
    """A verifier whose service could not judge (the LLM judge in an outage)."""

    name: str = "reviewer"
    kind: str = "command"
    weight: float = 1.0
    gating: bool = False

    async def verify(self, ctx: VerifyContext) -> VerifierResult:
        raise NoVerdictError("the service is down")


async def evaluate(tmp_path: Path, *verifiers, modified: list[str] | None = None, **thresholds):
    ctx = make_ctx(tmp_path)
    ctx.modified_files = modified or []
    return await CompositeEvaluator(list(verifiers), Thresholds(**thresholds)).evaluate(ctx)


@pytest.mark.parametrize(
    ("scores", "level"),
    [
        ((0.9, 0.7), GREEN),  # 0.7999999999999999 in floats: still exactly the threshold
        ((0.8,), GREEN),
        ((0.79,), YELLOW),
        ((0.5,), YELLOW),
        ((0.3, 0.7), YELLOW),  # 0.5 again, from a sum
        ((0.49,), RED),
        ((1.0,), GREEN),
        ((0.0,), RED),
    ],
)
async def test_levels_at_threshold_edges(tmp_path: Path, scores, level) -> None:
    verifiers = [Fixed(f"v{i}", s) for i, s in enumerate(scores)]
    evaluation = await evaluate(tmp_path, *verifiers)
    assert evaluation.level is level
    assert evaluation.passed is (level is GREEN)
    assert (evaluation.rework_instructions is None) is (level is GREEN)


async def test_weighted_mean_ignores_zero_weights(tmp_path: Path) -> None:
    evaluation = await evaluate(
        tmp_path, Fixed("tests", 1.0, weight=3), Fixed("lint", 0.2), Fixed("info", 0.0, weight=0)
    )
    assert evaluation.score == pytest.approx(0.8)
    assert evaluation.level is GREEN


async def test_custom_thresholds(tmp_path: Path) -> None:
    evaluation = await evaluate(tmp_path, Fixed("a", 0.85), green=0.9, yellow=0.85)
    assert evaluation.level is YELLOW


async def test_gating_failure_is_red_whatever_the_mean(tmp_path: Path) -> None:
    evaluation = await evaluate(
        tmp_path,
        Fixed("tests", 0.9, passed=False, gating=True, output="FAILED test_x"),
        Fixed("a", 1.0, weight=10),
    )
    assert evaluation.score > 0.95
    assert evaluation.level is RED and not evaluation.passed
    assert "tests 0.90 FAILED (gating)" in evaluation.summary


async def test_failing_non_gating_verifier_only_lowers_the_score(tmp_path: Path) -> None:
    evaluation = await evaluate(
        tmp_path, Fixed("tests", 1.0, weight=9), Fixed("lint", 0.5, passed=False)
    )
    assert evaluation.level is GREEN


async def test_no_verifiers_is_green_with_a_flag(tmp_path: Path) -> None:
    evaluation = await evaluate(tmp_path)
    assert (evaluation.score, evaluation.level, evaluation.passed) == (1.0, GREEN, True)
    assert evaluation.flags == ["no_verifiers"]
    assert evaluation.summary == NO_VERIFIERS_SUMMARY
    assert evaluation.results == []


async def test_all_weights_zero(tmp_path: Path) -> None:
    evaluation = await evaluate(tmp_path, Fixed("a", 0.1, weight=0))
    assert (evaluation.score, evaluation.level) == (1.0, GREEN)
    assert "no_weighted_verifiers" in evaluation.flags
    gated = await evaluate(tmp_path, Fixed("a", 0.0, passed=False, weight=0, gating=True))
    assert gated.level is RED


async def test_the_judge_runs_last_and_sees_earlier_results(tmp_path: Path) -> None:
    judge = Fixed("llm_judge", 0.9, kind="llm_judge")
    tests, lint = Fixed("tests", 1.0), Fixed("lint", 1.0)
    evaluation = await evaluate(tmp_path, judge, tests, lint)
    assert [r.name for r in evaluation.results] == ["tests", "lint", "llm_judge"]
    assert judge.seen_prior == ["tests", "lint"]
    assert tests.seen_prior == []


async def test_the_verifier_configuration_decides_weight_and_gating(tmp_path: Path) -> None:
    evaluation = await evaluate(tmp_path, Fixed("tests", 1.0, weight=4, gating=True))
    (result,) = evaluation.results
    assert (result.weight, result.gating) == (4, True)


async def test_a_verifier_that_raises_is_a_failed_check(tmp_path: Path) -> None:
    evaluation = await evaluate(tmp_path, Broken(), Fixed("ok", 1.0))
    broken = evaluation.results[0]
    assert (broken.score, broken.passed) == (0.0, False)
    assert "tool exploded" in broken.summary
    assert "verifier_error: broken" in evaluation.flags
    assert evaluation.score == 0.5


async def test_a_verifier_without_a_verdict_weighs_nothing(tmp_path: Path) -> None:
    evaluation = await evaluate(tmp_path, Silent(), Fixed("ok", 0.9))
    assert (evaluation.score, evaluation.level) == (0.9, GREEN)
    assert "no_verdict: reviewer" in evaluation.flags
    silent = evaluation.results[0]
    assert (silent.weight, silent.passed, silent.summary) == (0, False, "the service is down")


async def test_nothing_scored_and_no_verdict_is_yellow_for_a_person(tmp_path: Path) -> None:
    evaluation = await evaluate(tmp_path, Silent(), Fixed("free", 1.0, weight=0))
    assert (evaluation.level, evaluation.passed, evaluation.rework_instructions) == (
        YELLOW,
        False,
        None,
    )
    assert "no_weighted_verifiers" not in evaluation.flags
    assert "reviewer no verdict [the service is down]" in evaluation.summary


async def test_a_failing_gating_check_stays_red_beside_a_missing_verdict(tmp_path: Path) -> None:
    gate = Fixed("tests", 0.0, passed=False, weight=0, gating=True)
    evaluation = await evaluate(tmp_path, Silent(), gate)
    assert evaluation.level is RED
    assert "the service is down" not in (evaluation.rework_instructions or "")


async def test_a_gating_verifier_without_a_verdict_has_not_passed(tmp_path: Path) -> None:
    """A gate that could not run (its tool is not installed, say) is closed,
    but no rework can open it: a person decides, and no agent is sent off."""
    evaluation = await evaluate(tmp_path, Silent(gating=True), Fixed("ok", 1.0))
    assert evaluation.level is RED
    assert {"no_verdict: reviewer", FOR_A_PERSON} <= set(evaluation.flags)
    assert evaluation.rework_instructions is None
    assert "reviewer no verdict [the service is down]" in evaluation.summary
    silent = evaluation.results[0]
    assert (silent.gating, silent.weight, silent.passed) == (True, 0, False)


async def test_a_gate_that_could_not_run_with_nothing_scored_is_red_at_zero(
    tmp_path: Path,
) -> None:
    evaluation = await evaluate(tmp_path, Silent(gating=True), Fixed("free", 1.0, weight=0))
    assert (evaluation.level, evaluation.score, evaluation.rework_instructions) == (RED, 0, None)
    assert FOR_A_PERSON in evaluation.flags
    assert "no_weighted_verifiers" not in evaluation.flags
    assert evaluation.summary.startswith("red, not scored: reviewer gave no verdict")


async def test_a_silent_gate_beside_a_real_failure_keeps_its_instructions(
    tmp_path: Path,
) -> None:
    failing = Fixed("lint", 0.2, passed=False, output="a.py:1: E1")
    evaluation = await evaluate(tmp_path, Silent(gating=True), failing)
    assert FOR_A_PERSON in evaluation.flags
    assert "## lint (check) failed" in evaluation.rework_instructions
    assert "the service is down" not in evaluation.rework_instructions


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="repeated: a"):
        CompositeEvaluator([Fixed("a", 1), Fixed("a", 1)], Thresholds())


# --------------------------------------------------------------------------
# Flags
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "flag"),
    [
        ("tests/test_api.py", "tests_modified"),
        ("pkg/tests/helpers.py", "tests_modified"),
        ("src/util_test.py", "tests_modified"),
        ("conftest.py", "tests_modified"),
        ("cmd/main_test.go", "tests_modified"),
        ("web/app.spec.ts", "tests_modified"),
        ("web/__tests__/app.js", "tests_modified"),
        ("pyproject.toml", "verifier_config_modified"),
        ("sub/setup.cfg", "verifier_config_modified"),
        (".eslintrc.json", "verifier_config_modified"),
        ("eslint.config.mjs", "verifier_config_modified"),
        ("Makefile", "verifier_config_modified"),
        ("src/app.py", None),
        ("README.md", None),
        ("src/testing.py", None),
    ],
)
def test_file_flags(path: str, flag: str | None) -> None:
    flags = file_flags([path])
    assert flags == ([] if flag is None else [f"{flag}: {path}"])


async def test_flags_on_an_evaluation(tmp_path: Path) -> None:
    modified = ["src/app.py", "tests/test_app.py", "conftest.py", "pyproject.toml"]
    evaluation = await evaluate(tmp_path, Fixed("a", 1.0), modified=modified)
    assert evaluation.flags == [
        "tests_modified: tests/test_app.py, conftest.py",
        "verifier_config_modified: pyproject.toml",
    ]


def test_long_flag_lists_are_shortened() -> None:
    (flag,) = file_flags([f"tests/test_{i}.py" for i in range(20)])
    assert flag.endswith("and 12 more")


# --------------------------------------------------------------------------
# Rework instructions
# --------------------------------------------------------------------------


async def test_rework_names_the_failing_verifier_with_its_output(tmp_path: Path) -> None:
    output = "\n".join(f"noise {i}" for i in range(500)) + "\nE   assert 3 == 4\nFAILED test_x"
    evaluation = await evaluate(
        tmp_path,
        Fixed("tests", 0.5, passed=False, gating=True, output=output),
        Fixed("lint", 1.0),
        Fixed("llm_judge", 0.4, kind="llm_judge", details={"rework_instructions": "Handle None."}),
    )
    text = evaluation.rework_instructions
    assert text is not None
    assert "## tests (gating check) failed: score 0.50" in text
    assert "Command: check-tests" in text
    assert "E   assert 3 == 4\nFAILED test_x" in text
    assert "noise 0\n" not in text  # only the tail
    assert "## lint" not in text  # passing checks are left out
    assert "Handle None." in text


async def test_rework_lists_low_scoring_checks_on_yellow(tmp_path: Path) -> None:
    evaluation = await evaluate(tmp_path, Fixed("tests", 0.75, output="1 skipped"))
    assert evaluation.level is YELLOW
    assert "## tests (check) scored low: score 0.75" in evaluation.rework_instructions


async def test_rework_mentions_modified_tests(tmp_path: Path) -> None:
    evaluation = await evaluate(
        tmp_path, Fixed("tests", 0.0, passed=False), modified=["tests/test_a.py"]
    )
    assert "changed test files (tests/test_a.py)" in evaluation.rework_instructions


def test_rework_note_covers_both_kinds_of_flag() -> None:
    flags = file_flags(["tests/test_a.py", "tox.ini"])
    text = rework_instructions(0.1, RED, [], flags, Thresholds())
    assert "changed test files (tests/test_a.py) and verifier configuration (tox.ini)" in text
    assert set(FLAGGED_FILES) == set(FLAG_PATTERNS)


def test_confidence_level_table() -> None:
    t = Thresholds()
    assert confidence_level(1.0, True, t) is RED
    assert confidence_level(0.8, False, t) is GREEN
    assert confidence_level(0.5, False, t) is YELLOW


# --------------------------------------------------------------------------
# A real project, end to end
# --------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _plain_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


async def test_real_project_three_of_four(tmp_path: Path) -> None:
    repo = write(tmp_path, {"tests/test_mixed.py": PASSING.replace('"A"', '"B"')})
    style = CommandVerifier("style", "command", [sys.executable, "-c", "print('style ok')"])
    ctx = make_ctx(repo)
    evaluation = await CompositeEvaluator([pytest_verifier(repo), style], Thresholds()).evaluate(
        ctx
    )
    # pytest weighs 2 and scores 0.75; style weighs 1 and passes
    assert evaluation.score == pytest.approx((0.75 * 2 + 1.0) / 3)
    assert evaluation.level is RED  # the gating test run failed
    assert "3/4 tests passed, 1 failed" in evaluation.summary
    assert "## pytest (gating check) failed" in evaluation.rework_instructions
    assert "test_two" in evaluation.rework_instructions
    assert (evaluation.directive_id, evaluation.step_id, evaluation.run_id) == (
        ctx.directive.id,
        ctx.step.id,
        ctx.run.id,
    )


async def test_rework_names_every_failing_test_when_the_output_is_long(
    tmp_path: Path,
) -> None:
    """Sixty failures with long messages: the output's tail shows a few, the
    instructions still name each failing test, once, and stay short."""
    suite = (
        "import pytest\n\n@pytest.mark.parametrize('i', range(100))\n"
        "def test_value(i):\n    assert i % 5 > 1, 'too small: ' + 'x' * 300\n"
    )
    repo = write(tmp_path, {"tests/test_values.py": suite})
    evaluation = await CompositeEvaluator([pytest_verifier(repo)], Thresholds()).evaluate(
        make_ctx(repo)
    )
    text = evaluation.rework_instructions
    failing = [f"tests/test_values.py::test_value[{i}]" for i in range(100) if i % 5 <= 1]
    named = [test for test in failing if test in text]
    assert len(failing) == 40
    assert len(named) >= 30, f"{len(named)} of 40 failing tests named"
    assert "and 10 more" in text or len(named) == 40
    assert len(text) < 6_000


async def test_real_project_all_green(tmp_path: Path) -> None:
    repo = write(tmp_path, {"tests/test_ok.py": PASSING})
    evaluation = await CompositeEvaluator([pytest_verifier(repo)], Thresholds()).evaluate(
        make_ctx(repo)
    )
    assert (evaluation.score, evaluation.level) == (1.0, GREEN)
    assert evaluation.summary == "green 1.00: pytest 1.00 [4/4 tests passed]"
