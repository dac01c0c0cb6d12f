"""The store: one SQLite file in WAL with foreign keys, versioned schema,
transactions that write a change and its event together, and a
`find_ready_steps` query."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.events import Notice
from engine.models import (
    Chain,
    Directive,
    DirectiveSpec,
    DirectiveStatus,
    Limits,
    Step,
    StepSpec,
    StepStatus,
)
from engine.schema import MIGRATIONS, SCHEMA_VERSION
from engine.store import NotFound, Store, StoreError, Tx
from engine.transitions import InvalidTransition


def pragma(path: Path, name: str):
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


async def test_new_database_is_wal_with_current_schema(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    store = await Store.open(db)
    foreign_keys = await store.read(lambda c: c.execute("PRAGMA foreign_keys").fetchone()[0])
    await store.close()
    assert pragma(db, "journal_mode") == "wal"
    assert pragma(db, "user_version") == SCHEMA_VERSION == len(MIGRATIONS)
    assert foreign_keys == 1


async def test_migrates_an_older_schema_forward_keeping_data(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:  # a file as version 1 left it
        conn.executescript(MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
        conn.execute(
            "INSERT INTO directives (id, title, status, spec, created_at, updated_at)"
            " VALUES ('d1', 'kept', 'draft', ?, 0, 0)",
            (DirectiveSpec(title="kept", goal="g", repo=tmp_path).model_dump_json(),),
        )
    store = await Store.open(db)
    assert (await store.get_directive("d1")).title == "kept"
    await store.close()
    assert pragma(db, "user_version") == SCHEMA_VERSION
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM engine_lease").fetchone()[0] == 0


async def test_a_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    db = tmp_path / "future.db"
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    with pytest.raises(StoreError, match="newer than this program"):
        await Store.open(db)


async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "notes.db"
    db.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError, match="not a usable directive-tui database"):
        await Store.open(db)
    assert db.read_text().startswith("these are my notes")


@pytest.mark.parametrize("readonly", [False, True])
@pytest.mark.parametrize("its_version", [0, 2])  # many programs number their schema too
async def test_another_program_s_database_is_refused_and_left_as_it_was(
    tmp_path: Path, readonly: bool, its_version: int
) -> None:
    db = tmp_path / "shop.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('Ada')")
    conn.execute(f"PRAGMA user_version = {its_version}")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    with pytest.raises(
        StoreError, match=r"another program's SQLite database \(its tables: customers\)"
    ):
        await Store.open(db, readonly=readonly)
    assert db.read_bytes() == before  # not switched to WAL, no table of ours added
    assert not db.with_name("shop.db-wal").exists()


async def test_foreign_keys_refuse_orphans(store: Store) -> None:
    chain = Chain(directive_id="missing")
    with pytest.raises(sqlite3.IntegrityError):
        await store.write(lambda tx: tx.add_chain(chain, []))


async def test_status_change_and_its_event_commit_together(store: Store, tmp_path: Path) -> None:
    d = Directive(spec=DirectiveSpec(title="t", goal="g", repo=tmp_path))
    await store.write(lambda tx: tx.add_directive(d))
    _, events = await store.write(lambda tx: tx.directive_status(d.id, DirectiveStatus.PLANNING))
    assert [(e.seq, e.type, e.new_status) for e in events] == [
        (1, "directive_status_changed", "planning")
    ]
    assert await store.list_events(d.id) == events
    assert (await store.get_directive(d.id)).last_seq == 1


async def _chain(store: Store, tmp_path: Path, deps: dict[str, list[str]]) -> dict[str, Step]:
    d = Directive(spec=DirectiveSpec(title="t", goal="g", repo=tmp_path))
    chain = Chain(directive_id=d.id)
    steps: dict[str, Step] = {}
    for name in deps:
        steps[name] = Step(
            chain_id=chain.id, directive_id=d.id, name=name, spec=StepSpec(name=name)
        )
    for name, ds in deps.items():
        steps[name].depends_on = [steps[x].id for x in ds]
    await store.write(lambda tx: (tx.add_directive(d), tx.add_chain(chain, list(steps.values()))))
    return steps


async def test_find_ready_steps_needs_every_dependency_passed_or_skipped(
    store: Store, tmp_path: Path
) -> None:
    steps = await _chain(store, tmp_path, {"a": [], "b": [], "c": ["a", "b"], "d": ["c"]})
    chain_id = steps["a"].chain_id
    names = lambda found: sorted(s.name for s in found)  # noqa: E731
    assert names(await store.find_ready_steps(chain_id)) == ["a", "b"]

    async def move(name: str, *path: StepStatus) -> None:
        for status in path:
            await store.write(lambda tx, s=status: tx.step_status(steps[name].id, s))

    await move("a", StepStatus.READY, StepStatus.RUNNING, StepStatus.EVALUATING, StepStatus.PASSED)
    assert names(await store.find_ready_steps(chain_id)) == ["b"]  # c still waits for b
    await move("b", StepStatus.SKIPPED)
    assert names(await store.find_ready_steps(chain_id)) == ["c"]
    await move("c", StepStatus.READY)
    assert (
        names(await store.find_ready_steps(chain_id)) == []
    )  # only pending steps are "ready to start"


async def test_find_ready_steps_is_one_query_plan_using_the_index(
    store: Store, tmp_path: Path
) -> None:
    steps = await _chain(store, tmp_path, {"a": []})
    plan = await store.read(
        lambda c: c.execute(
            "EXPLAIN QUERY PLAN SELECT s.* FROM chain_steps s WHERE s.chain_id = ? AND s.status = 'pending'",
            (steps["a"].chain_id,),
        ).fetchall()
    )
    assert any("chain_steps_by_chain_status" in row[3] for row in plan)


async def test_readonly_open_cannot_write(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    writer = await Store.open(db)  # creates the file and schema
    await writer.close()
    reader = await Store.open(db, readonly=True)
    d = Directive(spec=DirectiveSpec(title="t", goal="g", repo=tmp_path))
    with pytest.raises(sqlite3.OperationalError):
        await reader.write(lambda tx: tx.add_directive(d))
    await reader.close()


async def _directive(store: Store, tmp_path: Path) -> Directive:
    d = Directive(spec=DirectiveSpec(title="t", goal="g", repo=tmp_path))
    await store.write(lambda tx: tx.add_directive(d))
    return d


def commits_counted() -> tuple[list[str], Callable[[sqlite3.Connection], None]]:
    """A list of every COMMIT run on a connection, and the function that
    sets SQLite's trace on it to fill the list (run it on the store)."""
    seen: list[str] = []

    def trace(conn: sqlite3.Connection) -> None:
        conn.set_trace_callback(lambda sql: seen.append(sql) if sql == "COMMIT" else None)

    return seen, trace


