"""The anthropic planner against the fake Messages API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.llm import LLMClient
from engine.llm_planner import MAX_NAME_CHARS, MAX_PLANNED_STEPS, LLMPlanner, PlanningError
from engine.models import (
    Directive,
    DirectiveSpec,
    Requirement,
    Step,
    StepSpec,
    StepStatus,
    TokenUsage,
)
from engine.planner import ChainValidationError, ReplanContext, make_planner, validate_chain
from engine.pricing import cost_usd
from tests.fake_anthropic import FAKE_KEY, FakeAnthropic, usage

pytest_plugins = ["tests.conftest_llm"]

MODEL = "claude-sonnet-5-5"


def directive(tmp_path: Path) -> Directive:
    return Directive(
        spec=DirectiveSpec(
            title="CSV export",
            goal="Add a CSV export command",
            repo=tmp_path,
            requirements=[
                Requirement(id="R1", text="export writes valid CSV"),
                Requirement(id="R2", text="documented in README"),
            ],
            acceptance_criteria=["`app export out.csv` writes a header row"],
            planner="anthropic",
        )
    )


def step(
    name: str, type: str, deps: list[str], reqs: list[str] | None = None, desc: str = ""
) -> dict:
    return {
        "name": name,
        "type": type,
        "description": desc or f"do {name}",
        "depends_on": deps,
        "requirement_ids": reqs or [],
    }


GOOD = {
    "rationale": "research first, then code, tests and docs",
    "steps": [
        step("research", "research", []),
        step("implement", "implement", ["research"], ["R1"]),
        step("test", "test", ["implement"], ["R1"]),
        step("docs", "docs", ["implement"], ["R2"]),
    ],
}
CYCLIC = {
    "rationale": "oops",
    "steps": [
        step("implement", "implement", ["test"], ["R1"]),
        step("test", "test", ["implement"], ["R1"]),
    ],
}


def cost_of(*usages: dict[str, int]) -> float:
    return sum(cost_usd(MODEL, TokenUsage(**u)) for u in usages)


async def test_valid_plan(fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path) -> None:
    fake_api.reply_json(GOOD, usage=usage(900, 400))
    planner = make_planner("anthropic", llm=fake_llm)
    assert isinstance(planner, LLMPlanner) and planner.kind == "anthropic"
    chain = await planner.plan(directive(tmp_path))
    assert [s.name for s in chain.steps] == ["research", "implement", "test", "docs"]
    assert chain.steps[3].requirement_ids == ["R2"] and chain.steps[3].type == "docs"
    assert chain.rationale == GOOD["rationale"]
    assert chain.usage == TokenUsage(**usage(900, 400))
    assert chain.cost_usd == pytest.approx(cost_of(usage(900, 400)))
    body = fake_api.requests[0].body
    schema = body["output_config"]["format"]["schema"]
    assert "steps" in schema["properties"]
    assert "R1: export writes valid CSV" in fake_api.requests[0].all_text
    assert "writes a header row" in fake_api.requests[0].all_text
    assert "tool_choice" not in body


async def test_cyclic_plan_is_corrected_on_retry(
    fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path
) -> None:
    fake_api.reply_json(CYCLIC, usage=usage(800, 200))
    fake_api.reply_json(GOOD, usage=usage(1200, 400))
    chain = await LLMPlanner(fake_llm).plan(directive(tmp_path))
    assert [s.name for s in chain.steps] == ["research", "implement", "test", "docs"]
    retry = fake_api.requests[1]
    assert "That chain is invalid: cycle: implement -> test -> implement" in retry.last_user_text
    assert retry.messages[1]["role"] == "assistant"  # its own answer is in the history
    # Both calls are paid for.
    assert chain.cost_usd == pytest.approx(cost_of(usage(800, 200), usage(1200, 400)))
    assert chain.usage.input_tokens == 2000


async def test_invalid_after_retries_raises_planning_error(
    fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path
) -> None:
    unknown_dep = {"rationale": "", "steps": [step("implement", "implement", ["ghost"], ["R1"])]}
    fake_api.reply_json(CYCLIC)
    fake_api.reply_json({"rationale": "", "steps": []})
    fake_api.reply_json(unknown_dep)
    with pytest.raises(PlanningError) as caught:
        await LLMPlanner(fake_llm, corrections=2).plan(directive(tmp_path))
    message = str(caught.value)
    assert "no valid chain in 3 attempts" in message
    assert "step 'implement' depends on unknown step 'ghost'" in message
    assert caught.value.cost_usd == pytest.approx(cost_of(usage(), usage(), usage()))
    assert len(fake_api.requests) == 3
    assert "the chain has no steps" in fake_api.requests[2].last_user_text


async def test_corrections_stop_at_the_cost_limit(
    fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path
) -> None:
    """A correction is another paid call: none is made once the directive's
    cost, with this planning, has reached its limit."""
    d = directive(tmp_path)
    d.spec.limits.max_cost_usd = 0.01
    d.total_cost_usd = 0.005
    fake_api.reply_json(CYCLIC, usage=usage(8000, 2000))  # ~$0.02: past the limit
    fake_api.reply_json(GOOD, usage=usage(1200, 400))
    with pytest.raises(PlanningError) as caught:
        await LLMPlanner(fake_llm).plan(d)
    assert len(fake_api.requests) == 1
    message = str(caught.value)
    assert message.startswith(
        "the anthropic planner stopped correcting its chain: the cost limit $0.01"
    )
    assert "last problem: cycle" in message
    assert caught.value.cost_usd == pytest.approx(cost_of(usage(8000, 2000)))


async def test_unknown_requirement_ids_are_sent_back(
    fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path
) -> None:
    bad = {"rationale": "", "steps": [step("implement", "implement", [], ["R9"])]}
    fake_api.reply_json(bad)
    fake_api.reply_json(GOOD)
    await LLMPlanner(fake_llm).plan(directive(tmp_path))
    assert (
        "unknown requirement 'R9' (requirement ids: R1, R2)" in fake_api.requests[1].last_user_text
    )


async def test_a_blank_step_name_is_sent_back_and_paid_for(
    fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path
) -> None:
    blank = {
        "rationale": "",
        "steps": [step("research", "research", []), step("  ", "implement", [])],
    }
    fake_api.reply_json(blank, usage=usage(800, 200))
    fake_api.reply_json(GOOD, usage=usage(1200, 400))
    chain = await LLMPlanner(fake_llm).plan(directive(tmp_path))
    assert [s.name for s in chain.steps] == ["research", "implement", "test", "docs"]
    assert "step 2 of the chain has an empty name" in fake_api.requests[1].last_user_text
    assert chain.cost_usd == pytest.approx(cost_of(usage(800, 200), usage(1200, 400)))


async def test_a_blank_name_to_the_end_fails_with_its_cost(
    fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path
) -> None:
    fake_api.reply_json({"rationale": "", "steps": [step("", "implement", [])]})
    with pytest.raises(PlanningError, match="empty name") as caught:
        await LLMPlanner(fake_llm, corrections=0).plan(directive(tmp_path))
    assert caught.value.cost_usd == pytest.approx(cost_of(usage()))


async def test_a_dependency_named_twice_is_one_edge_not_a_correction(
    fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path
) -> None:
    """The store keeps each edge once: a repeated name reaching it made the
    chain's insert fail and the engine stop (seen end to end)."""
    twice = {
        "rationale": "",
        "steps": [
            step("research", "research", []),
            step("implement", "implement", ["research", " research", "research"], ["R1", "R1"]),
        ],
    }
    fake_api.reply_json(twice)
    chain = await LLMPlanner(fake_llm).plan(directive(tmp_path))
    assert chain.steps[1].depends_on == ["research"]
    assert chain.steps[1].requirement_ids == ["R1"]
    assert len(fake_api.requests) == 1
    # Every planner's chain meets validate_chain before the store: it names the repeat.
    with pytest.raises(ChainValidationError, match="step 'b' lists dependency 'a' more than once"):
        validate_chain([StepSpec(name="a"), StepSpec(name="b", depends_on=["a", "a"])])


