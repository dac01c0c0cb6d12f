"""Claude in the loop, end to end: the real engine, store, agent, judge and
SDK, with only the Messages API faked. A goal is planned by the model,
executed by the agent in a real git repo, judged, approved by a person and
completed; every scripted call's cost lands on the directive; the cost
breaker trips mid-chain; the key never reaches the database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.bus import EventBus
from engine.engine import DirectiveEngine, EngineServices, Outcome
from engine.events import BreakerTripped
from engine.models import (
    ApprovalKind,
    Autonomy,
    DirectiveSpec,
    DirectiveStatus,
    ExecutorKind,
    Limits,
    PlannerKind,
    Requirement,
    TokenUsage,
    VerifierConfig,
)
from engine.pricing import cost_usd
from engine.store import Store
from tests.conftest import git
from tests.fake_anthropic import FAKE_KEY, FakeAnthropic, tool_use, usage

pytest_plugins = ["tests.conftest_llm"]

ROOT = Path(__file__).resolve().parent.parent
MODEL = "claude-sonnet-5-5"  # the default model: fake_env sets no DIRECTIVE_MODEL


def dollars(*usages: dict[str, int]) -> float:
    return sum(cost_usd(MODEL, TokenUsage(**u)) for u in usages)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "T")
    (root / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "seed")
    return root


def spec(repo: Path, **limits: float) -> DirectiveSpec:
    return DirectiveSpec(
        title="Fix add",
        goal="calc.add must return the sum of its arguments",
        repo=repo,
        requirements=[Requirement(id="R1", text="add(a, b) returns a + b")],
        acceptance_criteria=["add(2, 3) == 5"],
        autonomy=Autonomy.GUARDRAILS,
        planner=PlannerKind.ANTHROPIC,
        executor=ExecutorKind.AGENT,
        verifiers=VerifierConfig(auto_detect=False, llm_judge=True),
        limits=Limits(**limits),
    )


def plan(*steps: tuple[str, list[str]]) -> dict:
    return {
        "rationale": "small fix",
        "steps": [
            {
                "name": name,
                "type": "implement",
                "description": f"{name}: fix calc.add",
                "depends_on": deps,
                "requirement_ids": ["R1"],
            }
            for name, deps in steps
        ],
    }


def verdict(score: float) -> dict:
    return {
        "score": score,
        "summary": "add is fixed; no test was added",
        "criteria": [{"criterion": "add(2, 3) == 5", "met": True, "note": "a + b"}],
        "rework_instructions": "" if score >= 0.8 else "Add a unit test for add.",
    }


async def engine_for(store: Store) -> DirectiveEngine:
    engine = DirectiveEngine(store, EventBus(), EngineServices(output_flush_s=0.01))
    await engine.start()
    return engine


async def test_planned_executed_judged_approved_completed(
    fake_env: FakeAnthropic, repo: Path, tmp_path: Path
) -> None:
    api = fake_env
    calls = {
        "plan": usage(1500, 400),
        "agent1": usage(3000, 150, cache_write=2000),
        "agent2": usage(200, 80, cache_read=2000),
        "judge": usage(2500, 300),
    }
    api.reply_json(plan(("implement", [])), usage=calls["plan"])
    api.reply(
        "Fixing the operator.",
        usage=calls["agent1"],
        tools=[tool_use("edit_file", {"path": "calc.py", "old": "a - b", "new": "a + b"})],
    )
    api.reply("Changed calc.add to return a + b.", usage=calls["agent2"])
    api.reply_json(verdict(0.65), usage=calls["judge"])

    db = tmp_path / "engine.db"
    store = await Store.open(db)
    engine = await engine_for(store)
    d = await engine.create_directive(spec(repo, max_cost_usd=5.0))
    await engine.start_directive(d.id)

    assert await engine.wait_settled(d.id, timeout=30) is Outcome.AWAITING_APPROVAL
    (approval,) = await store.pending_approvals(d.id)
    assert approval.kind is ApprovalKind.STEP_REVIEW
    chain = await store.current_chain(d.id)
    (step,) = await store.list_steps(chain.id)
    (evaluation,) = await store.list_evaluations(step.id)
    assert evaluation.level.value == "yellow" and evaluation.score == pytest.approx(0.65)
    assert evaluation.results[0].details["rework_instructions"] == "Add a unit test for add."

    await engine.resolve_approval(approval.id, "approve")
    assert await engine.wait_settled(d.id, timeout=30) is Outcome.COMPLETED

    # Real files changed by the agent, in its worktree, merged into the
    # directive's integration branch; the user's checkout is untouched.
    branch = f"directive/{d.id}/integration"
    assert git(repo, "show", f"{branch}:calc.py") == "def add(a, b):\n    return a + b\n"
    assert "+    return a + b" in git(repo, "diff", "HEAD", branch)
    assert git(repo, "status", "--porcelain") == ""
    (run,) = await store.list_runs(step.id)
    assert run.status == "succeeded" and "calc.py" in run.modified_files
    assert run.summary == "Changed calc.add to return a + b."
    # The directive's cost is exactly the scripted usage through the price table.
    final = await store.get_directive(d.id)
    assert final.status is DirectiveStatus.COMPLETED
    assert final.total_cost_usd == pytest.approx(dollars(*calls.values()))
    assert chain.cost_usd == pytest.approx(dollars(calls["plan"]))
    # Agent and judge calls are charged to the step's run, with their tokens.
    assert run.cost_usd == pytest.approx(dollars(calls["agent1"], calls["agent2"], calls["judge"]))
    assert run.usage.input_tokens == 3000 + 200 + 2500
    assert len(api.requests) == 4 and all(r.authorized for r in api.requests)

    await engine.close()
    await store.close()
    for path in tmp_path.glob("engine.db*"):  # the database and its WAL/SHM files
        assert FAKE_KEY.encode() not in path.read_bytes(), path.name


async def test_cost_breaker_trips_mid_chain(
    fake_env: FakeAnthropic, repo: Path, tmp_path: Path
) -> None:
    api = fake_env
    calls = {
        "plan": usage(10_000, 0),  # $0.02
        "a-agent": usage(5_000, 1_000),  # $0.02
        "a-judge": usage(10_000, 0),  # $0.02
        "b-agent": usage(20_000, 1_000),  # $0.05 -> $0.11 >= $0.10
    }
    api.reply_json(plan(("first", []), ("second", ["first"])), usage=calls["plan"])
    api.reply("first is done", usage=calls["a-agent"])
    api.reply_json(verdict(0.95), usage=calls["a-judge"])
    api.reply(tools=[tool_use("list_files", {})], usage=calls["b-agent"])
    api.reply("never sent")  # the breaker must stop the chain before this

    store = await Store.open(tmp_path / "engine.db")
    engine = await engine_for(store)
    d = await engine.create_directive(spec(repo, max_cost_usd=0.10))
    await engine.start_directive(d.id)

    assert await engine.wait_settled(d.id, timeout=30) is Outcome.PAUSED
    final = await store.get_directive(d.id)
    assert final.status is DirectiveStatus.PAUSED
    assert "cost" in (final.pause_reason or "")
    assert final.total_cost_usd == pytest.approx(dollars(*calls.values()))
    trips = [e for e in await store.list_events(d.id) if isinstance(e, BreakerTripped)]
    assert [t.breaker for t in trips] == ["cost"]
    chain = await store.current_chain(d.id)
    status = {s.name: s.status.value for s in await store.list_steps(chain.id)}
    assert status["first"] == "passed" and status["second"] != "passed"
    assert len(api.requests) == 4 and api.remaining == 1
    await engine.close()
    await store.close()


async def test_an_overloaded_api_fails_the_step_and_the_directive_resumes(
    fake_env: FakeAnthropic, repo: Path, tmp_path: Path
) -> None:
    """529 on every try: after the SDK's retries the step fails with the
    API's own message as an event; the directive stays active with an
    escalation (nothing lost, invariants hold), and a retry once the API is
    back completes it."""
    from engine.invariants import check_invariants

    api = fake_env
    api.reply_json(plan(("implement", [])), usage=usage(1000, 100))
    for _ in range(2):  # the first try and the one retry fake_env allows
        api.error(529, "Overloaded: please come back later")

    store = await Store.open(tmp_path / "engine.db")
    engine = await engine_for(store)
    d = await engine.create_directive(spec(repo, max_cost_usd=5.0))
    await engine.start_directive(d.id)
    assert await engine.wait_settled(d.id, timeout=30) is Outcome.AWAITING_APPROVAL
    assert (await store.get_directive(d.id)).status is DirectiveStatus.ACTIVE
    (escalation,) = await store.pending_approvals(d.id)
    assert escalation.kind is ApprovalKind.ESCALATION
    assert "Overloaded: please come back later" in escalation.summary
    logged = [e.describe() for e in await store.list_events(d.id)]
    assert any("Overloaded: please come back later" in line for line in logged)
    assert len(api.requests) == 3  # the plan, then the agent's try and its retry
    assert await check_invariants(store.path) == []

    api.reply(
        "Fixed.", tools=[tool_use("edit_file", {"path": "calc.py", "old": "a - b", "new": "a + b"})]
    )
    api.reply("Changed calc.add to return a + b.")
    api.reply_json(verdict(0.95))
    await engine.resolve_approval(escalation.id, "retry")
    assert await engine.wait_settled(d.id, timeout=30) is Outcome.COMPLETED
    assert git(repo, "show", f"directive/{d.id}/integration:calc.py").endswith("a + b\n")
    await engine.close()
    await store.close()


def test_a_headless_run_says_a_models_warning_once(
    fake_env: FakeAnthropic, repo: Path, tmp_path: Path
) -> None:
    """The client logged it to stderr as well as the engine's log line: a
    headless run printed it twice, once bare (and on stderr beside --json)."""
    fake_env.error(404, "model: claude-nova-10")
    directive = tmp_path / "d.toml"
    directive.write_text(
        f'title = "Fix add"\ngoal = "calc.add returns a sum"\nrepo = "{repo}"\n'
        'planner = "anthropic"\nexecutor = "agent"\nmodel = "claude-nova-10"\n'
    )
    run = subprocess.run(
        [sys.executable, "-m", "tui.cli", "--db", str(tmp_path / "cli.db"), "run", str(directive)]
        + ["--headless"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ),
        timeout=60,
    )
    assert run.returncode == 4, run.stderr  # paused: the plan could not be made
    assert "model 'claude-nova-10' not found at the Anthropic API" in run.stdout
    said = (run.stdout + run.stderr).count("no price known for model 'claude-nova-10'")
    assert said == 1, run.stdout + run.stderr


def test_a_model_the_api_does_not_know_is_changed_from_the_command_line_then_resumed(
    fake_env: FakeAnthropic, repo: Path, tmp_path: Path
) -> None:
    """A 404 for the directive file's model paused the first plan with
    "(resume to plan again)", but resume sent the same model again, and no
    command changed a directive's model: the directive was stuck."""
    api = fake_env
    api.error(404, "model: claude-nova-10")
    directive = tmp_path / "d.toml"
    directive.write_text(
        f'title = "Fix add"\ngoal = "calc.add returns a sum"\nrepo = "{repo}"\n'
        'planner = "anthropic"\nexecutor = "agent"\nautonomy = "full_auto"\n'
        'model = "claude-nova-10"\n'
    )
    db = str(tmp_path / "cli.db")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tui.cli", "--db", db, *args],
            capture_output=True, text=True, cwd=ROOT, env=dict(os.environ), timeout=60,
        )  # fmt: skip

    run = cli("run", str(directive), "--headless")
    assert run.returncode == 4, run.stderr
    assert "choose another with `directive-tui model ID NAME`" in run.stdout
    did = re.search(r"directive (\w+) created", run.stdout).group(1)  # type: ignore[union-attr]
    shown = cli("model", did)
    assert (shown.returncode, shown.stdout) == (0, "claude-nova-10\n")

    changed = cli("model", did, MODEL)
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.splitlines() == [
        f"directive {did}: model {MODEL} (was claude-nova-10)",
        f"from its next call on: `directive-tui --db {db} resume {did} --headless`",
    ]
    assert cli("model", did, "claude nova").returncode == 2  # no model's name
    again = cli("model", did, MODEL)  # nothing to change: nothing written
    assert (again.returncode, again.stdout) == (0, f"directive {did}: model {MODEL} already\n")

    unlisted = plan(("implement", []))
    unlisted["steps"][0]["requirement_ids"] = []  # the file lists no requirements
    api.reply_json(unlisted, usage=usage(1000, 100))
    api.reply(
        "Fixing.",
        tools=[tool_use("edit_file", {"path": "calc.py", "old": "a - b", "new": "a + b"})],
    )
    api.reply("Changed calc.add to return a + b.")
    api.reply_json(verdict(0.95))
    resumed = cli("resume", did, "--headless")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert [r.body["model"] for r in api.requests] == ["claude-nova-10"] + [MODEL] * 4
    assert f"model set to {MODEL} (was claude-nova-10)" in cli("events", did).stdout

    back = cli("model", did, "--default")
    assert (back.returncode, back.stderr) == (
        2,
        "directive-tui: 'Fix add' is completed: its model no longer matters\n",
    )


