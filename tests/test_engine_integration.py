"""End to end with real parts only: shell steps in a real git repository,
the real pytest verifier, the headless command in a subprocess killed with
SIGKILL and restarted on the same database."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from engine.bus import EventBus
from engine.engine import DirectiveEngine, EngineServices, Outcome
from engine.models import (
    DirectiveSpec,
    ExecutorKind,
    PlannerKind,
    StepSpec,
    VerifierConfig,
)
from engine.store import Store
from tests.conftest import git
from tests.proc_kit import alive

CALC_BUGGY = "def add(a, b):\n    return a - b\n"
CALC_FIXED = "def add(a, b):\n    return a + b\n"
TESTS = textwrap.dedent(
    """
    from calc import add

    def test_add():
        assert add(2, 3) == 5

    def test_add_zero():
        assert add(0, 0) == 0
    """
)

# Attempt 1 leaves the bug in; the rework (attempt 2) fixes it, and says
# which instructions it was given.
FIX_ON_REWORK = (
    'if [ "$DIRECTIVE_ATTEMPT" -ge 2 ]; then '
    f"printf '{CALC_FIXED.encode('unicode_escape').decode()}' > calc.py; "
    'echo "rework got: $(echo "$DIRECTIVE_REWORK_INSTRUCTIONS" | head -1)"; '
    "else echo 'first try'; fi"
)


def python_project(make_git_repo: Callable[..., Path]) -> Path:
    return make_git_repo(
        {
            "calc.py": CALC_BUGGY,
            "tests/test_calc.py": TESTS,
            "pytest.ini": "[pytest]\naddopts = -p no:cacheprovider\n",
        }
    )


def shell_spec(repo: Path, steps: list[StepSpec], **kw) -> DirectiveSpec:
    kw.setdefault("verifiers", VerifierConfig(llm_judge=False))
    return DirectiveSpec(
        title="fix calc",
        goal="make add() add",
        repo=repo,
        planner=PlannerKind.EXPLICIT,
        executor=ExecutorKind.SHELL,
        steps=steps,
        **kw,
    )


async def test_shell_chain_reworks_a_red_pytest_step_to_green(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    repo = python_project(make_git_repo)
    spec = shell_spec(
        repo,
        [
            # research reads; the repository's checks judge code-changing steps
            StepSpec(name="inspect", type="research", command="cat calc.py"),
            StepSpec(name="fix", command=FIX_ON_REWORK, depends_on=["inspect"]),
            StepSpec(
                name="check", type="test", command="python -c 'import calc'", depends_on=["fix"]
            ),
        ],
    )
    bus = EventBus()
    sub = bus.subscribe()
    engine = DirectiveEngine(store, bus, EngineServices(llm_provider=lambda s: None))
    d = await engine.create_directive(spec)
    await engine.start_directive(d.id)
    assert await engine.wait_settled(d.id, timeout=60) is Outcome.COMPLETED
    await engine.close()

    chain = await store.current_chain(d.id)
    steps = {s.name: s for s in await store.list_steps(chain.id)}
    fix = steps["fix"]
    assert fix.rework_count == 1 and fix.status.value == "passed"
    evaluations = await store.list_evaluations(fix.id)
    assert [e.level.value for e in evaluations] == ["red", "green"]
    red = evaluations[0]
    pytest_result = next(r for r in red.results if r.name == "pytest")
    assert not pytest_result.passed and pytest_result.score == 0.5  # 1 of 2 tests passes
    assert pytest_result.gating  # a failing gating verifier makes it red whatever the mean
    assert "pytest" in red.rework_instructions
    runs = await store.list_runs(fix.id)
    assert runs[1].rework_instructions == red.rework_instructions
    assert runs[1].modified_files == ["calc.py"]  # seen by the change tracker, confirmed by git
    events = sub.drain()
    outputs = [e.line for e in events if e.type == "step_output" and e.step_id == fix.id]
    assert any(line.startswith("rework got: ") for line in outputs)
    # the log says once which checks were found in the repository, and why
    found = [e.message for e in events if e.type == "notice" and "checks found" in e.message]
    assert [re.sub(r"; run with [^)]*", "", line) for line in found] == [
        "checks found in the repository: pytest (pytest.ini)"
    ]
    assert "; run with " in found[0]  # which interpreter ran it
    # the fix is on the directive's integration branch; the user's tree is untouched
    assert (repo / "calc.py").read_text() == CALC_BUGGY
    branch = f"directive/{d.id}/integration"
    assert git(repo, "show", f"{branch}:calc.py") == CALC_FIXED
    assert git(repo, "status", "--porcelain") == ""


async def test_a_yellow_step_is_approved_and_another_denied(
    store: Store, make_git_repo: Callable[..., Path]
) -> None:
    """Two partial scores from a directive-defined check: one approved, one
    denied (blocked and escalated)."""
    repo = make_git_repo({"README.md": "x\n"})
    half = [sys.executable, "-c", "import sys; print('Found 10 errors'); sys.exit(1)"]
    spec = shell_spec(
        repo,
        [StepSpec(name="one", command="true"), StepSpec(name="two", command="true")],
        verifiers=VerifierConfig(
            auto_detect=False,
            llm_judge=False,
            extra=[
                {"name": "half", "command": half, "parser": "ruff"},  # 1 - 10/20 = 0.5
                {"name": "ok", "command": "true", "weight": 1.0},
            ],
        ),
    )
    engine = DirectiveEngine(store, EventBus(), EngineServices(llm_provider=lambda s: None))
    d = await engine.create_directive(spec)
    await engine.start_directive(d.id)
    assert await engine.wait_settled(d.id, timeout=30) is Outcome.AWAITING_APPROVAL
    first, second = await store.pending_approvals(d.id)
    assert (await store.get_evaluation(first.evaluation_id)).level.value == "yellow"
    await engine.resolve_approval(first.id, "approve")
    await engine.resolve_approval(second.id, "deny", comment="no")
    assert await engine.wait_settled(d.id, timeout=30) is Outcome.AWAITING_APPROVAL
    chain = await store.current_chain(d.id)
    status = {s.id: s.status.value for s in await store.list_steps(chain.id)}
    assert status[first.step_id] == "passed" and status[second.step_id] == "blocked"
    (escalation,) = await store.pending_approvals(d.id)
    assert escalation.step_id == second.step_id and escalation.kind.value == "escalation"
    await engine.close()


def test_killed_with_sigkill_mid_run_then_restarted_completes_gap_free(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    repo = make_git_repo({"README.md": "x\n"})
    steps = "\n".join(
        f'[[steps]]\nname = "s{i}"\ncommand = "sleep 0.3 && echo s{i} >> log.txt"\n'
        + (f'depends_on = ["s{i - 1}"]\n' if i else "")
        for i in range(6)
    )
    directive = tmp_path / "slow.toml"
    directive.write_text(
        f'title = "slow"\ngoal = "survive a crash"\nrepo = "{repo}"\nautonomy = "full_auto"\n'
        'executor = "shell"\n[verifiers]\nauto_detect = false\nllm_judge = false\n' + steps
    )
    db = tmp_path / "crash.db"
    cmd = [sys.executable, "-m", "tui.cli", "--db", str(db)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([*cmd, "run", str(directive), "--headless"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.time() + 30
    while time.time() < deadline:  # wait until the third step is running
        time.sleep(0.05)
        if db.exists() and _step_status(db, "s2") == "running":
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _step_status(db, "s2") == "running"  # caught mid-step by the crash
    with sqlite3.connect(db) as conn:
        (did,) = conn.execute("SELECT id FROM directives").fetchone()

    done = subprocess.run([*cmd, "resume", did, "--headless"], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(db) as conn:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM directive_events ORDER BY seq")]
        last_seq = conn.execute("SELECT last_seq FROM directives").fetchone()[0]
        statuses = dict(conn.execute("SELECT name, status FROM chain_steps"))
        cancelled = conn.execute(
            "SELECT COUNT(*) FROM step_runs WHERE status = 'cancelled' AND error = 'interrupted by restart'"
        ).fetchone()[0]
    assert seqs == list(range(1, len(seqs) + 1)) and last_seq == len(seqs)
    assert set(statuses.values()) == {"passed"}
    assert cancelled == 1  # the attempt the crash cut short, closed on restart
    assert "interrupted by restart" in done.stdout


def _step_status(db: Path, name: str) -> str | None:
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            row = conn.execute("SELECT status FROM chain_steps WHERE name = ?", (name,)).fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


async def test_pause_and_stop_kill_the_step_subprocess_tree(
    store: Store, make_git_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_git_repo({"README.md": "x\n"})
    pids = tmp_path / "pids"
    # the step starts a grandchild and records both pids, then waits forever
    command = f"sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait"
    spec = shell_spec(
        repo,
        [StepSpec(name="forever", command=command)],
        verifiers=VerifierConfig(auto_detect=False, llm_judge=False),
    )
    engine = DirectiveEngine(store, EventBus(), EngineServices(llm_provider=lambda s: None))
    d = await engine.create_directive(spec)
    await engine.start_directive(d.id)
    for _ in range(200):
        if pids.exists() and len(pids.read_text().split()) == 2:
            break
        await asyncio.sleep(0.05)
    started = [int(p) for p in pids.read_text().split()]
    assert all(alive(p) for p in started)
    await engine.pause_directive(d.id)
    assert await engine.wait_settled(d.id, timeout=10) is Outcome.PAUSED
    assert not any(alive(p) for p in started)
    chain = await store.current_chain(d.id)
    (step,) = await store.list_steps(chain.id)
    assert step.status.value == "ready"
    (run,) = await store.list_runs(step.id)
    assert run.status == "cancelled"

    pids.unlink()
    await engine.resume_directive(d.id)
    for _ in range(200):
        if pids.exists() and len(pids.read_text().split()) == 2:
            break
        await asyncio.sleep(0.05)
    again = [int(p) for p in pids.read_text().split()]
    await engine.stop_directive(d.id)
    assert await engine.wait_settled(d.id, timeout=10) is Outcome.STOPPED
    assert not any(alive(p) for p in again)
    await engine.close()
