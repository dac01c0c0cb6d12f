"""Crash fuzzing: SIGKILL the engine at random moments, restart it on the
same database, and check after every kill that nothing was lost or corrupted.

The directive is a chain of 22 real shell steps (a fan-out and join, a step
that is red once and reworked to green by a directive-defined verifier, a
yellow step that waits for approval, a step whose executor fails on its
first attempt and is retried from its escalation). `tests/crash_worker.py`
runs it in a subprocess, holding the engine lease (so every restart also
takes over the lease of the engine it replaces), and answers approvals itself; this test kills that
process after a random delay drawn from `random.Random(seed)`, so every
seed's schedule is the same on every run and a failure names its seed.

After every kill, before the next start:
* the database as the crash left it passes `check_invariants`;
* a copy of it, put through the engine's recovery alone, passes
  `check_invariants(after_recovery=True)`: nothing left mid-attempt.
At the end the directive completed with the same steps, statuses, levels
and files as an uninterrupted run of the same directive.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.chains import MERGED_UNRECORDED
from engine.engine import DirectiveEngine, EngineServices
from engine.invariants import check_invariants, describe
from engine.store import Store
from tests.conftest import git, init_git_repo

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

# (repository kind, seed): 7 x 9 = 63 kill points in all
# folder: steps run in the repository; git: in worktrees, out/ committed;
# artifacts: in worktrees, out/ git-ignored and handed on as artifacts
SEED_ROUNDS = int(os.environ.get("CRASH_FUZZ_ROUNDS", "1"))  # more for a longer hunt
SCENARIOS = [
    (mode, 10 * round_ + seed)
    for round_ in range(SEED_ROUNDS)
    for mode, seeds in (("folder", range(5)), ("git", range(5, 7)), ("artifacts", range(7, 9)))
    for seed in seeds
]
KILLS_PER_SEED = 9
JITTER_S = (0.0, 0.06)  # after the chosen event, before the kill
POLL_S = 0.005
RUN_TIMEOUT_S = 90
STALL_S = 45  # a worker that has not reached its kill point by then hangs


# --------------------------------------------------------------------------
# The directive
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class FuzzStep:
    name: str
    depends_on: tuple[str, ...]
    command: str
    verifiers: tuple[str, ...] = ()


def _writes(name: str) -> str:
    return f"sleep 0.05 && mkdir -p out && echo {name} > out/{name}"


def fuzz_steps() -> list[FuzzStep]:
    steps = [FuzzStep("prep", (), _writes("prep"))]
    steps += [FuzzStep(f"a{i}", ("prep",), _writes(f"a{i}")) for i in range(1, 5)]
    steps.append(
        FuzzStep(
            "join",
            tuple(f"a{i}" for i in range(1, 5)),
            "cat out/a1 out/a2 out/a3 out/a4 > out/join",
        )
    )
    # red on its first attempt (the verifier wants attempt >= 2), then green
    steps.append(
        FuzzStep(
            "rework",
            ("join",),
            'sleep 0.05 && echo "$DIRECTIVE_ATTEMPT" > out/rework_attempt && echo rework > out/rework',
            ("attempt_two",),
        )
    )
    previous = "rework"
    for i in range(1, 7):
        steps.append(FuzzStep(f"b{i}", (previous,), _writes(f"b{i}")))
        previous = f"b{i}"
    # yellow every time: one verifier passes, one fails, neither gates
    steps.append(FuzzStep("yellow", (previous,), _writes("yellow"), ("ok", "half")))
    # the executor fails on attempt 1: failed, escalated, retried
    steps.append(
        FuzzStep(
            "flaky",
            ("yellow",),
            'if [ "$DIRECTIVE_ATTEMPT" -lt 2 ]; then echo "first attempt fails" >&2; exit 3; fi; '
            + _writes("flaky"),
        )
    )
    previous = "flaky"
    for i in range(1, 7):
        steps.append(FuzzStep(f"c{i}", (previous,), _writes(f"c{i}")))
        previous = f"c{i}"
    steps.append(
        FuzzStep(
            "final",
            (previous, "a3"),
            "sleep 0.05 && cat out/join out/rework out/yellow out/flaky out/c6 > out/final",
        )
    )
    return steps


def _toml_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def directive_text(repo: Path, mode: str) -> str:
    check_attempt = f"{PY} -c \"import sys; sys.exit(int(open('out/rework_attempt').read()) < 2)\""
    workspace = '[workspace]\nartifacts = ["out"]\n' if mode == "artifacts" else ""
    head = f"""\
