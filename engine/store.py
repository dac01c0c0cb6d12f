"""The durable truth: one SQLite file through aiosqlite.

Writes go through `Store.write(fn)`: `fn` runs on aiosqlite's database thread
inside one transaction with a `Tx` helper that checks every status change
against the transition tables and records its event. The transaction commits
the state and its events together, or neither: a crash between two writes
leaves no half-state. One hop to the database thread per transaction, not one
per statement (each hop costs ~100 us; SQLite's WAL commit ~25 us).

Group commit: writes queued in the same turn of the loop, or while a
transaction is on the database thread, wait, then go together in one
transaction (`_transactions`), each in its own savepoint (one that raises is
rolled back alone) and one COMMIT for all. Each still resolves only once its
changes are committed.

This module holds the `Store` (its reads and the write queue); the parts it
builds on have modules of their own: `engine.tx` (the write transaction and
the numbering of events), `engine.schema` (tables and migrations),
`engine.connection` (a connection's set-up and spec cache) and
`engine.rows` (rows to models).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from engine.connection import Connection, configure, forget_specs, is_readonly, unwritable
from engine.events import EngineEvent, event_from_json
from engine.models import (
    ApprovalRequest,
    ApprovalStatus,
    Chain,
    Directive,
    Evaluation,
    Progress,
    Step,
    StepRun,
    StepStatus,
)
from engine.rows import (
    READY_SQL,
    approval_from_row,
    chain_from_row,
    directive_from_row,
    evaluation_from_row,
    list_steps,
    run_from_row,
)
from engine.tx import NotFound, StoreError, Tx, write_events

T = TypeVar("T")

AMBIGUOUS_SHOWN = 8  # the ids an ambiguous prefix names


def _ambiguous(prefix: str, what: str, rows: list[Any]) -> str:
    """`id prefix '0' matches more than one directive: 0a1…, 0b2…` (up to
    AMBIGUOUS_SHOWN of them, then `and more`)."""
    ids = [row["id"] for row in rows[:AMBIGUOUS_SHOWN]]
    more = ", and more" if len(rows) > AMBIGUOUS_SHOWN else ""
    return f"id prefix {prefix!r} matches more than one {what}: {', '.join(ids)}{more}"


def _like_literal(text: str) -> str:
    """`text` as a LIKE pattern that matches only itself (with ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# --------------------------------------------------------------------------
# Store
# --------------------------------------------------------------------------


class Store:
    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._queued: list[tuple[Callable[[Tx], Any], asyncio.Future[Any]]] = []
        self._committer: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: str | Path, *, readonly: bool = False) -> Store:
        path = Path(path)
        if not readonly:
            path.parent.mkdir(parents=True, exist_ok=True)
        if readonly:
            connecting = aiosqlite.connect(
                f"file:{path}?mode=ro", uri=True, isolation_level=None, factory=Connection
            )
        else:
            connecting = aiosqlite.connect(path, isolation_level=None, factory=Connection)
        try:
            conn = await connecting
        except sqlite3.Error as exc:
            # aiosqlite stops its thread without waiting for it: were the loop
            # to close first, the thread's last reply would raise in it
            # ("Event loop is closed", printed after our message).
            await asyncio.to_thread(connecting._thread.join, 5)  # noqa: SLF001
            raise StoreError(unwritable(path) or f"cannot open the database {path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        store = cls(conn, path)
        try:
            await store._call(configure, readonly)
        except sqlite3.DatabaseError as exc:
            await conn.close()
            if is_readonly(exc):
                why = unwritable(path) or f"cannot write the database {path} ({exc})"
            else:
                why = f"{path}: not a usable directive-tui database ({exc})"
            raise StoreError(why) from exc
        return store

    async def close(self) -> None:
        if self._committer is not None:
            await asyncio.gather(self._committer, return_exceptions=True)
        await self._conn.close()

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(sqlite3_connection, *args)` on aiosqlite's database thread.

        aiosqlite's `_execute` is the one hop to its thread; going through it
        with a whole transaction is what keeps the engine's overhead low."""
        return await self._conn._execute(fn, self._conn._conn, *args)  # noqa: SLF001

    async def write(self, fn: Callable[[Tx], T]) -> tuple[T, list[EngineEvent]]:
        """Run `fn` in one transaction; return its result and the numbered,
        persisted events it recorded (to be published by the caller)."""
        return await self.submit(fn)

    def submit(self, fn: Callable[[Tx], T]) -> asyncio.Future[tuple[T, list[EngineEvent]]]:
        """`write`, queued now. Writes queued before the committer gets to
        them (in the same turn of the loop, or while a transaction is on the
        database thread) share one commit, in the order they were queued."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append((fn, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_queued(), name="store-commit")
        return future

    async def _commit_queued(self) -> None:
        """Commit what is queued, a batch at a time, until nothing is."""
        while self._queued:
            batch = [(fn, f) for fn, f in self._queued if not f.cancelled()]
            self._queued = []
            if not batch:
                continue
            try:
                outcomes = await self._call(_transactions, [fn for fn, _ in batch])
            except asyncio.CancelledError:  # the loop is going away
                for _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:  # BEGIN or COMMIT failed: none of them happened
                outcomes = [(False, exc)] * len(batch)
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():  # its caller gave up waiting; the write stands
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._call(fn)

    # -- queries --------------------------------------------------------------

    async def get_directive(self, directive_id: str) -> Directive:
        return await self._call(lambda c: Tx(c).directive(directive_id))

    async def list_directives(self) -> list[Directive]:
        rows = await self._conn.execute_fetchall("SELECT * FROM directives ORDER BY created_at")
        return [directive_from_row(r) for r in rows]

    async def find_directive(self, prefix: str) -> Directive:
        """By id or unique id prefix: what a person types in the CLI."""
        rows = await self._by_prefix("directives", prefix, "directive")
        if not rows:
            raise NotFound(f"no directive with id {prefix!r}")
        if len(rows) > 1:
            raise NotFound(_ambiguous(prefix, "directive", rows))
        return directive_from_row(rows[0])

    async def current_chain(self, directive_id: str) -> Chain | None:
        return await self._call(lambda c: Tx(c).current_chain(directive_id))

    async def list_chains(self, directive_id: str) -> list[Chain]:
        rows = await self._conn.execute_fetchall(
            "SELECT * FROM directive_chains WHERE directive_id = ? ORDER BY generation",
            (directive_id,),
        )
        return [chain_from_row(r) for r in rows]

    async def list_steps(self, chain_id: str) -> list[Step]:
        return await self._call(list_steps, "s.chain_id = ?", (chain_id,))

    async def get_step(self, step_id: str) -> Step:
        return await self._call(lambda c: Tx(c).step(step_id))

    async def find_ready_steps(self, chain_id: str) -> list[Step]:
        """Pending steps whose dependencies all passed or were skipped (the
        rule the driver promotes by)."""
        return await self._call(list_steps, "s.chain_id = ?" + READY_SQL, (chain_id,))

    async def steps_in(self, chain_id: str, statuses: Iterable[StepStatus]) -> list[Step]:
        wanted = [s.value for s in statuses]
        marks = ", ".join("?" for _ in wanted)
        return await self._call(
            list_steps, f"s.chain_id = ? AND s.status IN ({marks})", (chain_id, *wanted)
        )

    async def list_runs(self, step_id: str) -> list[StepRun]:
        rows = await self._conn.execute_fetchall(
            "SELECT * FROM step_runs WHERE step_id = ? ORDER BY attempt", (step_id,)
        )
        return [run_from_row(r) for r in rows]

    async def list_evaluations(self, step_id: str) -> list[Evaluation]:
        rows = await self._conn.execute_fetchall(
            "SELECT * FROM directive_evaluations WHERE step_id = ? ORDER BY created_at", (step_id,)
        )
        return [evaluation_from_row(r) for r in rows]

    async def get_evaluation(self, evaluation_id: str) -> Evaluation:
        rows = await self._conn.execute_fetchall(
            "SELECT * FROM directive_evaluations WHERE id = ?", (evaluation_id,)
        )
        if not rows:
            raise NotFound(f"no evaluation with id {evaluation_id!r}")
        return evaluation_from_row(rows[0])

    async def get_approval(self, approval_id: str) -> ApprovalRequest:
        return await self._call(lambda c: Tx(c).approval(approval_id))

    async def find_approval(self, prefix: str) -> ApprovalRequest:
        """By id or unique id prefix, as `find_directive`."""
        rows = await self._by_prefix("approval_requests", prefix, "approval")
        if not rows:
            raise NotFound(f"no approval with id {prefix!r}")
        if len(rows) > 1:
            raise NotFound(_ambiguous(prefix, "approval", rows))
        return approval_from_row(rows[0])

    async def _by_prefix(self, table: str, prefix: str, what: str) -> list[Any]:
        """The rows whose id starts with `prefix` (one more than an ambiguous
        prefix names), taken literally: `_` and `%` are characters, not LIKE
        wildcards, and an empty prefix (which would match every row) is
        refused."""
        if not prefix:
            raise NotFound(f"the {what} id is empty: give an id or a unique prefix of one")
        return await self._conn.execute_fetchall(
            f"SELECT * FROM {table} WHERE id LIKE ? ESCAPE '\\' ORDER BY id LIMIT ?",
            (_like_literal(prefix) + "%", AMBIGUOUS_SHOWN + 1),
        )

    async def pending_approvals(self, directive_id: str | None = None) -> list[ApprovalRequest]:
        sql = "SELECT * FROM approval_requests WHERE status = ?"
        params: list[Any] = [ApprovalStatus.PENDING.value]
        if directive_id is not None:
            sql += " AND directive_id = ?"
            params.append(directive_id)
        rows = await self._conn.execute_fetchall(sql + " ORDER BY created_at, rowid", params)
        return [approval_from_row(r) for r in rows]

    async def list_approvals(self, directive_id: str) -> list[ApprovalRequest]:
        rows = await self._conn.execute_fetchall(
            "SELECT * FROM approval_requests WHERE directive_id = ? ORDER BY created_at, rowid",
            (directive_id,),
        )
        return [approval_from_row(r) for r in rows]

    async def list_events(
        self, directive_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[EngineEvent]:
        sql = "SELECT data FROM directive_events WHERE directive_id = ? AND seq > ? ORDER BY seq"
        params: list[Any] = [directive_id, after_seq]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = await self._conn.execute_fetchall(sql, params)
        return [event_from_json(r[0]) for r in rows]

    async def last_events(self, directive_id: str, count: int) -> list[EngineEvent]:
        rows = await self._conn.execute_fetchall(
            "SELECT data FROM directive_events WHERE directive_id = ? ORDER BY seq DESC LIMIT ?",
            (directive_id, count),
        )
        return [event_from_json(r[0]) for r in reversed(rows)]

    async def progress(self) -> dict[str, Progress]:
        """directive id -> its current chain's progress: the home screen in
        one query."""
        rows = await self._conn.execute_fetchall(
            """
            SELECT d.id,
              (SELECT COUNT(*) FROM chain_steps s JOIN directive_chains c ON c.id = s.chain_id
                 WHERE c.directive_id = d.id AND c.superseded = 0 AND s.status = 'passed'),
              (SELECT COUNT(*) FROM chain_steps s JOIN directive_chains c ON c.id = s.chain_id
                 WHERE c.directive_id = d.id AND c.superseded = 0 AND s.status = 'skipped'),
              (SELECT COUNT(*) FROM chain_steps s JOIN directive_chains c ON c.id = s.chain_id
                 WHERE c.directive_id = d.id AND c.superseded = 0),
              (SELECT COUNT(*) FROM approval_requests a WHERE a.directive_id = d.id AND a.status = 'pending')
            FROM directives d
            """
        )
        fields = ("passed", "skipped", "total", "pending_approvals")
        return {r[0]: Progress(**dict(zip(fields, r[1:], strict=True))) for r in rows}


def _transactions(
    conn: sqlite3.Connection, fns: list[Callable[[Tx], Any]]
) -> list[tuple[bool, Any]]:
    """Run each of `fns` with its own `Tx` in one transaction: (True,
    (result, events)) or (False, the exception it raised, its changes rolled
    back). A lone write needs no savepoint: its failure rolls back all.
    Events are numbered and stored once every write has run."""
    alone = len(fns) == 1
    outcomes: list[tuple[bool, Any]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for fn in fns:
            tx = Tx(conn)
            if not alone:
                conn.execute("SAVEPOINT write")
            try:
                result = fn(tx)
            except Exception as exc:
                if alone:
                    raise
                conn.execute("ROLLBACK TO write")
                conn.execute("RELEASE write")
                forget_specs(conn)
                outcomes.append((False, exc))
                continue
            if not alone:
                conn.execute("RELEASE write")
            outcomes.append((True, (result, tx.events)))
        kept = [i for i, (ok, _) in enumerate(outcomes) if ok]
        numbered = write_events(conn, [outcomes[i][1][1] for i in kept])
        for i, events in zip(kept, numbered, strict=True):
            outcomes[i] = (True, (outcomes[i][1][0], events))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        forget_specs(conn)
        raise
    return outcomes
