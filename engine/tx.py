"""One write transaction: `Tx`, what a write does with the database on
aiosqlite's thread, and the numbering of its events at commit.

Every status change goes through the transition tables before anything is
written, and records its event in the same transaction: the state and its
events commit together, or neither does.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from engine.events import ClockChanged, DirectiveStatusChanged, EngineEvent, StepStatusChanged
from engine.models import (
    CLOCK_RUNNING,
    Actor,
    ApprovalRequest,
    Chain,
    Directive,
    DirectiveSpec,
    DirectiveStatus,
    Evaluation,
    Step,
    StepRun,
    StepStatus,
    now,
)
from engine.rows import (
    DIRECTIVE_HEAD,
    approval_from_row,
    chain_from_row,
    directive_from_row,
    directive_spec,
    dump,
    step_from_row,
)
from engine.transitions import STEP_TRANSITIONS, check_directive, check_step


class StoreError(RuntimeError):
    pass


class NotFound(StoreError):
    pass


class Tx:
    """One write's changes. Status changes are checked against the tables
    and record their event; `emit` adds any other event. Events get their
    per-directive sequence numbers at commit."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.events: list[EngineEvent] = []

    # -- generic ------------------------------------------------------------

    def emit(self, event: EngineEvent) -> None:
        self.events.append(event)

    def insert(self, table: str, values: dict[str, Any]) -> None:
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        self.conn.execute(
            f"INSERT INTO {table} ({cols}) VALUES ({marks})", [dump(v) for v in values.values()]
        )

    def update(self, table: str, row_id: str, **values: Any) -> None:
        if values and not self.update_if(table, row_id, {}, values):
            raise NotFound(f"{table}: no row with id {row_id!r}")

    def update_if(
        self, table: str, row_id: str, guard: dict[str, Any], values: dict[str, Any]
    ) -> bool:
        """Update the row only while its `guard` columns hold those values;
        whether it did."""
        sets = ", ".join(f"{k} = ?" for k in values)
        where = "".join(f" AND {k} = ?" for k in guard)
        cur = self.conn.execute(
            f"UPDATE {table} SET {sets} WHERE id = ?{where}",
            [*map(dump, values.values()), row_id, *map(dump, guard.values())],
        )
        return cur.rowcount == 1

    def one(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, tuple(params)).fetchone()

    # -- records ------------------------------------------------------------

    def directive(self, directive_id: str) -> Directive:
        row = self.one(f"SELECT {DIRECTIVE_HEAD} FROM directives WHERE id = ?", (directive_id,))
        if row is None:
            raise NotFound(f"no directive with id {directive_id!r}")
        specs: dict[tuple[str, int], DirectiveSpec] = getattr(self.conn, "specs", {})
        key = (directive_id, row["spec_rev"])
        spec = specs.get(key)
        if spec is None:
            text = self.one("SELECT spec FROM directives WHERE id = ?", (directive_id,))[0]
            spec = specs[key] = directive_spec(text)
            if len(specs) > 256:  # old revisions of long-lived connections
                del specs[next(iter(specs))]
        return directive_from_row(row, spec)

    def set_spec(self, directive_id: str, spec: DirectiveSpec) -> None:
        """The one way to change a stored spec: its revision moves with it."""
        cur = self.conn.execute(
            "UPDATE directives SET spec = ?, spec_rev = spec_rev + 1, updated_at = ? WHERE id = ?",
            (spec.model_dump_json(), now(), directive_id),
        )
        if cur.rowcount != 1:
            raise NotFound(f"directives: no row with id {directive_id!r}")

    def current_chain(self, directive_id: str) -> Chain | None:
        """The directive's newest chain that no replan has superseded."""
        row = self.one(
            "SELECT * FROM directive_chains WHERE directive_id = ? AND superseded = 0"
            " ORDER BY generation DESC LIMIT 1",
            (directive_id,),
        )
        return chain_from_row(row) if row else None

    def step(self, step_id: str) -> Step:
        row = self.one("SELECT * FROM chain_steps WHERE id = ?", (step_id,))
        if row is None:
            raise NotFound(f"no step with id {step_id!r}")
        deps = [
            r[0]
            for r in self.conn.execute(
                "SELECT depends_on FROM step_deps WHERE step_id = ?", (step_id,)
            )
        ]
        return step_from_row(row, deps)

    def approval(self, approval_id: str) -> ApprovalRequest:
        row = self.one("SELECT * FROM approval_requests WHERE id = ?", (approval_id,))
        if row is None:
            raise NotFound(f"no approval with id {approval_id!r}")
        return approval_from_row(row)

    def add_directive(self, d: Directive) -> None:
        self.insert(
            "directives",
            {
                "id": d.id,
                "title": d.spec.title,
                "status": d.status,
                "spec": d.spec.model_dump_json(),
                "total_cost_usd": d.total_cost_usd,
                "planning_cost_usd": d.planning_cost_usd,
                "regenerations": d.regenerations,
                "failed_steps": d.failed_steps,
                "wall_time_used_s": d.wall_time_used_s,
                "active_since": d.active_since,
                "last_seq": 0,
                "pause_reason": d.pause_reason,
                "created_at": d.created_at,
                "updated_at": d.updated_at,
            },
        )

    def add_chain(self, chain: Chain, steps: list[Step]) -> None:
        self.insert("directive_chains", chain.model_dump(mode="json"))
        for s in steps:
            row = s.model_dump(mode="json", exclude={"depends_on"})
            row["spec"] = s.spec.model_dump_json(by_alias=True)
            self.insert("chain_steps", row)
        self.conn.executemany(
            "INSERT INTO step_deps (step_id, depends_on) VALUES (?, ?)",
            [(s.id, dep) for s in steps for dep in s.depends_on],
        )

    def add_run(self, run: StepRun) -> None:
        row = run.model_dump(mode="json")
        row["modified_files"] = json.dumps(row["modified_files"])
        row["usage"] = json.dumps(row["usage"])
        self.insert("step_runs", row)

    def add_evaluation(self, ev: Evaluation) -> None:
        row = ev.model_dump(mode="json")
        row["results"] = json.dumps(row["results"])
        row["flags"] = json.dumps(row["flags"])
        self.insert("directive_evaluations", row)

    def add_approval(self, a: ApprovalRequest) -> None:
        row = a.model_dump(mode="json")
        row["options"] = json.dumps(row["options"])
        self.insert("approval_requests", row)

    # -- status changes -------------------------------------------------------

    def directive_status(
        self,
        directive_id: str,
        to: DirectiveStatus,
        *,
        reason: str | None = None,
        actor: Actor = Actor.SYSTEM,
        **fields: Any,
    ) -> Directive:
        """`actor`: USER when a person asked for it (pause, stop, resume), so
        a front end can tell a move it made from one that needs a person."""
        d = self.directive(directive_id)
        check_directive(d.spec.title, d.status, to)
        at = now()
        if to in CLOCK_RUNNING and d.active_since is None:
            fields.setdefault("active_since", at)
        elif d.status in CLOCK_RUNNING and to not in CLOCK_RUNNING:
            fields.setdefault("wall_time_used_s", d.wall_time_s(at))
            fields.setdefault("active_since", None)
        if to is DirectiveStatus.PAUSED:
            fields.setdefault("pause_reason", reason)
        elif d.status is DirectiveStatus.PAUSED:
            fields.setdefault("pause_reason", None)
        self.update("directives", directive_id, status=to, updated_at=at, **fields)
        self.emit(
            DirectiveStatusChanged(
                directive_id=directive_id,
                old_status=d.status,
                new_status=to,
                reason=reason,
                actor=actor,
            )
        )
        return d.model_copy(update={"status": to, **fields})

    def clock(
        self, d: Directive, *, running: bool, reason: str, at: float | None = None
    ) -> Directive:
        """Stop or run again the wall-time clock of `d` (as this transaction
        read it) without a change of status: it runs while an engine works a
        planning or active directive, and stops while the directive waits
        only for a person and when the engine closes. `at`: when it stopped,
        if not now (an engine that died, at its last heartbeat). Nothing
        when it is already so, or the status does not run the clock."""
        if d.status not in CLOCK_RUNNING or (d.active_since is not None) is running:
            return d
        at = now() if at is None else at
        used = d.wall_time_s(at)
        fields: dict[str, Any] = (
            {"active_since": at} if running else {"wall_time_used_s": used, "active_since": None}
        )
        self.update("directives", d.id, **fields)
        self.emit(ClockChanged(directive_id=d.id, running=running, used_s=used, reason=reason))
        return d.model_copy(update=fields)

    def step_status(
        self,
        step_id: str,
        to: StepStatus,
        *,
        reason: str | None = None,
        known: Step | None = None,
        **fields: Any,
    ) -> Step:
        """`known`: the step as this engine last wrote it. Every way into
        running counts an attempt, so a row whose (status, attempts) still
        match is still `known`: the update is guarded by those two instead
        of reading the row first."""
        values = {"status": to, "updated_at": now(), **fields}
        s = known
        if (
            s is None
            or to not in STEP_TRANSITIONS[s.status]
            or not self.update_if(
                "chain_steps", step_id, {"status": s.status, "attempts": s.attempts}, values
            )
        ):  # not known, or changed since: read it and check for real
            s = self.step(step_id)
            check_step(s.name, s.status, to)
            self.update("chain_steps", step_id, **values)
        updated = s.model_copy(update=values)
        self._moved(s.directive_id, step_id, s.name, s.status, to, updated.rework_count, reason)
        return updated

    def move_step(self, step_id: str, to: StepStatus, *, reason: str | None = None) -> None:
        """`step_status` for a caller that needs no model back: reads only
        what the check and the event need."""
        row = self.one(
            "SELECT name, status, directive_id, rework_count FROM chain_steps WHERE id = ?",
            (step_id,),
        )
        if row is None:
            raise NotFound(f"no step with id {step_id!r}")
        name, old, directive_id, rework_count = row
        check_step(name, StepStatus(old), to)
        self.update("chain_steps", step_id, status=to, updated_at=now())
        self._moved(directive_id, step_id, name, old, to, rework_count, reason)

    def _moved(
        self,
        directive_id: str,
        step_id: str,
        name: str,
        old: str,
        to: StepStatus,
        rework_count: int,
        reason: str | None,
    ) -> None:
        self.emit(
            StepStatusChanged(
                directive_id=directive_id,
                step_id=step_id,
                step_name=name,
                old_status=old,
                new_status=to,
                rework_count=rework_count,
                reason=reason,
            )
        )

    def delete_directive(self, directive_id: str, statuses: Iterable[str]) -> None:
        """Delete the directive and, by cascade, everything it owns (chains,
        steps, runs, evaluations, approvals, events), only while its status
        is one of `statuses` (another process may have started a draft)."""
        allowed = list(statuses)
        marks = ", ".join("?" * len(allowed))
        cur = self.conn.execute(
            f"DELETE FROM directives WHERE id = ? AND status IN ({marks})",
            (directive_id, *allowed),
        )
        if cur.rowcount != 1:
            d = self.directive(directive_id)  # NotFound when it is gone already
            raise StoreError(f"{d.title!r} is {d.status.value} now: not deleted")

    def add_cost(self, directive_id: str, delta: float) -> float:
        self.conn.execute(
            "UPDATE directives SET total_cost_usd = total_cost_usd + ?, updated_at = ? WHERE id = ?",
            (delta, now(), directive_id),
        )
        row = self.one("SELECT total_cost_usd FROM directives WHERE id = ?", (directive_id,))
        return float(row[0]) if row else 0.0