title = "crash fuzz"
goal = "survive SIGKILL at any moment"
repo = "{repo}"
autonomy = "guardrails"
executor = "shell"

[limits]
max_parallel_steps = 2
max_failed_steps = 5
max_rework_cycles = 3

{workspace}
[verifiers]
auto_detect = false
llm_judge = false

[[verifiers.extra]]
name = "attempt_two"
command = '''{check_attempt}'''
gating = true

[[verifiers.extra]]
name = "ok"
command = "true"

[[verifiers.extra]]
name = "half"
command = "false"
"""
    body = "".join(
        f"""
[[steps]]
name = "{s.name}"
type = "shell"
depends_on = {_toml_list(s.depends_on)}
command = '''{s.command}'''
verifiers = {_toml_list(s.verifiers)}
"""
        for s in fuzz_steps()
    )
    return head + body


def write_directive(path: Path, repo: Path, mode: str) -> Path:
    path.write_text(directive_text(repo, mode))
    return path


# --------------------------------------------------------------------------
# Running, killing, checking
# --------------------------------------------------------------------------


def start_worker(db: Path, directive: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [PY, "-m", "tests.crash_worker", str(db), str(directive), "--lease"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def make_repo(path: Path, mode: str) -> Path:
    """The directive's repository: a plain folder (steps run in it), or a
    git work tree (each attempt in its own worktree, merged when it passes),
    which ignores out/ in the artifacts mode."""
    if mode == "folder":
        path.mkdir()
        return path
    return init_git_repo(path, {".gitignore": "out/\n"} if mode == "artifacts" else {})


def result_files(repo: Path) -> dict[str, str]:
    """out/* as the directive left it: in the folder itself, or on the
    directive's integration branch (the user's own tree stays untouched);
    none when out/ is ignored (its files went from step to step as artifacts,
    and the steps that read them passing is what shows they arrived)."""
    if not (repo / ".git").exists():
        return {p.name: p.read_text() for p in sorted((repo / "out").iterdir())}
    (branch,) = git(
        repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/directive/"
    ).split()
    names = git(repo, "ls-tree", "-r", "--name-only", branch, "out/").split()
    assert not (repo / "out").exists(), "a step wrote into the user's own work tree"
    extra = git(repo, "worktree", "list", "--porcelain").count("worktree ") - 1
    assert extra == 0, git(repo, "worktree", "list")
    return {Path(n).name: git(repo, "show", f"{branch}:{n}") for n in names}


def outcome(db: Path, repo: Path) -> dict[str, Any]:
    """What an uninterrupted run and a crashed-and-restarted one must share."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        directive = conn.execute("SELECT status FROM directives").fetchall()
        steps = conn.execute(
            "SELECT s.name, s.status, s.level FROM chain_steps s"
            " JOIN directive_chains c ON c.id = s.chain_id WHERE c.superseded = 0 ORDER BY s.name"
        ).fetchall()
        # A kill between a step's merge and its verdict's write: it passed
        # (merges follow a pass), its level unknown; not run again.
        lost = {
            row[0]
            for row in conn.execute(
                "SELECT s.name FROM directive_events e JOIN chain_steps s ON s.id = e.step_id"
                " WHERE e.type = 'step_status_changed' AND e.data LIKE ?",
                (f"%{MERGED_UNRECORDED}%",),
            )
        }
        chains = conn.execute("SELECT COUNT(*) FROM directive_chains").fetchone()[0]
    files = result_files(repo)
    files["rework_attempt"] = "(the attempt number differs with crashes)"
    return {
        "directive": directive,
        "steps": steps,
        "verdict_lost": lost,
        "chains": chains,
        "files": files,
        "events": last_seq(db),
    }


async def recovered_copy_violations(db: Path, workdir: Path) -> list[str]:
    """Put a copy of the crashed database through recovery alone (no step is
    started) and check that nothing is left mid-attempt."""
    copy = workdir / "recovered.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{copy}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    store = await Store.open(copy)
    # no workspace: the copy must not touch the repository the real one uses
    engine = DirectiveEngine(store, services=EngineServices(isolate_steps=False, take_lease=False))
    engine._launch_driver = lambda directive_id: None  # type: ignore[method-assign]  # recovery only
    try:
        await engine.start()
    finally:
        await engine.close()
        await store.close()
    return await check_invariants(copy, after_recovery=True)


def run_to_end(db: Path, directive: Path, log: Path) -> int | None:
    """The worker's exit code, or None if it hung (then it is killed)."""
    proc = start_worker(db, directive, log)
    try:
        return proc.wait(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict[str, Any]]:
    """The same directive run once without interruption, per repository kind."""
    made: dict[str, dict[str, Any]] = {}

    def reference(mode: str) -> dict[str, Any]:
        if mode not in made:
            root = tmp_path_factory.mktemp(f"reference-{mode}")
            repo = make_repo(root / "repo", mode)
            directive = write_directive(root / "fuzz.toml", repo, mode)
            code = run_to_end(root / "fuzz.db", directive, root / "worker.log")
            assert code == 0, (root / "worker.log").read_text()[-3000:]
            made[mode] = outcome(root / "fuzz.db", repo)
        return made[mode]

    return reference


FIGURES: dict[str, int] = {"kill_points": 0, "invariant_checks": 0, "seeds": 0, "verdicts_lost": 0}


def last_seq(db: Path) -> int:
    """How far the directive's event log has come (0 before it exists)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute("SELECT MAX(last_seq) FROM directives").fetchone()
    except sqlite3.OperationalError:  # no file or no schema yet
        return 0
    return row[0] or 0 if row else 0


def kill_when(
    proc: subprocess.Popen[bytes], db: Path, seq: int, jitter_s: float, log: Path
) -> bool:
    """SIGKILL `proc` once the event log reaches `seq`, `jitter_s` later.
    False if it exited by itself first."""
    deadline = time.monotonic() + STALL_S
    while proc.poll() is None and last_seq(db) < seq:
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"worker stalled before event #{seq}:\n" + log.read_text()[-3000:])
        time.sleep(POLL_S)
    time.sleep(jitter_s)
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


@pytest.mark.parametrize(("mode", "seed"), SCENARIOS, ids=[f"{m}-seed{s}" for m, s in SCENARIOS])
async def test_sigkill_at_random_moments_loses_nothing(
    mode: str, seed: int, tmp_path: Path, references: Callable[[str], dict[str, Any]]
) -> None:
    """Kill points are drawn as positions in the reference run's event log
    (so they fall in every phase: planning, steps, evaluations, rework,
    approvals, escalation, completion) plus a random delay; a point the
    restarted engine has already passed kills it during start-up and recovery."""
    reference = references(mode)
    rng = random.Random(seed)
    points = sorted(rng.sample(range(1, reference["events"] - 2), KILLS_PER_SEED))
    repo = make_repo(tmp_path / "repo", mode)
    directive = write_directive(tmp_path / "fuzz.toml", repo, mode)
    db, log = tmp_path / "fuzz.db", tmp_path / "worker.log"
    kills: list[tuple[int, float]] = []
    for point in points:
        jitter = round(rng.uniform(*JITTER_S), 3)
        proc = start_worker(db, directive, log)
        if not kill_when(proc, db, point, jitter, log):
            assert proc.returncode == 0, (
                f"seed {seed}: worker exited {proc.returncode}\n" + log.read_text()[-3000:]
            )
            break  # finished before this kill came
        kills.append((point, jitter))
        if not db.exists():
            continue
        context = f"seed {seed}, after kills at (event, delay) {kills}"
        violations = await check_invariants(db)
        assert not violations, f"{context}: the crashed database breaks:\n{describe(violations)}"
        violations = await recovered_copy_violations(db, tmp_path)
        assert not violations, f"{context}: after recovery:\n{describe(violations)}"
        FIGURES["invariant_checks"] += 2

    code = run_to_end(db, directive, log)
    assert code == 0, f"seed {seed}: final run exited {code}\n" + log.read_text()[-3000:]
    violations = await check_invariants(db)
    assert not violations, f"seed {seed}, final state:\n{describe(violations)}"
    final = outcome(db, repo)

    def shared(made: dict[str, Any]) -> dict[str, Any]:
        lost = final["verdict_lost"]
        steps = [(n, st, None if n in lost else lv) for n, st, lv in made["steps"]]
        return {k: v for k, v in made.items() if k not in ("events", "verdict_lost")} | {
            "steps": steps
        }

    assert shared(final) == shared(reference), f"seed {seed}, kills at {kills}"
    FIGURES["verdicts_lost"] += len(final["verdict_lost"])
    FIGURES["kill_points"] += len(kills)
    FIGURES["seeds"] += 1
    print(
        f"\ncrash fuzz {mode} seed {seed}: {len(kills)} kill points survived at {kills}; {FIGURES}"
    )


# --------------------------------------------------------------------------
# The checker itself: a sound database passes, and each kind of corruption
# the fuzzer looks for is seen and named.
# --------------------------------------------------------------------------


@pytest.fixture
async def waiting_db(tmp_path: Path) -> Path:
    """A real engine's database: a passed step with cost, a failed step's
    escalation answered, a yellow step waiting for approval."""
    from engine.bus import EventBus
    from engine.engine import Outcome
    from tests.engine_kit import Script, chain_spec, services

    script = Script(scores={"b": [0.6]}, costs={"a": 0.25, "b": 0.125})
    store = await Store.open(tmp_path / "sound.db")
    engine = DirectiveEngine(store, EventBus(), services(script))
    await engine.start()
    d = await engine.create_directive(chain_spec(tmp_path, [("a", []), ("b", ["a"])]))
    await engine.start_directive(d.id)
    assert await engine.wait_settled(d.id, timeout=30) is Outcome.AWAITING_APPROVAL
    await engine.close()
    await store.close()
    return tmp_path / "sound.db"


def _step_id(conn: sqlite3.Connection, name: str) -> str:
    return conn.execute("SELECT id FROM chain_steps WHERE name = ?", (name,)).fetchone()[0]


CORRUPTIONS: dict[str, tuple[str, str]] = {
    # name: (SQL run on the sound database, what the violation says)
    "unreachable status": (
        "UPDATE chain_steps SET status = 'exploded' WHERE name = 'a'",
        "is not reachable from pending",
    ),
    "running without attempt": (
        "UPDATE chain_steps SET status = 'running' WHERE name = 'a'",
        "running without a live attempt",
    ),
    "orphan running run": (
        "UPDATE step_runs SET status = 'running' WHERE step_id = (SELECT id FROM chain_steps WHERE name = 'a')",
        "is 'running' but the step is 'passed'",
    ),
    "event gap": (
        "DELETE FROM directive_events WHERE seq = 3",
        "event sequence has gaps (missing [3])",
    ),
    "last_seq ahead": (
        "UPDATE directives SET last_seq = last_seq + 1",
        "events are stored",
    ),
    "cost drift": (
        "UPDATE directives SET total_cost_usd = total_cost_usd + 0.000001",
        "total cost",
    ),
    "pending approval in a stopped directive": (
        "UPDATE directives SET status = 'stopped'",
        "is pending in stopped directive",
    ),
    "awaiting approval with none pending": (
        "UPDATE approval_requests SET status = 'approved', decision = 'approve', resolved_at = 1",
        "pending step reviews (expected exactly 1)",
    ),
    "status changed without its event": (
        "UPDATE chain_steps SET status = 'rework' WHERE name = 'b'",
        "but its events end at ['awaiting_approval']",
    ),
    "a decision nobody was offered": (
        "UPDATE approval_requests SET status = 'resolved', decision = 'replan', resolved_at = 1",
        "records 'replan', which it never offered",
    ),
    "failed attempts miscounted": (
        "UPDATE directives SET failed_steps = 2",
        "failed_steps is 2 but 0 steps failed",
    ),
    "two current chains": (
        "INSERT INTO directive_chains (id, directive_id, generation, planner, superseded, cost_usd, created_at)"
        " SELECT 'extra', directive_id, 7, planner, 0, 0, created_at FROM directive_chains",
        "current chains",
    ),
    "started before its dependency": (
        "UPDATE chain_steps SET status = 'pending' WHERE name = 'a'",
        "but its dependency",
    ),
}


async def test_the_checker_passes_a_sound_database(waiting_db: Path) -> None:
    assert await check_invariants(waiting_db) == []
    assert await check_invariants(waiting_db, after_recovery=True) == []


@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=list(CORRUPTIONS))
async def test_the_checker_names_each_corruption(
    corruption: str, waiting_db: Path, tmp_path: Path
) -> None:
    sql, expected = CORRUPTIONS[corruption]
    with sqlite3.connect(waiting_db) as conn:
        conn.execute(sql)
    violations = await check_invariants(waiting_db)
    assert any(expected in v for v in violations), describe(violations)


async def test_the_checker_sees_an_attempt_left_open_after_recovery(waiting_db: Path) -> None:
    with sqlite3.connect(waiting_db) as conn:
        b = _step_id(conn, "b")
        conn.execute(
            "UPDATE step_runs SET status = 'running', finished_at = NULL WHERE step_id = ?", (b,)
        )
        conn.execute("UPDATE chain_steps SET status = 'running' WHERE id = ?", (b,))
    during = await check_invariants(waiting_db, after_recovery=True)
    assert any("still 'running' after recovery" in v for v in during), describe(during)
