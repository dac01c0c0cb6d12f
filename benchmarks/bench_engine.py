"""Engine overhead per step, side by side with its floor and LangGraph.

Chains and layered DAGs (width 10) of no-op steps (an executor and a verifier
that return at once, green) run through the full engine: SQLite store on
disk in WAL, every event persisted and published to a subscriber. In the
same run:

* floor: the same rows (status updates, runs, evaluations, events with the
  sequence counter) written with plain sqlite3 in one thread, one commit per
  state change (each change durable before it would be published);
* LangGraph: the same DAG as a StateGraph of no-op nodes with its async
  SQLite checkpointer, `durability="sync"` (persisted before the next step).

All three use WAL with `synchronous=NORMAL`. Each measurement is a fresh
process; systems and repetitions are interleaved and medians reported.

    python benchmarks/bench_engine.py [--quick] [--reps N] [--sizes 100,1000]
    python benchmarks/bench_engine.py --variant fix=/path/to/patched/copy
    python benchmarks/bench_engine.py --profile chain:1000
    python benchmarks/bench_engine.py --breakdown chain:1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import operator
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

sys.path.append(str(Path(__file__).resolve().parent.parent))

from _common import (  # noqa: E402
    PARALLEL,
    SHAPES,
    Shape,
    Verdict,
    db_bytes,
    directive_spec,
    emit,
    median,
    noop_services,
    print_machine,
    print_verdicts,
    run_child,
    run_script,
    table,
)

SCRIPT = Path(__file__).resolve()
TARGET_MS = 0.5
TARGET_VS_LANGGRAPH = 3.0
LINEAR_SLACK = 1.10  # bytes/step may not grow by more than this from the smallest size


# --------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------


async def engine_run(shape: Shape, parallel: int, workdir: Path) -> dict[str, Any]:
    from engine.bus import EventBus
    from engine.engine import DirectiveEngine
    from engine.store import Store

    store = await Store.open(workdir / "engine.db")
    bus = EventBus()
    sub = bus.subscribe()
    seen = 0
    completed_at = 0.0

    async def consume() -> None:
        nonlocal seen, completed_at
        while True:
            event = await sub.get()
            seen += 1
            if getattr(event, "new_status", None) == "completed" and event.type == (
                "directive_status_changed"
            ):
                completed_at = time.perf_counter()

    consumer = asyncio.create_task(consume())
    engine = DirectiveEngine(store, bus, noop_services())
    await engine.start()
    d = await engine.create_directive(directive_spec(workdir, shape, parallel=parallel))
    t0 = time.perf_counter()
    await engine.start_directive(d.id)
    outcome = await engine.wait_settled(d.id, timeout=600)
    settled = time.perf_counter() - t0
    await asyncio.sleep(0)
    persisted = await store.read(
        lambda c: c.execute(
            "SELECT COUNT(*) FROM directive_events WHERE directive_id = ?", (d.id,)
        ).fetchone()[0]
    )
    await engine.close()
    await store.close()
    consumer.cancel()
    if outcome.value != "completed":
        raise RuntimeError(f"directive ended {outcome.value}, not completed")
    n = len(shape)
    return {
        "ms_step": settled / n * 1e3,
        "ms_step_to_event": (completed_at - t0) / n * 1e3 if completed_at else math.nan,
        "bytes_step": db_bytes(workdir, "engine.db") / n,
        "events": persisted,
        "published": seen,
    }


# --------------------------------------------------------------------------
# The floor: the same rows with plain sqlite3, one thread
# --------------------------------------------------------------------------


def _event_json(directive_id: str, seq: int, kind: str, **fields: Any) -> str:
    return json.dumps(
        {
            "directive_id": directive_id,
            "seq": seq,
            "ts": time.time(),
            "severity": "info",
            "actor": "system",
            "type": kind,
            **fields,
        }
    )


def floor_run(shape: Shape, parallel: int, workdir: Path) -> dict[str, Any]:
    """Plan (directive, chain, steps, dependencies), then per step the state
    changes the engine makes, each in its own transaction with its event:
    ready (a whole layer at once), running (+ run row), evaluating (+ run
    finished), passed (+ evaluation row and its event); then completed."""
    from engine.schema import MIGRATIONS

    path = workdir / "floor.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    for sql in MIGRATIONS:
        for statement in filter(str.strip, sql.split(";")):
            conn.execute(statement)
    did, cid = "d" * 12, "c" * 12
    seq = 0

    def event(kind: str, **fields: Any) -> None:
        nonlocal seq
        seq += 1
        conn.execute(
            "INSERT INTO directive_events VALUES (?, ?, ?, 'info', 'system', ?, ?, ?)",
            (
                did,
                seq,
                kind,
                fields.get("step_id"),
                time.time(),
                _event_json(did, seq, kind, **fields),
            ),
        )

    def commit() -> None:
        conn.execute("UPDATE directives SET last_seq = ? WHERE id = ?", (seq, did))
        conn.execute("COMMIT")

    def status(step_id: str, name: str, old: str, new: str, reason: str | None) -> None:
        conn.execute(
            "UPDATE chain_steps SET status = ?, updated_at = ? WHERE id = ?",
            (new, time.time(), step_id),
        )
        event(
            "step_status_changed",
            step_id=step_id,
            step_name=name,
            old_status=old,
            new_status=new,
            rework_count=0,
            reason=reason,
        )

    ids = {name: f"{i:012d}" for i, (name, _) in enumerate(shape)}
    t0 = time.perf_counter()
    now = time.time()
    spec = json.dumps({"title": "floor", "steps": [{"name": n, "depends_on": d} for n, d in shape]})
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT INTO directives (id, title, status, spec, created_at, updated_at)"
        " VALUES (?, 'floor', 'active', ?, ?, ?)",
        (did, spec, now, now),
    )
    conn.execute(
        "INSERT INTO directive_chains (id, directive_id, generation, planner, created_at)"
        " VALUES (?, ?, 0, 'explicit', ?)",
        (cid, did, now),
    )
    for i, (name, deps) in enumerate(shape):
        step_spec = json.dumps({"name": name, "type": "implement", "depends_on": deps})
        conn.execute(
            "INSERT INTO chain_steps (id, chain_id, directive_id, name, spec, status, layer, row,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
            (ids[name], cid, did, name, step_spec, i // parallel, i % parallel, now, now),
        )
        conn.executemany("INSERT INTO step_deps VALUES (?, ?)", [(ids[name], ids[d]) for d in deps])
    event("chain_created", chain_id=cid, generation=0, steps=[n for n, _ in shape])
    commit()
    for start in range(0, len(shape), parallel):
        layer = shape[start : start + parallel]
        conn.execute("BEGIN IMMEDIATE")
        for name, _ in layer:
            status(ids[name], name, "pending", "ready", "dependencies met")
        commit()
        for name, _ in layer:
            sid, rid, eid = ids[name], "r" + ids[name][1:], "e" + ids[name][1:]
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO step_runs (id, step_id, directive_id, attempt, executor, status,"
                " started_at) VALUES (?, ?, ?, 1, 'noop', 'running', ?)",
                (rid, sid, did, time.time()),
            )
            status(sid, name, "ready", "running", "attempt 1")
            conn.execute("UPDATE chain_steps SET attempts = 1 WHERE id = ?", (sid,))
            commit()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "UPDATE step_runs SET status = 'succeeded', summary = ?, finished_at = ?"
                " WHERE id = ?",
                (f"noop: {name} (attempt 1)", time.time(), rid),
            )
            status(sid, name, "running", "evaluating", None)
            commit()
            conn.execute("BEGIN IMMEDIATE")
            results = json.dumps([{"name": "instant", "passed": True, "score": 1.0}])
            conn.execute(
                "INSERT INTO directive_evaluations (id, directive_id, step_id, run_id, score,"
                " level, passed, results, summary, created_at)"
                " VALUES (?, ?, ?, ?, 1.0, 'green', 1, ?, 'green 1.00', ?)",
                (eid, did, sid, rid, results, time.time()),
            )
            event(
                "evaluation_completed",
                step_id=sid,
                step_name=name,
                evaluation_id=eid,
                score=1.0,
                level="green",
                passed=True,
                verifiers={"instant": 1.0},
            )
            status(sid, name, "evaluating", "passed", "green 1.00")
            conn.execute(
                "UPDATE chain_steps SET confidence = 1.0, level = 'green' WHERE id = ?", (sid,)
            )
            commit()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE directives SET status = 'completed' WHERE id = ?", (did,))
    event("directive_status_changed", old_status="active", new_status="completed")
    commit()
    elapsed = time.perf_counter() - t0
    events = seq
    conn.close()
    n = len(shape)
    return {
        "ms_step": elapsed / n * 1e3,
        "bytes_step": db_bytes(workdir, "floor.db") / n,
        "events": events,
    }


# --------------------------------------------------------------------------
# LangGraph with its async SQLite checkpointer
# --------------------------------------------------------------------------


class GraphState(TypedDict):
    done: Annotated[int, operator.add]  # each node adds 1: a count of steps run


async def langgraph_run(shape: Shape, parallel: int, workdir: Path, form: str) -> dict[str, Any]:
    """`form`: "edges" adds one edge per dependency; "join" adds one edge
    from the list of a step's dependencies (LangGraph waits for all of them).
    The two are equivalent for these shapes; the faster one is reported."""
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    from langgraph.graph import END, START, StateGraph

    async def noop(state: GraphState) -> dict[str, int]:
        return {"done": 1}

    graph = StateGraph(GraphState)
    dependents: set[str] = set()
    for name, deps in shape:
        graph.add_node(name, noop)
        if not deps:
            graph.add_edge(START, name)
        elif form == "join" and len(deps) > 1:
            graph.add_edge(deps, name)
        else:
            for dep in deps:
                graph.add_edge(dep, name)
        dependents.update(deps)
    for name, _ in shape:
        if name not in dependents:
            graph.add_edge(name, END)

    conn = await aiosqlite.connect(workdir / "langgraph.db")
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute("PRAGMA synchronous = NORMAL")
    saver = AsyncSqliteSaver(conn)
    await saver.setup()
    t0 = time.perf_counter()
    app = graph.compile(checkpointer=saver)
    compiled = time.perf_counter() - t0
    n = len(shape)
    config = {"configurable": {"thread_id": "bench"}, "recursion_limit": n + 10}
    t0 = time.perf_counter()
    out = await app.ainvoke({"done": 0}, config, durability="sync")
    elapsed = time.perf_counter() - t0
    await conn.close()
    if out["done"] != n:
        raise RuntimeError(f"LangGraph ran {out['done']} of {n} nodes")
    return {
        "ms_step": elapsed / n * 1e3,
        "bytes_step": db_bytes(workdir, "langgraph.db") / n,
        "compile_ms": compiled * 1e3,
    }


def child(job: dict[str, Any]) -> None:
    shape = SHAPES[job["shape"]](job["n"])
    parallel = PARALLEL[job["shape"]]
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        workdir = Path(tmp)
        if job["system"] == "floor":
            result = floor_run(shape, parallel, workdir)
        elif job["system"] == "langgraph":
            result = asyncio.run(langgraph_run(shape, parallel, workdir, job["form"]))
        else:
            result = asyncio.run(engine_run(shape, parallel, workdir))
    emit(result)


# --------------------------------------------------------------------------
# Profile one engine case: the event loop (pyinstrument) and the database
# thread (time per transaction function)
# --------------------------------------------------------------------------


def _name_of(fn: Any) -> str:
    """A transaction's own function, looking through the engine's wrapper
    (a closure over `fn`) so the table names what each write does."""
    code = getattr(fn, "__code__", None)
    if code is not None and "fn" in code.co_freevars and fn.__closure__:
        inner = fn.__closure__[code.co_freevars.index("fn")].cell_contents
        return _name_of(inner)
    return getattr(fn, "__qualname__", repr(fn))


def profile(spec: str) -> None:
    import collections

    from pyinstrument import Profiler

    import engine.store as store_module
    from engine.store import Store

    shape_name, _, size = spec.partition(":")
    shape = SHAPES[shape_name](int(size or 1000))
    spent: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    original = Store._call
    original_transactions = store_module._transactions

    def timed(key: str, fn: Any) -> Any:
        def run(*a: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a)
            finally:
                spent[key][0] += 1
                spent[key][1] += time.perf_counter() - t

        return run

    def timed_transactions(conn: Any, fns: list[Any]) -> Any:
        """Each write by its own name; what the transaction adds around them
        (BEGIN, savepoints, numbering and inserting events, COMMIT) apart."""
        t = time.perf_counter()
        before = sum(v[1] for v in spent.values())
        try:
            return original_transactions(conn, [timed(_name_of(fn), fn) for fn in fns])
        finally:
            inside = sum(v[1] for v in spent.values()) - before
            key = "(transaction: BEGIN, savepoints, events, COMMIT)"
            spent[key][0] += 1
            spent[key][1] += time.perf_counter() - t - inside

    async def timed_call(self: Store, fn: Any, *args: Any) -> Any:
        if fn is timed_transactions:  # timed write by write inside
            return await original(self, fn, *args)
        target = args[0] if args and callable(args[0]) else fn
        return await original(self, timed(_name_of(target), fn), *args)

    store_module._transactions = timed_transactions  # type: ignore[assignment]
    Store._call = timed_call  # type: ignore[method-assign]
    os.environ.setdefault("PYINSTRUMENT_IGNORE_OVERHEAD_WARNING", "1")
    profiler = Profiler(async_mode="enabled")
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        profiler.start()
        result = asyncio.run(engine_run(shape, PARALLEL[shape_name], Path(tmp)))
        profiler.stop()
    print(f"{spec}: {result['ms_step']:.3f} ms/step\n")
    print("database thread, by function (a read is one hop; writes share a transaction's hop):")
    rows = sorted(spent.items(), key=lambda kv: -kv[1][1])
    print(
        table(
            ["function", "calls", "total ms", "us/call", "ms/step"],
            [[k, n, t * 1e3, t / n * 1e6, t / len(shape) * 1e3] for k, (n, t) in rows[:12]],
        )
    )
    print("\nevent loop thread (pyinstrument):")
    print(profiler.output_text(unicode=False, color=False))


# --------------------------------------------------------------------------
# Where a step's wall time goes, without a profiler's overhead: the database
# thread, the two hand-offs between threads, and the event loop (the rest)
# --------------------------------------------------------------------------


def breakdown(spec: str) -> None:
    """Time stamps around each transaction on the database thread and each
    write from queued to committed; COMMIT timed alone, since its mean hides
    the WAL checkpoints (an fsync every ~1,000 pages) behind a short median."""
    import bisect

    import engine.store as store_module
    from engine.store import Store

    shape_name, _, size = spec.partition(":")
    shape = SHAPES[shape_name](int(size or 1000))
    busy: list[tuple[float, float]] = []  # a transaction on the database thread
    writes: list[tuple[float, float]] = []  # queued, committed (callback ran)
    commits: list[float] = []
    statements = [0]
    original_transactions = store_module._transactions
    original_submit = Store.submit

    class Counted(store_module.Connection):
        def execute(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
            statements[0] += 1
            if sql != "COMMIT":
                return super().execute(sql, *args)
            t = time.perf_counter()
            try:
                return super().execute(sql, *args)
            finally:
                commits.append(time.perf_counter() - t)

        def executemany(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
            statements[0] += 1
            return super().executemany(sql, *args)

    def timed_transactions(conn: Any, fns: list[Any]) -> Any:
        t = time.perf_counter()
        try:
            return original_transactions(conn, fns)
        finally:
            busy.append((t, time.perf_counter()))

    def timed_submit(self: Store, fn: Any) -> Any:
        future = original_submit(self, fn)
        queued = time.perf_counter()
        future.add_done_callback(lambda _: writes.append((queued, time.perf_counter())))
        return future

    store_module.Connection = Counted  # type: ignore[misc]
    store_module._transactions = timed_transactions  # type: ignore[assignment]
    Store.submit = timed_submit  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        result = asyncio.run(engine_run(shape, PARALLEL[shape_name], Path(tmp)))
    n = len(shape)
    queued = sorted(q for q, _ in writes)
    landed = sorted(c for _, c in writes)
    hand_in, hand_out = [], []
    for start, end in busy:  # from the last write queued before it, to the first callback after
        i = bisect.bisect_left(queued, start) - 1
        if i >= 0:
            hand_in.append(start - queued[i])
        j = bisect.bisect_left(landed, end)
        if j < len(landed):
            hand_out.append(landed[j] - end)
    on_db = sum(end - start for start, end in busy)
    total = result["ms_step"] / 1e3 * n
    commits.sort()
    slowest = commits[int(len(commits) * 0.98) :]
    print(f"{spec}: {result['ms_step']:.3f} ms/step, {len(busy)} transactions\n")
    rows = [
        ["database thread (transactions)", on_db],
        ["  of which COMMIT", sum(commits)],
        ["  of which the slowest 2% of COMMITs (checkpoints)", sum(slowest)],
        ["hand-off in (queued -> thread starts)", sum(hand_in)],
        ["hand-off out (thread ends -> callback)", sum(hand_out)],
        ["event loop and the rest", total - on_db - sum(hand_in) - sum(hand_out)],
    ]
    print(table(["where", "ms/step", "share"], [[k, v / n * 1e3, v / total] for k, v in rows]))
    print(
        f"\n{statements[0] / n:.1f} statements a step; COMMIT median"
        f" {median(commits) * 1e6:.0f} us, mean {sum(commits) / len(commits) * 1e6:.0f} us;"
        f" hand-offs median {median(hand_in) * 1e6:.0f} us in, {median(hand_out) * 1e6:.0f} us out"
    )


# --------------------------------------------------------------------------
# The parent: interleave, take medians, print the table and the verdicts
# --------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 steps only, 2 repetitions")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3, quick 2)")
    parser.add_argument("--sizes", default=None, help="comma-separated step counts")
    parser.add_argument("--shapes", default="chain,dag10")
    parser.add_argument("--no-langgraph", action="store_true")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another copy of the code (with engine/ in it) to run side by side",
    )
    parser.add_argument("--profile", metavar="SHAPE:N", help="profile one engine case instead")
    parser.add_argument(
        "--breakdown", metavar="SHAPE:N", help="where one engine case's wall time goes, by thread"
    )
    args = parser.parse_args()
    if args.profile:
        return profile(args.profile)
    if args.breakdown:
        return breakdown(args.breakdown)

    sizes = [int(s) for s in (args.sizes or ("100" if args.quick else "100,1000")).split(",")]
    reps = args.reps or (2 if args.quick else 3)
    shapes = args.shapes.split(",")
    variants = [("engine", None)] + [
        (name, Path(path).resolve()) for name, _, path in (v.partition("=") for v in args.variant)
    ]
    try:
        import langgraph  # noqa: F401

        with_langgraph = not args.no_langgraph
    except ImportError:
        print("LangGraph is not installed (pip install -e '.[bench]'): its column is left out")
        with_langgraph = False

    systems: list[tuple[str, dict[str, Any], Path | None]] = [
        (name, {"system": "engine"}, root) for name, root in variants
    ]
    systems.append(("floor", {"system": "floor"}, None))
    if with_langgraph:
        systems += [
            ("langgraph:edges", {"system": "langgraph", "form": "edges"}, None),
            ("langgraph:join", {"system": "langgraph", "form": "join"}, None),
        ]

    print_machine()
    results: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    failures: list[str] = []
    started = time.perf_counter()
    for rep in range(reps):
        for shape in shapes:
            for n in sizes:
                for name, job, root in systems:
                    if name == "langgraph:join" and shape == "chain":
                        continue  # a chain has one dependency per step: same graph
                    try:
                        out = run_child(SCRIPT, {**job, "shape": shape, "n": n}, root=root)
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        failures.append(f"{name} {shape} {n} (repetition {rep + 1}): {exc}")
                        print(f"  FAILED: {failures[-1]}")
                        continue
                    results.setdefault((name, shape, n), []).append(out)
        print(f"  repetition {rep + 1}/{reps} done ({time.perf_counter() - started:.0f} s)")

    def med(name: str, shape: str, n: int, key: str) -> float:
        runs = results.get((name, shape, n), [])
        return median([r[key] for r in runs if key in r])

    def langgraph_best(shape: str, n: int) -> tuple[float, float, str]:
        options = [
            (med(name, shape, n, "ms_step"), med(name, shape, n, "bytes_step"), name.split(":")[1])
            for name in ("langgraph:edges", "langgraph:join")
            if (name, shape, n) in results
        ]
        return min(options) if options else (math.nan, math.nan, "-")

    headers = ["shape", "steps", "system", "ms/step", "x floor", "LangGraph / it", "DB bytes/step"]
    rows = []
    for shape in shapes:
        for n in sizes:
            floor_ms = med("floor", shape, n, "ms_step")
            lg_ms, lg_bytes, lg_form = langgraph_best(shape, n)
            for name, _ in variants:
                ms = med(name, shape, n, "ms_step")
                rows.append(
                    [
                        shape,
                        n,
                        name,
                        ms,
                        ms / floor_ms,
                        lg_ms / ms,
                        med(name, shape, n, "bytes_step"),
                    ]
                )
            rows.append([shape, n, "floor (sqlite3)", floor_ms, 1.0, lg_ms / floor_ms,
                         med("floor", shape, n, "bytes_step")])  # fmt: skip
            if with_langgraph:
                rows.append([shape, n, f"LangGraph ({lg_form})", lg_ms, lg_ms / floor_ms, 1.0,
                             lg_bytes])  # fmt: skip
    print()
    print(f"engine overhead per step (median of {reps}; lower is better)")
    print(table(headers, rows))
    for shape in shapes:
        for n in sizes:
            runs = results.get(("engine", shape, n), [])
            if any(r["published"] != r["events"] for r in runs):
                print(f"WARNING: {shape} {n}: events published != events persisted: {runs}")

    verdicts = []
    worst = max(med("engine", s, n, "ms_step") for s in shapes for n in sizes)
    verdicts.append(Verdict(f"engine <= {TARGET_MS} ms/step", f"worst {worst:.3f} ms/step",
                            worst <= TARGET_MS))  # fmt: skip
    if with_langgraph:
        ratio = min(langgraph_best(s, n)[0] / med("engine", s, n, "ms_step")
                    for s in shapes for n in sizes)  # fmt: skip
        verdicts.append(Verdict(f"LangGraph (durable) / engine >= {TARGET_VS_LANGGRAPH}x",
                                f"lowest {ratio:.2f}x", ratio >= TARGET_VS_LANGGRAPH))  # fmt: skip
    if len(sizes) > 1:
        growth = max(med("engine", s, max(sizes), "bytes_step") / med("engine", s, min(sizes), "bytes_step")
                     for s in shapes)  # fmt: skip
        verdicts.append(Verdict(
            f"database growth linear (bytes/step at {max(sizes)} <= {LINEAR_SLACK}x at {min(sizes)})",
            f"{growth:.2f}x", growth <= LINEAR_SLACK))  # fmt: skip
    print_verdicts(verdicts, failures)


if __name__ == "__main__":
    run_script(child, main)