async def test_writes_submitted_together_share_one_commit_in_order(
    store: Store, tmp_path: Path
) -> None:
    d = await _directive(store, tmp_path)
    commits, trace = commits_counted()
    await store.read(trace)
    notes = [Notice(directive_id=d.id, message=f"note {i}") for i in range(5)]
    results = await asyncio.gather(*(store.submit(lambda tx, n=n: tx.emit(n)) for n in notes))
    assert commits == ["COMMIT"]
    assert [events[0].seq for _, events in results] == [1, 2, 3, 4, 5]
    assert [e.message for e in await store.list_events(d.id)] == [n.message for n in notes]


async def test_a_failing_write_in_a_shared_commit_is_rolled_back_alone(
    store: Store, tmp_path: Path
) -> None:
    d = await _directive(store, tmp_path)
    first = store.submit(lambda tx: tx.directive_status(d.id, DirectiveStatus.PLANNING))
    refused = store.submit(lambda tx: tx.directive_status(d.id, DirectiveStatus.COMPLETED))
    third = store.submit(lambda tx: tx.emit(Notice(directive_id=d.id, message="after")))
    outcomes = await asyncio.gather(first, refused, third, return_exceptions=True)
    assert isinstance(outcomes[1], InvalidTransition)
    assert [e.seq for e in outcomes[0][1]] + [e.seq for e in outcomes[2][1]] == [1, 2]
    assert (await store.get_directive(d.id)).status is DirectiveStatus.PLANNING
    assert [e.type for e in await store.list_events(d.id)] == [
        "directive_status_changed",
        "notice",
    ]


