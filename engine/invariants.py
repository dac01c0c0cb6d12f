"""The promises the database keeps, checked from outside the engine.

`check_invariants(db_path)` opens the file read-only (plain sqlite3, no
engine code) and returns one sentence per violation; an empty list means
the state is sound. The crash fuzzer runs it after every SIGKILL and the
property tests after every engine command, so each rule here is one the
engine must keep *at every commit*, not only when it is idle.

What "a live attempt" means, precisely, against what the engine writes:

* `running`: the engine writes the step `running` and its `step_runs` row
  with status `running` in one transaction, so a running step has exactly
  one `running` run, and it is its latest attempt (`attempt == attempts`).
* `evaluating`: the engine closes the run as `succeeded` (with
  `finished_at`) in the same transaction that moves the step to
  `evaluating`, so an evaluating step's latest run is `succeeded` and
  finished, not `cancelled` or `failed`.
* Conversely a `running` run belongs to a `running` step and is its latest
  attempt: a run left `running` under a step that moved on is an attempt
  nobody will ever close.

After a restart's recovery (`after_recovery=True`, checked before any new
attempt starts) no step is `running`/`evaluating` and no run is `running`:
recovery closed them as interrupted and put their steps back to `ready`.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.approvals import APPROVAL_STATUS
from engine.models import (
    ApprovalDecision,
    ApprovalKind,
    ApprovalStatus,
    DirectiveStatus,
    StepStatus,
)
from engine.schema import SCHEMA_VERSION
from engine.transitions import (
    DIRECTIVE_TERMINAL,
    DIRECTIVE_TRANSITIONS,
    STEP_DONE,
    STEP_TRANSITIONS,
    reachable_step_statuses,
)

COST_TOLERANCE = 1e-9
RUN_STATUSES = frozenset({"running", "succeeded", "failed", "cancelled"})
# Statuses a step of a superseded chain may keep: everything live was moved
# to `superseded` when the chain was replaced.
SUPERSEDED_CHAIN_STATUSES = frozenset(
    {StepStatus.PASSED, StepStatus.SKIPPED, StepStatus.SUPERSEDED}
)
# A step in one of these has started work, so its dependencies were done.
STARTED = frozenset(
    {
        StepStatus.RUNNING,
        StepStatus.EVALUATING,
        StepStatus.AWAITING_APPROVAL,
        StepStatus.REWORK,
    }
)
# The transition tables keyed by plain strings, as the database holds them.
STEP_MOVES = {k.value: frozenset(v.value for v in vs) for k, vs in STEP_TRANSITIONS.items()}
DIRECTIVE_MOVES = {
    k.value: frozenset(v.value for v in vs) for k, vs in DIRECTIVE_TRANSITIONS.items()
}
TERMINAL = frozenset(x.value for x in DIRECTIVE_TERMINAL)
# The status a closed approval has, by its decision.
CLOSED_STATUS = {
    d.value: APPROVAL_STATUS.get(d, ApprovalStatus.RESOLVED).value for d in ApprovalDecision
}
# Which step status a pending approval of each kind needs.
PENDING_APPROVAL_STEP = {
    ApprovalKind.STEP_REVIEW: frozenset({StepStatus.AWAITING_APPROVAL}),
    ApprovalKind.ESCALATION: frozenset({StepStatus.BLOCKED, StepStatus.FAILED}),
}


# --------------------------------------------------------------------------
# A snapshot: every row the checks read, loaded in one read transaction so
# the checks see one consistent state even while an engine writes.
# --------------------------------------------------------------------------


@dataclass
class Snapshot:
    directives: dict[str, dict[str, Any]]
    chains: dict[str, dict[str, Any]]
    steps: dict[str, dict[str, Any]]
    deps: dict[str, list[str]]
    runs: dict[str, list[dict[str, Any]]]  # step id -> runs by attempt
    approvals: list[dict[str, Any]]
    events: dict[str, list[dict[str, Any]]]  # directive id -> rows by seq, data parsed
    after_recovery: bool = False
    columns: dict[str, set[str]] = field(default_factory=dict)

    def step_name(self, step_id: str | None) -> str:
        step = self.steps.get(step_id or "")
        return f"step {step['name']!r} ({step_id})" if step else f"step {step_id!r}"


def _rows(conn: sqlite3.Connection, sql: str) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(sql)]


def load_snapshot(conn: sqlite3.Connection, *, after_recovery: bool = False) -> Snapshot:
    conn.row_factory = sqlite3.Row
    conn.execute("BEGIN")
    try:
        directives = {r["id"]: r for r in _rows(conn, "SELECT * FROM directives")}
        chains = {r["id"]: r for r in _rows(conn, "SELECT * FROM directive_chains")}
        steps = {r["id"]: r for r in _rows(conn, "SELECT * FROM chain_steps")}
        deps: dict[str, list[str]] = defaultdict(list)
        for r in conn.execute("SELECT step_id, depends_on FROM step_deps"):
            deps[r[0]].append(r[1])
        runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in _rows(conn, "SELECT * FROM step_runs ORDER BY step_id, attempt"):
            runs[r["step_id"]].append(r)
        approvals = _rows(conn, "SELECT * FROM approval_requests ORDER BY created_at, rowid")
        events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in _rows(conn, "SELECT * FROM directive_events ORDER BY directive_id, seq"):
            r["data"] = json.loads(r["data"])
            events[r["directive_id"]].append(r)
        columns = {
            t: {c[1] for c in conn.execute(f"PRAGMA table_info({t})")}
            for t in ("directives", "directive_chains")
        }
    finally:
        conn.execute("COMMIT")
    return Snapshot(
        directives, chains, steps, deps, runs, approvals, events, after_recovery, columns
    )


# --------------------------------------------------------------------------
# The checks: each yields one sentence per violation.
# --------------------------------------------------------------------------

Check = Callable[[Snapshot], Iterator[str]]


def statuses_known(s: Snapshot) -> Iterator[str]:
    """Every status is one the transition tables can reach."""
    reachable = {x.value for x in reachable_step_statuses()}
    directive_statuses = {x.value for x in DirectiveStatus}
    for d in s.directives.values():
        if d["status"] not in directive_statuses:
            yield f"directive {d['id']}: unknown status {d['status']!r}"
    for st in s.steps.values():
        if st["status"] not in reachable:
            yield f"{s.step_name(st['id'])}: status {st['status']!r} is not reachable from pending"
    for runs in s.runs.values():
        for r in runs:
            if r["status"] not in RUN_STATUSES:
                yield f"run {r['id']}: unknown status {r['status']!r}"
    for a in s.approvals:
        if a["status"] not in {x.value for x in ApprovalStatus}:
            yield f"approval {a['id']}: unknown status {a['status']!r}"
        if a["kind"] not in {x.value for x in ApprovalKind}:
            yield f"approval {a['id']}: unknown kind {a['kind']!r}"


def live_attempts(s: Snapshot) -> Iterator[str]:
    """running/evaluating steps have their attempt; running runs their step."""
    for st in s.steps.values():
        runs = s.runs.get(st["id"], [])
        latest = runs[-1] if runs else None
        running = [r for r in runs if r["status"] == "running"]
        name = s.step_name(st["id"])
        if len(running) > 1:
            yield f"{name}: {len(running)} runs are 'running' at once"
        if st["status"] == StepStatus.RUNNING:
            if latest is None or latest["status"] != "running":
                got = latest["status"] if latest else "no run"
                yield f"{name} is running without a live attempt (latest run: {got})"
            elif latest["attempt"] != st["attempts"]:
                yield f"{name} is running attempt {latest['attempt']} but counts {st['attempts']} attempts"
        elif st["status"] == StepStatus.EVALUATING:
            if latest is None or latest["status"] != "succeeded" or latest["finished_at"] is None:
                got = latest["status"] if latest else "no run"
                yield f"{name} is evaluating but its latest run is not a finished success ({got})"
        for r in running:
            if st["status"] != StepStatus.RUNNING:
                yield f"run {r['id']} of {name} is 'running' but the step is {st['status']!r}"
            elif r is not latest:
                yield f"run {r['id']} of {name} is 'running' but is not the latest attempt"


def recovered(s: Snapshot) -> Iterator[str]:
    """After recovery nothing is left mid-attempt."""
    if not s.after_recovery:
        return
    for st in s.steps.values():
        d = s.directives.get(st["directive_id"], {})
        if (
            st["status"] in (StepStatus.RUNNING, StepStatus.EVALUATING)
            and d.get("status") not in TERMINAL
        ):
            yield f"{s.step_name(st['id'])} is still {st['status']!r} after recovery"
    for runs in s.runs.values():
        for r in runs:
            if r["status"] == "running":
                yield f"run {r['id']} of {s.step_name(r['step_id'])} is still 'running' after recovery"


def attempts_numbered(s: Snapshot) -> Iterator[str]:
    """A step's runs are attempts 1..attempts. A step carried over by a
    replan keeps the count of the step it carries and has no runs of its
    own, until a reset sends it back to run: then its runs go on from that
    count."""
    for st in s.steps.values():
        numbers = [r["attempt"] for r in s.runs.get(st["id"], [])]
        first = 1
        if st["carried_from"]:
            origin = s.steps.get(st["carried_from"])
            first = (origin["attempts"] if origin else st["attempts"]) + 1
        if numbers != list(range(first, st["attempts"] + 1)):
            expected = f"{first}..{st['attempts']}" if first <= st["attempts"] else "none"
            yield f"{s.step_name(st['id'])}: runs are attempts {numbers}, expected {expected}"


def event_sequence(s: Snapshot) -> Iterator[str]:
    """seq is 1..N with no gap, N == last_seq, each row's JSON agrees with its key."""
    for did, d in s.directives.items():
        rows = s.events.get(did, [])
        seqs = [r["seq"] for r in rows]
        if seqs != list(range(1, len(seqs) + 1)):
            missing = sorted(set(range(1, max(seqs, default=0) + 1)) - set(seqs))
            yield f"directive {did}: event sequence has gaps (missing {missing[:10]})"
        if d["last_seq"] != len(seqs):
            yield f"directive {did}: last_seq is {d['last_seq']} but {len(seqs)} events are stored"
        for r in rows:
            data = r["data"]
            if (data.get("seq"), data.get("directive_id"), data.get("type")) != (
                r["seq"],
                did,
                r["type"],
            ):
                yield f"directive {did}: event #{r['seq']} disagrees with its stored record"
    for did in s.events.keys() - s.directives.keys():
        yield f"events stored for unknown directive {did}"