def write_events(
    conn: sqlite3.Connection, per_write: list[list[EngineEvent]]
) -> list[list[EngineEvent]]:
    """Number the events of a transaction's writes in order (per directive,
    from its last_seq) and store them: one insert and one counter update
    for the whole transaction."""
    numbered: list[list[EngineEvent]] = []
    last: dict[str, int] = {}
    for events in per_write:
        out = []
        for ev in events:
            did = ev.directive_id
            if did not in last:
                row = conn.execute(
                    "SELECT last_seq FROM directives WHERE id = ?", (did,)
                ).fetchone()
                if row is None:
                    raise NotFound(f"event for unknown directive {did!r}")
                last[did] = row[0]
            last[did] += 1
            out.append(ev.model_copy(update={"seq": last[did]}))
        numbered.append(out)
    rows = [
        (
            e.directive_id,
            e.seq,
            e.type,
            e.severity.value,
            e.actor.value,
            getattr(e, "step_id", None),
            e.ts,
            e.model_dump_json(),
        )
        for events in numbered
        for e in events
    ]
    if rows:
        conn.executemany(
            "INSERT INTO directive_events (directive_id, seq, type, severity, actor, step_id, ts, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany(
            "UPDATE directives SET last_seq = ? WHERE id = ?",
            [(seq, did) for did, seq in last.items()],
        )
    return numbered