async def test_a_step_without_a_description_is_sent_back(
    fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path
) -> None:
    """An empty description would hand the agent "(no description)" as its task."""
    fake_api.reply_json(
        {
            "rationale": "",
            "steps": [
                step("research", "research", []),
                step("implement", "implement", [], desc=" "),
            ],
        }
    )
    fake_api.reply_json(GOOD)
    chain = await LLMPlanner(fake_llm).plan(directive(tmp_path))
    assert all(s.description for s in chain.steps)
    assert "step 2 of the chain has an empty description" in fake_api.requests[1].last_user_text


async def test_step_names_are_one_line_and_short(
    fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path
) -> None:
    """A name with a newline split every event about the step over two lines
    of the headless output (seen end to end), and a 300-character one
    filled each line: whitespace is folded, an over-long name sent back."""
    fake_api.reply_json(
        {
            "rationale": "",
            "steps": [
                step("Fix the\nbug", "implement", [], ["R1"]),
                step("x" * 300, "test", ["Fix the\n bug"], ["R1"]),
            ],
        }
    )
    fake_api.reply_json(
        {
            "rationale": "",
            "steps": [
                step("Fix the\nbug", "implement", [], ["R1"]),
                step("test it", "test", ["Fix  the bug"], ["R1"]),
            ],
        }
    )
    chain = await LLMPlanner(fake_llm).plan(directive(tmp_path))
    assert [(s.name, s.depends_on) for s in chain.steps] == [
        ("Fix the bug", []),
        ("test it", ["Fix the bug"]),
    ]
    assert (
        f"step name 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... is 300 characters, more than {MAX_NAME_CHARS}"
        in fake_api.requests[1].last_user_text
    )