def _walk(
    history: list[dict[str, Any]],
    start: set[str],
    table: dict[str, frozenset[str]],
    current: str,
    what: str,
) -> Iterator[str]:
    """A status history replays through the table from `start` to `current`."""
    at: set[str] = set(start)
    for ev in history:
        old, new = ev["data"]["old_status"], ev["data"]["new_status"]
        if old not in at:
            yield f"{what}: event #{ev['seq']} moves from {old!r} but it was {sorted(at)}"
        if new not in table.get(old, frozenset()):
            yield f"{what}: event #{ev['seq']} makes the illegal move {old!r} -> {new!r}"
        at = {new}
    if current not in at:
        yield f"{what}: status is {current!r} but its events end at {sorted(at)}"


def status_history(s: Snapshot) -> Iterator[str]:
    """Replaying the status events gives every step's and directive's status,
    one legal move at a time: the log and the state tell the same story."""
    by_step: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_directive: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rows in s.events.values():
        for r in rows:
            if r["type"] == "step_status_changed":
                by_step[r["data"]["step_id"]].append(r)
            elif r["type"] == "directive_status_changed":
                by_directive[r["directive_id"]].append(r)
    for st in s.steps.values():
        start = {StepStatus.PASSED.value} if st["carried_from"] else {StepStatus.PENDING.value}
        yield from _walk(
            by_step.get(st["id"], []), start, STEP_MOVES, st["status"], s.step_name(st["id"])
        )
    for did, d in s.directives.items():
        yield from _walk(
            by_directive.get(did, []),
            {DirectiveStatus.DRAFT.value},
            DIRECTIVE_MOVES,
            d["status"],
            f"directive {did}",
        )


