"""The LLM judge against the fake Messages API, on a real git repo."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from engine.bus import EventBus
from engine.engine import DirectiveEngine, EngineServices, Outcome
from engine.evaluator import CompositeEvaluator
from engine.llm import LLMClient
from engine.models import (
    Directive,
    DirectiveSpec,
    ExecutorKind,
    PlannerKind,
    Requirement,
    ScriptedAttempt,
    Step,
    StepRun,
    StepSpec,
    Thresholds,
    TokenUsage,
    VerifierConfig,
    VerifierResult,
)
from engine.pricing import cost_usd
from engine.store import Store
from engine.verifiers.base import PauseDirective, VerifyContext
from engine.verifiers.llm_judge import JudgeError, LLMJudge, UnbuiltClient, gather_diff
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


class Given:
    """A programmatic check whose result is given: the judge is what is tested."""

    def __init__(self, result: VerifierResult) -> None:
        self.result = result
        self.name, self.kind = result.name, result.kind
        self.weight, self.gating = result.weight, result.gating

    async def verify(self, ctx: VerifyContext) -> VerifierResult:
        return self.result


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


async def test_a_score_outside_0_1_is_sent_back_once_for_correction(
    fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path
) -> None:
    fake_api.reply_json({**VERDICT, "score": 7}, usage=usage(3000, 200))  # 7 out of 10
    fake_api.reply_json(VERDICT, usage=usage(3500, 200))
    costs = Costs()
    result = await LLMJudge(fake_llm).verify(make_ctx(repo, costs))

    assert result.score == 0.65  # the corrected verdict, not 7 clamped to 1.0
    assert len(costs.calls) == 2  # both calls are paid for
    # and both are in the judge's own record (it showed the last call's only)
    assert result.cost_usd == pytest.approx(sum(cost for _, cost in costs.calls))
    assert result.details["usage"]["input_tokens"] == 3000 + 3500
    correction = fake_api.requests[1].last_user_text
    assert "That verdict is not usable" in correction and "less than or equal to 1" in correction


@pytest.mark.parametrize("score", [7, 85, 1.7, -0.4, float("nan")])
async def test_a_score_still_outside_0_1_is_no_verdict_never_a_clamp(
    fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path, score: float
) -> None:
    for _ in range(2):
        fake_api.reply_json({**VERDICT, "score": score})
    costs = Costs()
    with pytest.raises(JudgeError, match=r"gave no verdict: .*score.* \(still after 2 tries\)"):
        await LLMJudge(fake_llm).verify(make_ctx(repo, costs))
    assert len(costs.calls) == 2 and len(fake_api.requests) == 2


async def test_a_malformed_verdict_twice_is_no_verdict_with_its_cost_recorded(
    fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path
) -> None:
    fake_api.reply("Looks good to me! 9/10", usage=usage(3000, 20))
    fake_api.reply("Really, it is fine.", usage=usage(3100, 20))
    costs = Costs()
    with pytest.raises(JudgeError, match="not a valid JudgeVerdict"):
        await LLMJudge(fake_llm).verify(make_ctx(repo, costs))
    assert len(costs.calls) == 2 and all(cost > 0 for _, cost in costs.calls)


async def test_an_api_outage_is_not_retried_by_the_judge(
    fake_api: FakeAnthropic, repo: Path
) -> None:
    client = LLMClient(api_key=FAKE_KEY, base_url=fake_api.base_url, max_retries=0)
    fake_api.error(529, "Overloaded")
    with pytest.raises(JudgeError, match="overloaded"):
        await LLMJudge(client).verify(make_ctx(repo, Costs()))
    assert len(fake_api.requests) == 1  # the SDK's retries are the only ones


async def judged_with(verifiers: list, repo: Path):  # type: ignore[no-untyped-def]
    return await CompositeEvaluator(verifiers, Thresholds()).evaluate(make_ctx(repo, Costs()))


def outage(fake_api: FakeAnthropic) -> LLMJudge:
    """A judge whose API answers 529 (no retries)."""
    fake_api.error(529, "Overloaded")
    return LLMJudge(LLMClient(api_key=FAKE_KEY, base_url=fake_api.base_url, max_retries=0))


async def test_a_judge_alone_without_a_verdict_leaves_the_step_to_a_person(
    fake_api: FakeAnthropic, repo: Path
) -> None:
    evaluation = await judged_with([outage(fake_api)], repo)

    assert evaluation.level.value == "yellow" and not evaluation.passed  # never green alone
    assert "no_verdict: llm_judge" in evaluation.flags
    assert "llm_judge gave no verdict and nothing else scored" in evaluation.summary
    assert "the Anthropic API is overloaded" in evaluation.summary  # the reason, for the person
    assert evaluation.rework_instructions is None  # nothing for an agent to fix
    [result] = evaluation.results
    assert result.weight == 0 and "overloaded" in result.summary


async def test_a_judge_without_a_verdict_is_left_out_of_the_score(
    fake_api: FakeAnthropic, repo: Path
) -> None:
    tests_pass = VerifierResult(name="pytest", kind="pytest", passed=True, score=1.0, gating=True)
    evaluation = await judged_with([Given(tests_pass), outage(fake_api)], repo)

    assert evaluation.level.value == "green" and evaluation.score == 1.0
    assert "no_verdict: llm_judge" in evaluation.flags
    assert "llm_judge no verdict [the LLM judge gave no verdict" in evaluation.summary


async def test_a_judge_without_a_verdict_is_never_rework_instructions(
    fake_api: FakeAnthropic, repo: Path
) -> None:
    evaluation = await judged_with([Given(PYTEST_FAILED), outage(fake_api)], repo)

    assert evaluation.level.value == "red"  # the failing gating tests, as ever
    instructions = evaluation.rework_instructions or ""
    assert "assert -3 == 1" in instructions
    assert "llm_judge" not in instructions and "overloaded" not in instructions


async def test_a_judge_that_cannot_be_built_says_why_and_gives_no_verdict(repo: Path) -> None:
    reason = (
        "the Claude client could not be built: DIRECTIVE_LLM_MAX_RETRIES must be a whole number"
    )
    evaluation = await judged_with([LLMJudge(UnbuiltClient(reason))], repo)
    assert evaluation.level.value == "yellow" and "no_verdict: llm_judge" in evaluation.flags
    assert "DIRECTIVE_LLM_MAX_RETRIES must be a whole number" in evaluation.summary


async def test_a_refused_key_stops_the_evaluation_to_pause_naming_the_key_never_its_value(
    fake_api: FakeAnthropic, repo: Path
) -> None:
    """Not "no verdict" (every step's judge would be refused alike, the run
    going on unjudged): the evaluation stops for the directive to pause."""
    client = LLMClient(api_key=FAKE_KEY, base_url=fake_api.base_url, max_retries=0)
    fake_api.error(401, "invalid x-api-key")
    with pytest.raises(PauseDirective) as refused:
        await judged_with([LLMJudge(client)], repo)
    assert str(refused.value).startswith("the LLM judge could not judge: ")
    assert "set a valid ANTHROPIC_API_KEY and start directive-tui again" in str(refused.value)
    assert FAKE_KEY not in str(refused.value)


async def test_diff_without_git_shows_file_contents(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("print('a')\n")
    (tmp_path / "blob.bin").write_bytes(b"\0\1\2")
    text = await gather_diff(tmp_path, ["a.py", "blob.bin", "gone.py", "../escape.py"])
    assert "--- a.py (new or changed file, full content)\nprint('a')" in text
    assert "blob.bin: binary file" in text
    assert "gone.py: deleted" in text
    assert "../escape.py: not shown" in text


async def test_a_new_symlink_loop_is_named_in_the_diff_not_a_judge_crash(repo: Path) -> None:
    """A step that left a symlink loop made the judge raise RuntimeError:
    the step went red as a 'verifier error' no rework could fix."""
    (repo / "loop_a").symlink_to("loop_b")
    (repo / "loop_b").symlink_to("loop_a")
    text = await asyncio.wait_for(gather_diff(repo, []), timeout=20)
    assert "--- loop_a: not shown ('loop_a' leads nowhere: Symlink loop" in text
    assert "--- loop_b: not shown ('loop_b' leads nowhere: Symlink loop" in text


async def test_the_diff_reads_only_the_start_of_a_huge_file_and_never_opens_a_pipe(
    repo: Path, tmp_path: Path
) -> None:
    """A step's new data file was read whole into memory (400 MB for a
    400 MB file) to show 12,000 characters of it, and a named pipe among
    the changed files would have blocked the event loop on open."""
    big = 50_000_000
    (repo / "data.csv").write_bytes(b"id,value\n" + b"1,2\n" * 20_000)
    with (repo / "data.csv").open("ab") as handle:
        handle.truncate(big)  # sparse: costs no disk
    text = await asyncio.wait_for(gather_diff(repo, []), timeout=20)
    assert f"--- data.csv (new or changed file, its first 48000 of {big} bytes)\nid,value" in text
    folder = tmp_path / "not-git"  # no git: the changed files are read as they are
    folder.mkdir()
    os.mkfifo(folder / "pipe")
    plain = await asyncio.wait_for(gather_diff(folder, ["pipe"]), timeout=20)
    assert "--- pipe: not shown ('pipe' is not a regular file" in plain


async def test_the_diff_stops_reading_new_files_once_it_is_full(repo: Path) -> None:
    (repo / "gen").mkdir()
    for n in range(300):
        (repo / "gen" / f"f{n:03}.txt").write_text(f"{n}\n" * 2_000)
    text = await gather_diff(repo, [])
    assert "gen/f000.txt" in text
    assert "more new or changed files, not shown" in text


async def test_diff_of_whole_tree_when_no_files_reported(repo: Path) -> None:
    text = await gather_diff(repo, [])
    assert "+x = 2" in text and "+    return a + b" in text and "test_calc.py" in text


async def test_a_bad_llm_setting_at_evaluation_reaches_a_person_not_a_hang(
    fake_env: FakeAnthropic, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The judge's client is built when the step is evaluated: a bad
    DIRECTIVE_LLM_* value there once left the step in `evaluating` forever.
    Now the judge gives no verdict naming the setting, and a person decides."""
    monkeypatch.setenv("DIRECTIVE_LLM_MAX_RETRIES", "two")
    store = await Store.open(tmp_path / "engine.db")
    engine = DirectiveEngine(store, EventBus(), EngineServices(output_flush_s=0.01))
    await engine.start()
    spec = DirectiveSpec(
        title="Fix add",
        goal="add() must return the sum",
        repo=repo,
        planner=PlannerKind.EXPLICIT,
        executor=ExecutorKind.SCRIPTED,
        verifiers=VerifierConfig(auto_detect=False, llm_judge=True),
        steps=[StepSpec(name="fix", attempts=[ScriptedAttempt(summary="fixed add")])],
    )
    d = await engine.create_directive(spec)
    await engine.start_directive(d.id)

    assert await engine.wait_settled(d.id, timeout=30) is Outcome.AWAITING_APPROVAL
    (approval,) = await store.pending_approvals(d.id)
    assert "DIRECTIVE_LLM_MAX_RETRIES must be a whole number, got 'two'" in approval.summary
    (step,) = await store.list_steps((await store.current_chain(d.id)).id)
    (evaluation,) = await store.list_evaluations(step.id)
    assert "no_verdict: llm_judge" in evaluation.flags
    assert fake_env.requests == []
    await engine.close()
    await store.close()