async def test_a_key_refused_to_the_judge_pauses_the_directive_and_the_step_runs_again(
    fake_env: FakeAnthropic, repo: Path, tmp_path: Path
) -> None:
    """A 401 for the judge was "no verdict": the attempt went to a person as
    unscored (every later step alike), while the agent's 401 paused. Now the
    directive pauses saying so, the attempt's run says its verdict never
    came, and a resume runs the step again and judges it."""
    api = fake_env
    api.reply_json(plan(("implement", [])), usage=usage(1000, 100))
    api.reply(
        "Fixing.",
        tools=[tool_use("edit_file", {"path": "calc.py", "old": "a - b", "new": "a + b"})],
    )
    api.reply("Changed calc.add to return a + b.")
    api.error(401, "invalid x-api-key")

    store = await Store.open(tmp_path / "engine.db")
    engine = await engine_for(store)
    try:
        d = await engine.create_directive(spec(repo, max_cost_usd=5.0))
        await engine.start_directive(d.id)
        assert await engine.wait_settled(d.id, timeout=30) is Outcome.PAUSED
        paused = await store.get_directive(d.id)
        assert (paused.pause_reason or "").startswith("the LLM judge could not judge: ")
        assert "ANTHROPIC_API_KEY" in paused.pause_reason and FAKE_KEY not in paused.pause_reason
        assert paused.failed_steps == 0 and await store.pending_approvals(d.id) == []
        (step,) = await store.list_steps((await store.current_chain(d.id)).id)
        assert step.status.value == "ready"
        (run,) = await store.list_runs(step.id)
        assert "its evaluation was cut off (the LLM judge could not judge" in (run.error or "")

        api.reply(
            "Fixing.",
            tools=[tool_use("edit_file", {"path": "calc.py", "old": "a - b", "new": "a + b"})],
        )
        api.reply("Changed calc.add to return a + b.")
        api.reply_json(verdict(0.95))
        await engine.resume_directive(d.id)
        assert await engine.wait_settled(d.id, timeout=30) is Outcome.COMPLETED
        (step,) = await store.list_steps((await store.current_chain(d.id)).id)
        assert (step.status.value, step.attempts) == ("passed", 2)
    finally:
        await engine.close()
        await store.close()