def approvals_consistent(s: Snapshot) -> Iterator[str]:
    """Approvals agree with step and directive states, and with the log."""
    pending_reviews: Counter[str] = Counter()
    for a in s.approvals:
        d = s.directives.get(a["directive_id"])
        if d is None:
            yield f"approval {a['id']} belongs to unknown directive {a['directive_id']}"
            continue
        if a["status"] != ApprovalStatus.PENDING:
            if a["decision"] is None or a["resolved_at"] is None:
                yield f"approval {a['id']} is {a['status']} without a decision and time"
            continue
        if d["status"] in TERMINAL:
            yield f"approval {a['id']} is pending in {d['status']} directive {d['id']}"
            continue
        kind = ApprovalKind(a["kind"])
        if kind is ApprovalKind.PLAN:
            if d["status"] not in (DirectiveStatus.ACTIVE, DirectiveStatus.PAUSED):
                yield f"plan approval {a['id']} is pending in {d['status']} directive {d['id']}"
            continue
        step = s.steps.get(a["step_id"] or "")
        if step is None:
            yield f"{kind.value} approval {a['id']} is pending for no step"
            continue
        if kind is ApprovalKind.STEP_REVIEW:
            pending_reviews[step["id"]] += 1
        if step["status"] not in PENDING_APPROVAL_STEP[kind]:
            yield (
                f"{kind.value} approval {a['id']} is pending but {s.step_name(step['id'])} "
                f"is {step['status']!r}"
            )
    for st in s.steps.values():
        d = s.directives.get(st["directive_id"], {})
        if d.get("status") in TERMINAL:
            continue  # stopping closes every approval and leaves the steps as they were
        if st["status"] == StepStatus.AWAITING_APPROVAL and pending_reviews[st["id"]] != 1:
            yield (
                f"{s.step_name(st['id'])} awaits approval with {pending_reviews[st['id']]} "
                "pending step reviews (expected exactly 1)"
            )
    required: Counter[str] = Counter()
    resolved: Counter[str] = Counter()
    for rows in s.events.values():
        for r in rows:
            if r["type"] == "approval_required":
                required[r["data"]["approval_id"]] += 1
            elif r["type"] == "approval_resolved":
                resolved[r["data"]["approval_id"]] += 1
    for a in s.approvals:
        if required[a["id"]] != 1:
            yield f"approval {a['id']} has {required[a['id']]} approval_required events"
        want = 0 if a["status"] == ApprovalStatus.PENDING else 1
        if resolved[a["id"]] != want:
            yield f"approval {a['id']} ({a['status']}) has {resolved[a['id']]} approval_resolved events"