async def test_a_retry_is_said_in_the_evaluation_while_it_waits(
    fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path
) -> None:
    fake_api.error(529, "Overloaded", retry_after_ms=1000)
    fake_api.reply_json(VERDICT)
    ctx = make_ctx(repo, Costs())
    lines: list[tuple[str, str]] = []
    ctx.emit = lambda source, line: lines.append((source, line))
    await LLMJudge(fake_llm).verify(ctx)
    assert lines[0] == (
        "llm_judge",
        "retry 1 of 1 in 1s: the Anthropic API is overloaded (HTTP 529)",
    )


async def test_a_verdict_cut_off_at_max_tokens_is_asked_again_with_room_to_finish(
    fake_api: FakeAnthropic, fake_llm: LLMClient, repo: Path
) -> None:
    """Asked again with the same limit and no word of the cut, a long
    verdict was cut again: no verdict, twice paid for."""
    whole = json.dumps(VERDICT)
    fake_api.reply(whole[: len(whole) // 2], stop_reason="max_tokens")
    fake_api.reply_json(VERDICT)
    result = await LLMJudge(fake_llm).verify(make_ctx(repo, Costs()))
    assert result.score == 0.65
    first, second = (r.body["max_tokens"] for r in fake_api.requests)
    assert second == 2 * first
    correction = fake_api.requests[1].last_user_text
    assert f"It was cut off at {first} tokens: keep each note to one sentence." in correction
