"""The LLM judge against the fake Messages API, on a real git repo."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from engine.evaluator import CompositeEvaluator
from engine.llm import LLMClient
from engine.models import (
    Directive,
    DirectiveSpec,
    Requirement,
    Step,
    StepRun,
    StepSpec,
    Thresholds,
    TokenUsage,
    VerifierResult,
)
from engine.pricing import cost_usd
from engine.verifiers.base import VerifyContext
from engine.verifiers.llm_judge import JudgeError, LLMJudge, gather_diff
from tests.fake_anthropic import FAKE_KEY, FakeAnthropic, usage

pytest_plugins = ["tests.conftest_llm"]

VERDICT = {
    "score": 0.65,
    "summary": "add() is fixed but there is no test for negative numbers.",
    "criteria": [
        {"criterion": "add(2, 3) == 5", "met": True, "note": "calc.py now returns a + b"},
        {"criterion": "negative numbers work", "met": False, "note": "untested"},
    ],
    "rework_instructions": "Add a test for add(-1, -2).",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "T")
    (root / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (root / "other.py").write_text("x = 1\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "seed")
    (root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (root / "other.py").write_text("x = 2\n")  # changed but not by this step
    (root / "test_calc.py").write_text(
        "from calc import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    return root


class Costs:
    def __init__(self) -> None:
        self.calls: list[tuple[TokenUsage, float]] = []

    async def add(self, usage: TokenUsage, cost: float) -> None:
        self.calls.append((usage, cost))


def make_ctx(repo: Path, costs: Costs, prior: list[VerifierResult] | None = None) -> VerifyContext:
    spec = DirectiveSpec(
        title="Fix add",
        goal="add() must return the sum",
        repo=repo,
        requirements=[Requirement(id="R1", text="add returns a + b")],
        acceptance_criteria=["add(2, 3) == 5", "negative numbers work"],
        thresholds=Thresholds(green=0.8, yellow=0.5),
    )
    d = Directive(spec=spec)
    step = Step(
        chain_id="c",
        directive_id=d.id,
        name="implement",
        spec=StepSpec(name="implement", description="Fix calc.add", requirement_ids=["R1"]),
    )
    run = StepRun(
        step_id=step.id,
        directive_id=d.id,
        attempt=1,
        executor="agent",
        summary="Changed a - b to a + b",
        modified_files=["calc.py", "test_calc.py"],
    )
    lines: list[tuple[str, str]] = []
    return VerifyContext(
        directive=d,
        step=step,
        run=run,
        workdir=repo,
        modified_files=run.modified_files,
        prior_results=prior or [],
        emit=lambda source, line: lines.append((source, line)),
        add_cost=costs.add,
    )


PYTEST_FAILED = VerifierResult(
    name="pytest",
    kind="pytest",
    command="pytest -q",
    passed=False,
    score=0.5,
    gating=True,
    summary="1 passed, 1 failed",
    output_tail="FAILED test_calc.py::test_neg - assert -3 == 1",
)


async def test_judge_returns_structured_verdict_and_records_cost(
    fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path
) -> None:
    fake_api.reply_json(VERDICT, usage=usage(4000, 300, cache_read=1000))
    costs = Costs()
    result = await LLMJudge(fake_llm, weight=2.0).verify(make_ctx(repo, costs, [PYTEST_FAILED]))

    assert result.name == "llm_judge" and result.kind == "llm_judge"
    assert result.score == 0.65 and result.passed  # above the yellow threshold
    assert result.weight == 2.0 and result.gating is False
    assert result.summary == VERDICT["summary"]
    assert result.details["criteria"] == VERDICT["criteria"]
    assert result.details["rework_instructions"] == "Add a test for add(-1, -2)."
    expected = cost_usd("claude-sonnet-5-5", TokenUsage(**usage(4000, 300, cache_read=1000)))
    assert result.cost_usd == pytest.approx(expected)
    assert [c for _, c in costs.calls] == [pytest.approx(expected)]
    assert "[ ] negative numbers work: untested" in result.output_tail

    request = fake_api.requests[0]
    text = request.all_text
    # The step, the criteria, the diff of the modified files and the check results.
    assert "Fix calc.add" in text
    assert "- add(2, 3) == 5" in text and "- negative numbers work" in text
    assert "-    return a - b" in text and "+    return a + b" in text
    assert "test_calc.py (new or changed file, full content)" in text
    assert "x = 2" not in text  # not a file this step modified
    assert "pytest [pytest] FAILED (gating), score 0.50: 1 passed, 1 failed" in text
    assert "assert -3 == 1" in text
    assert request.body["output_config"]["format"]["schema"]["required"] == [
        "score",
        "summary",
        "criteria",
        "rework_instructions",
    ]


async def test_judge_rework_instructions_reach_the_composite(
    fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path
) -> None:
    fake_api.reply_json(VERDICT)
    evaluator = CompositeEvaluator([LLMJudge(fake_llm)], Thresholds())
    evaluation = await evaluator.evaluate(make_ctx(repo, Costs()))
    assert evaluation.level.value == "yellow"
    assert "Add a test for add(-1, -2)." in (evaluation.rework_instructions or "")


async def test_score_is_clamped(fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path) -> None:
    fake_api.reply_json({**VERDICT, "score": 7})
    result = await LLMJudge(fake_llm).verify(make_ctx(repo, Costs()))
    assert result.score == 1.0 and result.details["raw_score"] == 7


async def test_malformed_verdict_is_an_error_whose_cost_is_recorded(
    fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path
) -> None:
    fake_api.reply("Looks good to me!", usage=usage(3000, 20))
    costs = Costs()
    with pytest.raises(JudgeError, match="not a valid JudgeVerdict"):
        await LLMJudge(fake_llm).verify(make_ctx(repo, costs))
    assert len(costs.calls) == 1 and costs.calls[0][1] > 0


async def test_judge_error_becomes_a_flagged_failed_check(
    fake_api: FakeAnthropic, repo: Path
) -> None:
    client = LLMClient(api_key=FAKE_KEY, base_url=fake_api.base_url, max_retries=0)
    fake_api.error(401, "invalid x-api-key")
    evaluation = await CompositeEvaluator([LLMJudge(client)], Thresholds()).evaluate(
        make_ctx(repo, Costs())
    )
    assert "verifier_error: llm_judge" in evaluation.flags
    [result] = evaluation.results
    assert "check ANTHROPIC_API_KEY" in result.summary
    assert FAKE_KEY not in result.model_dump_json()


async def test_diff_without_git_shows_file_contents(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("print('a')\n")
    (tmp_path / "blob.bin").write_bytes(b"\0\1\2")
    text = await gather_diff(tmp_path, ["a.py", "blob.bin", "gone.py", "../escape.py"])
    assert "--- a.py (new or changed file, full content)\nprint('a')" in text
    assert "blob.bin: binary file" in text
    assert "gone.py: deleted" in text
    assert "../escape.py: not shown" in text


async def test_diff_of_whole_tree_when_no_files_reported(repo: Path) -> None:
    text = await gather_diff(repo, [])
    assert "+x = 2" in text and "+    return a + b" in text and "test_calc.py" in text