def answers_true(s: Snapshot) -> Iterator[str]:
    """A closed approval records what happened: an answer it offered, with
    the status that answer gives, or `superseded`, with the reason, when a
    stop, a replan or a reset closed it unanswered. Never a decision that
    nobody made."""
    superseded = ApprovalDecision.SUPERSEDED.value
    for a in s.approvals:
        decision = a["decision"]
        if a["status"] == ApprovalStatus.PENDING or decision is None:
            continue  # a missing decision is `approvals_consistent`'s to name
        offered = json.loads(a["options"] or "[]")
        if decision == superseded and not a["comment"]:
            yield f"approval {a['id']} was superseded without a reason"
        elif decision != superseded and decision not in offered:
            yield f"approval {a['id']} ({a['kind']}) records {decision!r}, which it never offered"
        expected = CLOSED_STATUS.get(decision)
        if a["status"] != expected:
            yield f"approval {a['id']} is {a['status']!r} but its decision {decision!r} makes it {expected!r}"


def costs_add_up(s: Snapshot) -> Iterator[str]:
    """total == attempts + planning; the cost events add up to the total too."""
    run_cost: dict[str, float] = defaultdict(float)
    for runs in s.runs.values():
        for r in runs:
            run_cost[r["directive_id"]] += r["cost_usd"]
    chain_cost: dict[str, float] = defaultdict(float)
    for c in s.chains.values():
        chain_cost[c["directive_id"]] += c["cost_usd"]
    has_planning_column = "planning_cost_usd" in s.columns.get("directives", set())
    for did, d in s.directives.items():
        planning = d["planning_cost_usd"] if has_planning_column else chain_cost[did]
        if planning + COST_TOLERANCE < chain_cost[did]:
            yield f"directive {did}: planning cost {planning} is less than its chains' {chain_cost[did]}"
        expected = run_cost[did] + planning
        if abs(d["total_cost_usd"] - expected) > COST_TOLERANCE:
            yield (
                f"directive {did}: total cost {d['total_cost_usd']!r} != attempts "
                f"{run_cost[did]!r} + planning {planning!r}"
            )
        deltas = [r["data"] for r in s.events.get(did, []) if r["type"] == "cost_updated"]
        logged = sum(e["delta_usd"] for e in deltas)
        if abs(logged - d["total_cost_usd"]) > COST_TOLERANCE:
            yield f"directive {did}: cost events add up to {logged!r}, total is {d['total_cost_usd']!r}"
        if deltas and abs(deltas[-1]["total_usd"] - d["total_cost_usd"]) > COST_TOLERANCE:
            yield f"directive {did}: last cost event says {deltas[-1]['total_usd']!r}"