async def test_a_key_refused_mid_step_pauses_the_directive_instead_of_failing_the_step(
    fake_env: FakeAnthropic, repo: Path, tmp_path: Path
) -> None:
    """A 401 while the agent works: the step failed, counted toward the
    failed-steps limit and asked retry/skip/replan/stop (one request per
    running step), though no retry with the same key could help."""
    api = fake_env
    api.reply_json(plan(("implement", [])), usage=usage(1000, 100))
    api.error(401, "invalid x-api-key")

    store = await Store.open(tmp_path / "engine.db")
    engine = await engine_for(store)
    try:
        d = await engine.create_directive(spec(repo, max_cost_usd=5.0))
        await engine.start_directive(d.id)
        assert await engine.wait_settled(d.id, timeout=30) is Outcome.PAUSED
        paused = await store.get_directive(d.id)
        assert paused.pause_reason is not None and "API key" in paused.pause_reason
        assert paused.failed_steps == 0
        assert await store.pending_approvals(d.id) == []
        (step,) = await store.list_steps((await store.current_chain(d.id)).id)
        assert step.status.value == "ready"

        # the key put right (here: the API answers again), a resume finishes it
        api.reply(
            "Fixed.",
            tools=[tool_use("edit_file", {"path": "calc.py", "old": "a - b", "new": "a + b"})],
        )
        api.reply("Changed calc.add to return a + b.")
        api.reply_json(verdict(0.95))
        await engine.resume_directive(d.id)
        assert await engine.wait_settled(d.id, timeout=30) is Outcome.COMPLETED
    finally:
        await engine.close()
        await store.close()