async def test_control_and_invisible_characters_leave_step_names(
    fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path
) -> None:
    """A directive file may not name a step with an escape sequence or a NUL;
    the model could, and its names reached the terminal and the database as
    written. A name of nothing but such characters is a blank one, sent back."""
    fake_api.reply_json({"rationale": "", "steps": [step("\u200b\x1b", "implement", [], ["R1"])]})
    fake_api.reply_json(
        {
            "rationale": "",
            "steps": [
                step("fix\x1b[2J-bug\x00", "implement", [], ["R1"]),
                step("test\u200b-it", "test", ["fix\x1b[2J-bug"], ["R1"]),
            ],
        }
    )
    chain = await LLMPlanner(fake_llm).plan(directive(tmp_path))
    assert [(s.name, s.depends_on) for s in chain.steps] == [
        ("fix[2J-bug", []),
        ("test-it", ["fix[2J-bug"]),
    ]
    assert "step 1 of the chain has an empty name" in fake_api.requests[1].last_user_text


async def test_a_plan_longer_than_the_bound_is_sent_back(
    fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path
) -> None:
    names = [f"s{i}" for i in range(MAX_PLANNED_STEPS + 1)]
    huge = {"rationale": "", "steps": [step(n, "implement", [], ["R1", "R2"]) for n in names]}
    fake_api.reply_json(huge)
    fake_api.reply_json(GOOD)
    chain = await LLMPlanner(fake_llm).plan(directive(tmp_path))
    assert len(chain.steps) == 4
    assert (
        f"the chain has {MAX_PLANNED_STEPS + 1} new steps, more than the {MAX_PLANNED_STEPS} allowed"
        in fake_api.requests[1].last_user_text
    )


async def test_a_plan_at_the_bound_is_accepted(
    fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path
) -> None:
    names = [f"s{i}" for i in range(MAX_PLANNED_STEPS)]
    fake_api.reply_json(
        {"rationale": "", "steps": [step(n, "implement", [], ["R1", "R2"]) for n in names]}
    )
    chain = await LLMPlanner(fake_llm).plan(directive(tmp_path))
    assert len(chain.steps) == MAX_PLANNED_STEPS


