"""A database in a known state for the screen's snapshot tests and pictures:
fixed ids and timestamps, written through the store's own transaction
helpers, plus engine services that hold steps in `running` and
`evaluating` forever, so a "mid-run" picture is the same on every run.

The directive "Add a --json flag" is mid-run with every confidence colour:
green and yellow passed steps, a yellow step awaiting approval, a red step
being reworked, a red step blocked (escalated), a step being evaluated, a
pending and a skipped one. Three more directives fill the home screen.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from engine.engine import EngineServices
from engine.events import (
    ApprovalRequired,
    ChainCreated,
    DirectiveCreated,
    DirectiveStatusChanged,
    EngineEvent,
    EvaluationCompleted,
    StepStatusChanged,
)
from engine.executors.base import ExecutionResult, StepContext
from engine.models import (
    ESCALATION_OPTIONS,
    REVIEW_OPTIONS,
    ApprovalKind,
    ApprovalRequest,
    Chain,
    ConfidenceLevel,
    Directive,
    DirectiveSpec,
    DirectiveStatus,
    Evaluation,
    ExecutorKind,
    Limits,
    PlannerKind,
    Severity,
    Step,
    StepRun,
    StepSpec,
    StepStatus,
    VerifierConfig,
    VerifierResult,
)
from engine.store import Store, Tx
from engine.verifiers.base import VerifyContext

T0 = 1_767_000_000.0  # 2025-12-29 09:20:00 UTC: every timestamp counts from here
NOW = T0 + 754.0  # the frozen clock: 12m34s after the start
# A real, empty folder at a fixed path: the engine refuses to run steps in a
# repository that is gone, and the pictures must not depend on a temp name.
REPO = Path(tempfile.gettempdir()) / "directive-tui-seed" / "textstats"

S = StepStatus
G, Y, R = ConfidenceLevel.GREEN, ConfidenceLevel.YELLOW, ConfidenceLevel.RED

# name, type, layer, row, status, score, level, rework count, depends on
CHAIN: list[tuple[str, str, int, int, StepStatus, float | None, ConfidenceLevel | None, int, list[str]]] = [
    ("research", "research", 0, 0, S.PASSED, 0.95, G, 0, []),
    ("design-api", "design", 1, 0, S.PASSED, 0.88, G, 0, ["research"]),
    ("docs-outline", "docs", 1, 1, S.PASSED, 0.71, Y, 0, ["research"]),
    ("implement-cli", "implement", 2, 0, S.AWAITING_APPROVAL, 0.62, Y, 0, ["design-api"]),
    ("implement-json", "implement", 2, 1, S.REWORK, 0.31, R, 1, ["design-api"]),
    ("write-tests", "test", 2, 2, S.READY, None, None, 0, ["design-api"]),
    ("style-fixes", "review", 2, 3, S.BLOCKED, 0.22, R, 2, ["docs-outline"]),
    ("integration", "test", 3, 0, S.PENDING, None, None, 0, ["implement-cli", "implement-json", "write-tests"]),
    ("changelog", "docs", 3, 1, S.SKIPPED, None, None, 0, ["docs-outline"]),
]  # fmt: skip

ACTIVE_ID = "d0json000001"


def _spec(title: str, goal: str, **limits: object) -> DirectiveSpec:
    return DirectiveSpec(
        title=title,
        goal=goal,
        repo=REPO,
        planner=PlannerKind.EXPLICIT,
        executor=ExecutorKind.SCRIPTED,
        verifiers=VerifierConfig(auto_detect=False, llm_judge=False),
        limits=Limits(**limits),  # type: ignore[arg-type]
        steps=[StepSpec(name=n, type=t, depends_on=deps) for n, t, *_, deps in CHAIN],
    )


def _results(name: str, score: float) -> list[VerifierResult]:
    passed = score >= 0.8
    return [
        VerifierResult(
            name="pytest",
            kind="pytest",
            command="python -m pytest -q",
            passed=passed,
            score=score,
            gating=True,
            summary=f"{round(score * 20)} of 20 tests passed",
            output_tail=(
                "tests/test_cli.py::test_json_flag PASSED\n"
                + ("" if passed else "tests/test_cli.py::test_json_nested FAILED\n")
                + f"{round(score * 20)} passed, {20 - round(score * 20)} failed in 0.42s"
            ),
        ),
        VerifierResult(
            name="json-schema",
            kind="command",
            command="python scripts/check_schema.py",
            passed=score >= 0.5,
            score=min(score + 0.1, 1.0),
            summary="schema check",
            output_tail=f"{name}: output matches schema v1"
            if score >= 0.5
            else "missing key 'words'",
        ),
    ]


def _write(tx: Tx) -> None:
    events: list[EngineEvent] = []

    def at(seconds: float) -> float:
        return T0 + seconds

    # -- the directive mid-run ---------------------------------------------
    d = Directive(
        id=ACTIVE_ID,
        spec=_spec(
            "Add a --json flag to textstats",
            "`textstats count --json` prints the counts as JSON",
            max_cost_usd=5.0,
            max_wall_time_minutes=60,
        ),
        status=DirectiveStatus.ACTIVE,
        total_cost_usd=1.37,
        regenerations=0,
        failed_steps=1,
        active_since=T0,
        created_at=T0 - 30,
        updated_at=T0,
    )
    tx.add_directive(d)
    chain = Chain(
        id="c0json000001", directive_id=d.id, generation=0, planner="explicit", created_at=at(1)
    )
    ids = {name: f"s{number:02d}{name[:9]}" for number, (name, *_) in enumerate(CHAIN)}
    steps = [
        Step(
            id=ids[name],
            chain_id=chain.id,
            directive_id=d.id,
            name=name,
            spec=StepSpec(
                name=name,
                type=kind,
                description=f"{kind.capitalize()} for the --json flag: {name.replace('-', ' ')}.",
                depends_on=deps,
            ),
            status=status,
            depends_on=[ids[dep] for dep in deps],
            rework_count=rework,
            attempts=rework + (1 if score is not None else 0),
            confidence=score,
            level=level,
            rework_instructions=(
                "pytest failed: tests/test_cli.py::test_json_nested expects nested counts"
                if level is R
                else None
            ),
            layer=layer,
            row=row,
            created_at=at(1),
            updated_at=at(2),
        )
        for name, kind, layer, row, status, score, level, rework, deps in CHAIN
    ]
    tx.add_chain(chain, steps)
    events += [
        DirectiveCreated(directive_id=d.id, title=d.title, ts=T0 - 30),
        DirectiveStatusChanged(
            directive_id=d.id, old_status="draft", new_status="planning", ts=T0 - 29
        ),
        ChainCreated(
            directive_id=d.id,
            chain_id=chain.id,
            generation=0,
            steps=[s.name for s in steps],
            ts=at(1),
        ),
        DirectiveStatusChanged(
            directive_id=d.id, old_status="planning", new_status="active", ts=at(1)
        ),
    ]
    clock = 10.0
    for step in steps:
        if step.confidence is None or step.level is None:
            continue
        run = StepRun(
            id=f"r-{step.id}",
            step_id=step.id,
            directive_id=d.id,
            attempt=1,
            executor="scripted",
            status="succeeded",
            summary=f"edited textstats for {step.name}",
            modified_files=["textstats/cli.py", "tests/test_cli.py"]
            if step.type != "research"
            else [],
            cost_usd=0.12,
            started_at=at(clock),
            finished_at=at(clock + 40),
        )
        tx.add_run(run)
        ev = Evaluation(
            id=f"e-{step.id}",
            directive_id=d.id,
            step_id=step.id,
            run_id=run.id,
            score=step.confidence,
            level=step.level,
            passed=step.level is not R,
            results=_results(step.name, step.confidence),
            summary=f"{step.level.value} {step.confidence:.2f}",
            rework_instructions=step.rework_instructions,
            flags=["tests_modified"] if step.name == "implement-cli" else [],
            created_at=at(clock + 50),
        )
        tx.add_evaluation(ev)
        events += [
            StepStatusChanged(directive_id=d.id, step_id=step.id, step_name=step.name,
                              old_status="ready", new_status="running", ts=at(clock)),
            EvaluationCompleted(directive_id=d.id, step_id=step.id, step_name=step.name,
                                evaluation_id=ev.id, score=ev.score, level=ev.level.value,
                                passed=ev.passed, verifiers={r.name: r.score for r in ev.results},
                                flags=ev.flags, severity={G: Severity.SUCCESS, Y: Severity.WARNING, R: Severity.ERROR}[step.level],
                                ts=at(clock + 50)),
        ]  # fmt: skip
        if step.status is S.AWAITING_APPROVAL:
            approval = ApprovalRequest(
                id="a0review0001",
                directive_id=d.id,
                step_id=step.id,
                kind=ApprovalKind.STEP_REVIEW,
                summary=f"step {step.name} scored {ev.score:.2f} (yellow): 12 of 20 tests passed",
                evaluation_id=ev.id,
                options=list(REVIEW_OPTIONS),
                created_at=at(clock + 51),
            )
            tx.add_approval(approval)
            events.append(ApprovalRequired(directive_id=d.id, approval_id=approval.id, kind="step_review",
                                           step_id=step.id, summary=approval.summary,
                                           severity=Severity.WARNING, ts=at(clock + 51)))  # fmt: skip
        if step.status is S.BLOCKED:
            approval = ApprovalRequest(
                id="a0escal00001",
                directive_id=d.id,
                step_id=step.id,
                kind=ApprovalKind.ESCALATION,
                summary=f"step {step.name} needs a decision: still red after 2 rework cycles",
                evaluation_id=ev.id,
                options=list(ESCALATION_OPTIONS),
                created_at=at(clock + 52),
            )
            tx.add_approval(approval)
            events.append(ApprovalRequired(directive_id=d.id, approval_id=approval.id, kind="escalation",
                                           step_id=step.id, summary=approval.summary,
                                           severity=Severity.WARNING, ts=at(clock + 52)))  # fmt: skip
        clock += 60
    for e in events:
        tx.emit(e)

    # -- three more for the home screen -------------------------------------
    others = [
        ("d1tokenizer1", "Speed up the tokenizer", DirectiveStatus.COMPLETED, 0.84, 1260.0, None),
        ("d2pipeline01", "Nightly CI pipeline", DirectiveStatus.PAUSED, 2.01, 300.0,
         "cost breaker: cost $2.01 reached the limit $2.00"),
        ("d3pydantic01", "Migrate settings to pydantic v2", DirectiveStatus.DRAFT, 0.0, 0.0, None),
    ]  # fmt: skip
    for number, (did, title, status, cost, wall, reason) in enumerate(others, start=1):
        other = Directive(
            id=did,
            spec=_spec(title, title, max_cost_usd=2.0 if reason else 10.0),
            status=status,
            total_cost_usd=cost,
            wall_time_used_s=wall,
            pause_reason=reason,
            created_at=T0 + number,
            updated_at=T0 + number,
        )
        tx.add_directive(other)
        tx.emit(DirectiveCreated(directive_id=did, title=title, ts=T0 + number))


async def seed(db_path: Path) -> None:
    REPO.mkdir(parents=True, exist_ok=True)
    store = await Store.open(db_path)
    try:
        await store.write(_write)
    finally:
        await store.close()


class HoldingExecutor:
    """Runs forever (until cancelled), except for steps in `quick`, which
    finish at once and go on to be evaluated."""

    kind = "scripted"
    modifies_files = False

    def __init__(self, quick: set[str]) -> None:
        self.quick = quick

    async def run(self, ctx: StepContext) -> ExecutionResult:
        if ctx.step.name not in self.quick:
            await asyncio.Event().wait()
        return ExecutionResult(success=True, summary="done")


class HoldingVerifier:
    """Never finishes: the step stays `evaluating`."""

    name = "pytest"
    kind = "pytest"
    weight = 1.0
    gating = True

    async def verify(self, ctx: VerifyContext) -> VerifierResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def holding_services() -> EngineServices:
    """`write-tests` runs and then stays evaluating; `implement-json` (rework)
    stays running: the two slots of `max_parallel_steps`."""
    return EngineServices(
        llm_provider=lambda spec: None,
        executor=lambda kind, llm: HoldingExecutor({"write-tests"}),
        verifiers=lambda d, step, llm: [HoldingVerifier()],
        track_changes=False,
        isolate_steps=False,  # no git here: the steps run in the folder, and no warning says so
    )
