"""The offline demo, end to end with real parts: a real git repository, real
pytest and docs-check subprocesses, a real SQLite store, the headless command."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from engine.demo import REPO_NAME, DemoError, prepare_demo
from engine.models import (
    ApprovalKind,
    ApprovalStatus,
    ConfidenceLevel,
    DirectiveStatus,
    ExecutorKind,
    PlannerKind,
    StepStatus,
)
from engine.planner import validate_chain
from engine.store import Store
from engine.verifiers.registry import build_verifiers
from tui.cli import main
from tui.cli.approvals import resolve
from tui.cli.exits import EXIT_APPROVAL, EXIT_OK
from tui.cli.headless import run_headless

RED, YELLOW, GREEN = "add-discounts", "add-vat", "survey-code"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


async def steps_by_name(store: Store, directive_id: str) -> dict:
    chain = await store.current_chain(directive_id)
    return {s.name: s for s in await store.list_steps(chain.id)}


async def the_directive(store: Store):
    (directive,) = await store.list_directives()
    return directive


async def test_prepare_demo_commits_a_project_whose_checks_pass(tmp_path: Path) -> None:
    spec = await prepare_demo(tmp_path)
    repo = tmp_path / REPO_NAME
    assert spec.repo == repo.resolve()
    assert git(repo, "status", "--porcelain") == ""
    assert len(git(repo, "log", "--format=%H").split()) == 1
    assert git(repo, "config", "--local", "user.email").strip()

    assert spec.executor is ExecutorKind.SCRIPTED and spec.planner is PlannerKind.EXPLICIT
    assert spec.verifiers.llm_judge is False and spec.autonomy.value == "guardrails"
    validate_chain(spec.steps)
    fan_in = [s for s in spec.steps if len(s.depends_on) > 1]
    fanned = {d for s in fan_in for d in s.depends_on}
    assert fan_in and len(fanned) > 1

    verifiers = {v.name: v for v in build_verifiers(spec, repo)}
    assert verifiers["pytest"].gating and verifiers["pytest"].weight == 2
    assert not verifiers["docs"].gating and verifiers["docs"].command[0] == sys.executable
    for name in ("pytest", "docs"):
        done = subprocess.run(verifiers[name].command, cwd=repo, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


async def test_prepare_demo_refuses_a_non_empty_target(tmp_path: Path) -> None:
    (tmp_path / REPO_NAME).mkdir()
    (tmp_path / REPO_NAME / "keep.txt").write_text("mine\n")
    with pytest.raises(DemoError, match="not empty"):
        await prepare_demo(tmp_path)
    assert (tmp_path / REPO_NAME / "keep.txt").read_text() == "mine\n"


async def test_prepare_demo_says_when_pytest_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pytest" else real(name, *a)
    )
    with pytest.raises(DemoError, match="pip install pytest"):
        await prepare_demo(tmp_path)
    assert not (tmp_path / REPO_NAME).exists()


async def test_demo_reworks_red_waits_on_yellow_then_completes_once_approved(
    tmp_path: Path,
) -> None:
    db = tmp_path / "demo.db"
    spec = await prepare_demo(tmp_path)
    out = io.StringIO()
    assert await run_headless(db, spec=spec, auto_approve=False, out=out) == EXIT_APPROVAL
    assert "waiting for approval" in out.getvalue()

    store = await Store.open(db)
    try:
        directive = await the_directive(store)
        steps = await steps_by_name(store, directive.id)
        assert (
            steps[GREEN].status is StepStatus.PASSED and steps[GREEN].level is ConfidenceLevel.GREEN
        )
        # the other branch of the fan-out ran while add-vat waited
        assert steps["test-discount-edges"].status is StepStatus.PASSED
        assert steps["document-api"].status is StepStatus.PENDING

        red = steps[RED]
        assert red.status is StepStatus.PASSED and red.rework_count == 1 and red.attempts == 2
        first, second = await store.list_evaluations(red.id)
        assert (first.level, second.level) == (ConfidenceLevel.RED, ConfidenceLevel.GREEN)
        pytest_first = next(r for r in first.results if r.name == "pytest")
        assert pytest_first.gating and not pytest_first.passed
        runs = await store.list_runs(red.id)
        assert runs[0].rework_instructions is None
        assert "pytest" in runs[1].rework_instructions
        assert "test_ten_percent_off" in runs[1].rework_instructions

        yellow = steps[YELLOW]
        assert yellow.status is StepStatus.AWAITING_APPROVAL
        (evaluation,) = await store.list_evaluations(yellow.id)
        assert evaluation.level is ConfidenceLevel.YELLOW
        assert spec.thresholds.yellow <= evaluation.score < spec.thresholds.green
        results = {r.name: r for r in evaluation.results}
        assert results["pytest"].passed and not results["docs"].passed
        assert "vat_amount: no docstring" in results["docs"].output_tail
        (approval,) = await store.pending_approvals(directive.id)
        assert approval.kind is ApprovalKind.STEP_REVIEW and approval.step_id == yellow.id
    finally:
        await store.close()

    assert await resolve(db, approval.id, "approve", None, io.StringIO()) == EXIT_OK
    resumed = io.StringIO()
    assert await run_headless(db, directive_id=directive.id, out=resumed) == EXIT_OK
    assert "directive active -> completed" in resumed.getvalue()

    store = await Store.open(db)
    try:
        assert (await store.get_directive(directive.id)).status is DirectiveStatus.COMPLETED
        steps = await steps_by_name(store, directive.id)
        assert {s.status for s in steps.values()} == {StepStatus.PASSED}
        (docs_eval,) = await store.list_evaluations(steps["document-api"].id)
        assert docs_eval.level is ConfidenceLevel.GREEN
    finally:
        await store.close()


async def test_demo_with_auto_approval_runs_straight_through(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    spec = await prepare_demo(tmp_path)
    out = io.StringIO()
    assert await run_headless(db, spec=spec, auto_approve=True, out=out) == EXIT_OK
    store = await Store.open(db)
    try:
        directive = await the_directive(store)
        assert directive.status is DirectiveStatus.COMPLETED
        (approval,) = await store.list_approvals(directive.id)
        assert approval.status is ApprovalStatus.APPROVED
    finally:
        await store.close()
    # --auto also took the result: the user's branch was fast-forwarded to it
    assert git(spec.repo, "status", "--porcelain") == ""
    assert len(git(spec.repo, "log", "--oneline").splitlines()) > 1
    assert "invoice_total" in (spec.repo / "tally" / "invoice.py").read_text()
    # each check detection found is named once, when a step first uses it
    # (the research step names pytest and the docs check; ruff comes with the code)
    said = [
        line.split("info    ", 1)[1]
        for line in out.getvalue().splitlines()
        if "checks found" in line
    ]
    assert all("; run with " in line for line in said)  # which interpreter ran it
    assert [re.sub(r"; run with [^)]*", "", line) for line in said] == [
        "checks found in the repository: pytest ([tool.pytest.ini_options] in pyproject.toml)",
        "checks found in the repository: ruff ([tool.ruff] in pyproject.toml)",
    ]


def test_demo_command_headless_auto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the demo's repo lands here
    assert main(["--db", str(tmp_path / "demo.db"), "demo", "--headless", "--auto"]) == EXIT_OK
    assert "directive active -> completed" in capsys.readouterr().out
    assert list(tmp_path.glob(f"directive-demo-*/{REPO_NAME}/CHANGELOG.md"))


async def test_auto_skips_a_step_that_escalates_as_the_app_does(tmp_path: Path) -> None:
    """Headless `--auto` answered an escalation with retry, the app with
    skip; a step that fails the same way every time asked again for ever.
    Both skip it now, and the run reaches its end."""
    from tests.engine_kit import Script, chain_spec, services

    db = tmp_path / "auto.db"
    spec = chain_spec(tmp_path, [("broken", []), ("after", [])])
    script = Script(fail={"broken": "exit 1"})
    out = io.StringIO()
    assert (
        await run_headless(db, spec=spec, auto_approve=True, services=services(script), out=out)
        == EXIT_OK
    )
    store = await Store.open(db)
    try:
        directive = await the_directive(store)
        steps = await steps_by_name(store, directive.id)
        assert steps["broken"].status is StepStatus.SKIPPED
        assert steps["after"].status is StepStatus.PASSED
        (escalation,) = await store.list_approvals(directive.id)
        assert escalation.kind is ApprovalKind.ESCALATION
        assert escalation.decision.value == "skip"
    finally:
        await store.close()