def failures_counted(s: Snapshot) -> Iterator[str]:
    """failed_steps counts the steps with a failed attempt (the failed-steps
    breaker reads it): a step retried and failing again counts once."""
    failed: defaultdict[str, set[str]] = defaultdict(set)
    for runs in s.runs.values():
        for r in runs:
            if r["status"] == "failed":
                failed[r["directive_id"]].add(r["step_id"])
    for did, d in s.directives.items():
        if d["failed_steps"] != len(failed[did]):
            yield f"directive {did}: failed_steps is {d['failed_steps']} but {len(failed[did])} steps failed"


def chains_sound(s: Snapshot) -> Iterator[str]:
    """One current chain per directive; superseded chains hold nothing live;
    dependencies stay inside a chain; started steps had their dependencies done."""
    current: dict[str, list[str]] = defaultdict(list)
    for c in s.chains.values():
        if c["directive_id"] not in s.directives:
            yield f"chain {c['id']} belongs to unknown directive {c['directive_id']}"
        if not c["superseded"]:
            current[c["directive_id"]].append(c["id"])
    for did, d in s.directives.items():
        if len(current[did]) > 1:
            yield f"directive {did} has {len(current[did])} current chains"
        if d["status"] in (DirectiveStatus.ACTIVE, DirectiveStatus.COMPLETED) and not current[did]:
            yield f"directive {did} is {d['status']} without a chain"
    done = {x.value for x in STEP_DONE}
    for st in s.steps.values():
        chain = s.chains.get(st["chain_id"])
        name = s.step_name(st["id"])
        if chain is None or chain["directive_id"] != st["directive_id"]:
            yield f"{name} is not in a chain of its directive"
            continue
        if chain["superseded"] and st["status"] not in SUPERSEDED_CHAIN_STATUSES:
            yield f"{name} is {st['status']!r} in a superseded chain"
        for dep in s.deps.get(st["id"], []):
            other = s.steps.get(dep)
            if other is None or other["chain_id"] != st["chain_id"]:
                yield f"{name} depends on {dep}, which is not in its chain"
            elif st["status"] in STARTED and other["status"] not in done:
                yield f"{name} is {st['status']!r} but its dependency {s.step_name(dep)} is {other['status']!r}"
        d = s.directives.get(st["directive_id"], {})
        if (
            d.get("status") == DirectiveStatus.COMPLETED
            and not chain["superseded"]
            and st["status"] not in done
        ):
            yield f"directive {d['id']} is completed but {name} is {st['status']!r}"


CHECKS: tuple[Check, ...] = (
    statuses_known,
    live_attempts,
    recovered,
    attempts_numbered,
    event_sequence,
    status_history,
    approvals_consistent,
    answers_true,
    costs_add_up,
    failures_counted,
    chains_sound,
)


def collect_violations(conn: sqlite3.Connection, *, after_recovery: bool = False) -> list[str]:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == 0:
        return []  # created but not yet migrated (a crash at first start): nothing stored
    if version > SCHEMA_VERSION:
        return [f"schema version {version} is newer than this checker knows ({SCHEMA_VERSION})"]
    snapshot = load_snapshot(conn, after_recovery=after_recovery)
    return [problem for check in CHECKS for problem in check(snapshot)]


def open_readonly(db_path: str | Path) -> sqlite3.Connection:
    """A read-only connection; it never creates or changes the file."""
    path = Path(db_path)
    if not path.exists():
        raise FileNotFoundError(f"no database at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=10)
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def check_invariants_sync(db_path: str | Path, *, after_recovery: bool = False) -> list[str]:
    conn = open_readonly(db_path)
    try:
        return collect_violations(conn, after_recovery=after_recovery)
    finally:
        conn.close()


async def check_invariants(db_path: str | Path, *, after_recovery: bool = False) -> list[str]:
    """Every invariant the database breaks, one sentence each ([] when sound)."""
    return await asyncio.to_thread(check_invariants_sync, db_path, after_recovery=after_recovery)


def describe(violations: Iterable[str]) -> str:
    """For assertion messages: one violation per line."""
    return "\n".join(f"- {v}" for v in violations) or "(none)"