async def test_malformed_answer_is_retried_then_fails_clearly(
    fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path
) -> None:
    fake_api.reply("Here is my plan: do it.")
    fake_api.reply_json({"rationale": "x", "steps": [{"name": "a"}]})
    with pytest.raises(PlanningError, match="not a valid ChainDraft"):
        await LLMPlanner(fake_llm, corrections=1).plan(directive(tmp_path))


async def test_a_plan_cut_off_at_its_token_limit_is_asked_again_with_room(
    fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path
) -> None:
    """Asked again with the same limit, a long plan was cut off again: paid
    for three times before the directive paused. A cut answer doubles the
    limit for the next ask, which also asks for shorter text."""
    whole = json.dumps(GOOD)
    fake_api.reply(whole[: len(whole) // 2], stop_reason="max_tokens", usage=usage(900, 8000))
    fake_api.reply_json(GOOD, usage=usage(1000, 600))
    chain = await LLMPlanner(fake_llm).plan(directive(tmp_path))
    assert [s.name for s in chain.steps] == ["research", "implement", "test", "docs"]
    first, again = fake_api.requests
    assert (first.body["max_tokens"], again.body["max_tokens"]) == (8000, 16000)
    assert "the answer hit max_tokens" in again.last_user_text
    assert "cut off at 8000 tokens: keep each description" in again.last_user_text
    assert chain.cost_usd == pytest.approx(cost_of(usage(900, 8000), usage(1000, 600)))


async def test_a_plan_cut_off_twice_is_asked_again_within_what_the_sdk_sends(
    fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path
) -> None:
    """Doubled twice, the limit was 32,000: past about 21,000 the SDK refuses
    a call that is not streamed (a ValueError before any request), so the
    last correction never went and the directive paused on 'Streaming is
    required'. The limit stops at the client's own default."""
    whole = json.dumps(GOOD)
    for tokens in (8000, 16000):
        fake_api.reply(whole[: len(whole) // 2], stop_reason="max_tokens", usage=usage(900, tokens))
    fake_api.reply_json(GOOD, usage=usage(1000, 600))
    chain = await LLMPlanner(fake_llm, corrections=2).plan(directive(tmp_path))
    assert [s.name for s in chain.steps] == ["research", "implement", "test", "docs"]
    asked = [request.body["max_tokens"] for request in fake_api.requests]
    assert asked == [8000, 16000, 16000]
    assert "cut off at 16000 tokens" in fake_api.requests[-1].last_user_text


async def test_auth_failure_is_a_planning_error_without_retries(
    fake_api: FakeAnthropic, tmp_path: Path
) -> None:
    client = LLMClient(api_key=FAKE_KEY, base_url=fake_api.base_url, max_retries=4)
    fake_api.error(401, "invalid x-api-key")
    with pytest.raises(
        PlanningError, match="set a valid ANTHROPIC_API_KEY and start directive-tui again"
    ) as caught:
        await LLMPlanner(client).plan(directive(tmp_path))
    assert len(fake_api.requests) == 1
    assert FAKE_KEY not in str(caught.value)


async def test_refusal_is_a_planning_error(
    fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path
) -> None:
    fake_api.reply("I can't help with that.", stop_reason="refusal")
    with pytest.raises(PlanningError, match="refusal"):
        await LLMPlanner(fake_llm).plan(directive(tmp_path))
    assert len(fake_api.requests) == 1


async def test_replan_prompt_has_kept_failed_and_reason(
    fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path
) -> None:
    d = directive(tmp_path)
    kept = Step(
        chain_id="c",
        directive_id=d.id,
        name="research",
        status=StepStatus.PASSED,
        spec=StepSpec(name="research", type="research", description="map the code"),
    )
    failed = Step(
        chain_id="c",
        directive_id=d.id,
        name="implement",
        status=StepStatus.BLOCKED,
        attempts=4,
        rework_count=3,
        rework_instructions="tests keep failing on quoting",
        spec=StepSpec(name="implement", description="write the exporter", depends_on=["research"]),
    )
    # The model forgets the kept step and changes nothing else: it is put back.
    fake_api.reply_json(
        {
            "rationale": "split",
            "steps": [
                step("quoting", "implement", ["research"], ["R1"]),
                step("exporter", "implement", ["quoting"], ["R1"]),
                step("docs", "docs", ["exporter"], ["R2"]),
            ],
        }
    )
    chain = await LLMPlanner(fake_llm).plan(
        d,
        ReplanContext(reason="step implement blocked after 3 reworks", kept=[kept], failed=failed),
    )
    assert [s.name for s in chain.steps] == ["research", "quoting", "exporter", "docs"]
    assert chain.steps[0].description == "map the code"
    text = fake_api.requests[0].all_text
    assert "step implement blocked after 3 reworks" in text
    assert "- research [research]: map the code" in text
    assert "kept exactly as they are" in text
    assert "- implement [implement] (after research): write the exporter" in text
    assert "tests keep failing on quoting" in text
    assert "blocked after 4 attempt(s)" in text


async def test_a_replan_keeps_a_passed_step_whose_dependency_was_skipped(
    fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path
) -> None:
    """`research` was skipped, `implement` (after it) passed, `test` blocked.
    The new chain has no `research`, and the kept step is put back as it
    passed: its dependency on the missing step is dropped, not sent to a
    model that cannot change a kept step (every correction failed before)."""
    d = directive(tmp_path)
    kept = Step(
        chain_id="c",
        directive_id=d.id,
        name="implement",
        status=StepStatus.PASSED,
        spec=StepSpec(name="implement", description="write it", depends_on=["research"]),
    )
    failed = Step(
        chain_id="c",
        directive_id=d.id,
        name="test",
        status=StepStatus.BLOCKED,
        spec=StepSpec(name="test", type="test", description="test it", depends_on=["implement"]),
    )
    fake_api.reply_json(
        {
            "rationale": "test differently",
            "steps": [
                step("implement", "implement", ["research"], ["R1"]),
                step("unit-tests", "test", ["implement"], ["R1"]),
            ],
        }
    )
    chain = await LLMPlanner(fake_llm).plan(
        d, ReplanContext(reason="test blocked", kept=[kept], failed=failed)
    )
    assert [(s.name, s.depends_on) for s in chain.steps] == [
        ("implement", []),
        ("unit-tests", ["implement"]),
    ]
    assert chain.steps[0].description == "write it"
    assert len(fake_api.requests) == 1


async def test_a_kept_step_is_not_sent_back_for_its_long_name(
    fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path
) -> None:
    """The name limit is for new steps: a kept step's name is a fact the
    model cannot change, so holding it to the limit would fail every replan."""
    d = directive(tmp_path)
    long = "implement-the-exporter-with-quoting-and-escaping-of-every-field-kind"
    kept = Step(
        chain_id="c",
        directive_id=d.id,
        name=long,
        status=StepStatus.PASSED,
        spec=StepSpec(name=long, description="write it"),
    )
    fake_api.reply_json(
        {"rationale": "", "steps": [step(long, "implement", []), step("docs", "docs", [long])]}
    )
    chain = await LLMPlanner(fake_llm).plan(d, ReplanContext(reason="docs blocked", kept=[kept]))
    assert [s.name for s in chain.steps] == [long, "docs"]
    assert len(fake_api.requests) == 1


def test_make_planner_without_a_client_says_so() -> None:
    from engine.planner import PlannerUnavailableError

    with pytest.raises(PlannerUnavailableError, match="ANTHROPIC_API_KEY"):
        make_planner("anthropic", llm=None)


async def test_a_retry_while_planning_is_told_to_on_retry(
    fake_api: FakeAnthropic, fake_llm: LLMClient, tmp_path: Path
) -> None:
    """Planning is one call the SDK may sleep in for minutes of 429s: the
    planner passes each retry on, as it passes each cost (`on_cost`)."""
    fake_api.error(429, "slow down", retry_after_ms=1000)
    fake_api.reply_json(GOOD)
    planner = LLMPlanner(fake_llm)
    said: list[str] = []
    planner.on_retry = said.append
    planned = await planner.plan(directive(tmp_path))
    assert planned.steps
    assert said == ["retry 1 of 1 in 1s: rate limited by the Anthropic API (HTTP 429)"]