async def test_a_changed_spec_is_read_back_changed(store: Store, tmp_path: Path) -> None:
    """Reads take the parsed spec from the connection's cache by revision:
    a change moves the revision, a rolled-back change leaves no trace."""
    d = await _directive(store, tmp_path)
    assert (await store.get_directive(d.id)).spec.limits.max_parallel_steps == 2
    wider = d.spec.model_copy(update={"limits": Limits(max_parallel_steps=4)})
    await store.write(lambda tx: tx.set_spec(d.id, wider))
    assert (await store.get_directive(d.id)).spec.limits.max_parallel_steps == 4

    def change_then_fail(tx: Tx) -> None:
        tx.set_spec(d.id, d.spec.model_copy(update={"limits": Limits(max_parallel_steps=9)}))
        assert tx.directive(d.id).spec.limits.max_parallel_steps == 9
        raise RuntimeError("refused after reading")

    with pytest.raises(RuntimeError):
        await store.write(change_then_fail)
    assert (await store.get_directive(d.id)).spec.limits.max_parallel_steps == 4
    other = d.spec.model_copy(update={"limits": Limits(max_parallel_steps=3)})
    await store.write(lambda tx: tx.set_spec(d.id, other))  # the same revision number again
    assert (await store.get_directive(d.id)).spec.limits.max_parallel_steps == 3


async def test_an_id_prefix_is_taken_literally_and_an_empty_one_is_refused(
    store: Store, tmp_path: Path
) -> None:
    """A person types an id prefix: `_` and `%` in it are characters, not
    SQL LIKE wildcards, and an empty prefix (which would pick any directive)
    is refused."""
    for directive_id in ("ab_1", "abx2", "a%c3"):
        d = Directive(id=directive_id, spec=DirectiveSpec(title="t", goal="g", repo=tmp_path))
        await store.write(lambda tx, d=d: tx.add_directive(d))
    assert (await store.find_directive("ab_")).id == "ab_1"  # not also abx2
    assert (await store.find_directive("a%")).id == "a%c3"
    assert (await store.find_directive("ABX")).id == "abx2"  # case still does not matter
    with pytest.raises(NotFound, match="no directive with id '_'"):
        await store.find_directive("_")
    with pytest.raises(NotFound, match="matches more than one directive"):
        await store.find_directive("ab")
    with pytest.raises(NotFound, match="the directive id is empty"):
        await store.find_directive("")
    with pytest.raises(NotFound, match="the approval id is empty"):
        await store.find_approval("")
    with pytest.raises(NotFound, match="no approval with id '%'"):
        await store.find_approval("%")


OPEN_AT_THE_SIGNAL = """
import asyncio, sys, time
from pathlib import Path
from engine.store import Store

db, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.002)

async def main():
    store = await Store.open(db)
    await store.close()

asyncio.run(main())
"""


def test_programs_opening_a_new_database_at_the_same_moment_all_open_it(tmp_path: Path) -> None:
    """Two CI jobs creating one database: the one that lost the race read
    version 0 before the winner's migration committed, ran it again, and
    said 'not a usable directive-tui database (table directives already
    exists)'."""
    root = Path(__file__).resolve().parents[1]
    db, go = tmp_path / "new.db", tmp_path / "go"
    readies = [tmp_path / f"ready{i}" for i in range(6)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AT_THE_SIGNAL, str(db), str(ready), str(go)],
            cwd=root,
            stderr=subprocess.PIPE,
            text=True,
        )
        for ready in readies
    ]
    deadline = time.monotonic() + 60
    while not all(r.exists() for r in readies) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()  # all at once
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
