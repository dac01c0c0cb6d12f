"""Event-to-screen latency: the app under a burst of 1,000 events/s.

The real app (`DirectiveApp`, headless through `run_test`) shows a 200-step
directive that is running (layers of 10 steps that each take 1 s), while
events are written the way the engine writes them (a transaction of 10
events every 10 ms, persisted, then published on the app's bus) for 10 s.
For every event: publication -> the first paint that draws the event log
after the log took it in. Dropped: events published but never given to the
log (or a lagged bus, which makes the screen reload instead). Keys: every
250 ms during the burst an arrow key (as from the terminal) moves the DAG's
focus; the time from the key to the paint that shows the move.

Side by side, in the same run: the floor, a bare Textual app with one
RichLog fed the same burst from the same store and bus by a loop like the
app's.

    python benchmarks/bench_screen.py [--reps N] [--rate 1000] [--seconds 10]
    python benchmarks/bench_screen.py --variant fix=/path/to/patched/copy
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))

from _common import (  # noqa: E402
    PaintProbe,
    SleepExecutor,
    Verdict,
    chain_shape,
    directive_spec,
    emit,
    layered_shape,
    median,
    noop_services,
    percentile,
    print_machine,
    print_verdicts,
    run_child,
    run_script,
    table,
)

SCRIPT = Path(__file__).resolve()
SIZE = (160, 50)
STEPS = 200
PER_TX = 10  # events per transaction
KEY_EVERY_S = 0.25
TARGET_P99_MS = 50.0
TARGET_KEY_MS = 100.0  # "responsive": every key handled within a tenth of a second
FULL_GC: list[float] = []  # this process's full collections during its burst (ms each)


class Timings:
    """Publication and paint times per (directive, seq)."""

    def __init__(self) -> None:
        self.published: dict[tuple[str, int], float] = {}
        self.shown: dict[tuple[str, int], float] = {}

    def watch_bus(self, bus: Any) -> None:
        publish = bus.publish

        def timed(event: Any) -> None:
            self.published[(event.directive_id, event.seq)] = time.perf_counter()
            publish(event)

        bus.publish = timed  # publish_many calls it per event

    def watch_log(self, screen: Any, log: Any, hidden: frozenset[str]) -> None:
        probe = PaintProbe(screen, log)
        add_events = log.add_events

        def taking(events: Any) -> None:
            events = list(events)
            add_events(events)
            keys = [(e.directive_id, e.seq) for e in events if e.type not in hidden]
            probe.arm().add_done_callback(
                lambda f: self.shown.update(dict.fromkeys(keys, f.result()))
            )

        log.add_events = taking

    def latencies_ms(self, directive_id: str, hidden: set[int]) -> list[float]:
        return [
            (self.shown[k] - t) * 1e3
            for k, t in self.published.items()
            if k[0] == directive_id and k[1] not in hidden and k in self.shown
        ]


class FullCollections:
    """The garbage collector's full (generation 2) passes during the burst:
    each stops the event loop, so they show in the latency tail."""

    def __init__(self) -> None:
        self.pauses_ms: list[float] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses_ms.append((time.perf_counter() - self._started) * 1e3)


async def burst(store: Any, bus: Any, directive_id: str, rate: int, seconds: float) -> int:
    """`rate` notices a second, PER_TX to a transaction, on a fixed schedule
    (a late tick catches up rather than lowering the rate)."""
    collections = FullCollections()
    gc.callbacks.append(collections)
    try:
        return await _burst(store, bus, directive_id, rate, seconds)
    finally:
        gc.callbacks.remove(collections)
        FULL_GC.extend(collections.pauses_ms)


async def _burst(store: Any, bus: Any, directive_id: str, rate: int, seconds: float) -> int:
    from engine.events import Notice

    ticks = int(rate * seconds / PER_TX)
    start = time.perf_counter()
    for tick in range(ticks):
        delay = start + tick * PER_TX / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)

        def write(tx: Any, tick: int = tick) -> None:
            for i in range(PER_TX):
                tx.emit(Notice(directive_id=directive_id, message=f"burst {tick}.{i}"))

        _, events = await store.write(write)
        bus.publish_many(events)
    return ticks * PER_TX


async def press_keys(app: Any, screen: Any, dag: Any, stop: asyncio.Event) -> list[float]:
    """Alternate right/left on the DAG, as keys from the terminal: each timed
    from the key to the paint that shows the focus moved."""
    probe = PaintProbe(screen, dag)
    announce = dag._announce  # called when the focus moves  # noqa: SLF001
    moved: list[Any] = []

    def announcing() -> None:
        announce()
        if moved and moved[-1] is None:
            moved[-1] = probe.arm()  # before any paint can show the move

    dag._announce = announcing  # noqa: SLF001
    times: list[float] = []
    while not stop.is_set():
        moved.append(None)
        t0 = time.perf_counter()
        app.simulate_key(("right", "left")[len(times) % 2])
        while moved[-1] is None:
            if time.perf_counter() - t0 > 10:
                raise RuntimeError("an arrow key did not move the focus within 10 s")
            await asyncio.sleep(0.001)
        times.append((await moved[-1] - t0) * 1e3)
        await asyncio.sleep(KEY_EVERY_S)
    return times


async def app_run(workdir: Path, rate: int, seconds: float) -> dict[str, Any]:
    from tui.app import DirectiveApp
    from tui.screens.directive import DirectiveScreen
    from tui.widgets.dag import DagView
    from tui.widgets.event_log import HIDDEN_TYPES, EventLog

    services = noop_services(executor=lambda kind, llm: SleepExecutor(1.0))
    app = DirectiveApp(workdir / "screen.db", services=services)
    timings = Timings()
    reloads = 0
    async with app.run_test(size=SIZE) as pilot:
        while not app.engine_ready:
            await asyncio.sleep(0.005)
        assert app.engine is not None and app.bus is not None and app.store is not None
        spec = directive_spec(workdir, layered_shape(STEPS), parallel=10, title="burst")
        d = await app.engine.create_directive(spec)
        screen = DirectiveScreen(d.id)
        app.push_screen(screen)
        while screen.directive is None:  # opened and loaded once
            await asyncio.sleep(0.01)
        load = screen.load

        async def counted_load() -> None:  # a reload: the bus lagged
            nonlocal reloads
            reloads += 1
            await load()

        screen.load = counted_load  # type: ignore[method-assign]
        dag = screen.query_one(DagView)
        await pilot.pause()
        timings.watch_bus(app.bus)
        timings.watch_log(screen, screen.query_one(EventLog), HIDDEN_TYPES)
        await app.engine.start_directive(d.id)
        while not dag.steps:
            await asyncio.sleep(0.01)
        await pilot.pause()

        stop = asyncio.Event()
        keys = asyncio.create_task(press_keys(app, screen, dag, stop))
        t0 = time.perf_counter()
        sent = await burst(app.store, app.bus, d.id, rate, seconds)
        elapsed = time.perf_counter() - t0
        stop.set()
        key_ms = await keys
        await asyncio.sleep(0.3)  # the last batch reaches the screen
        await pilot.pause()
        dropped_on_bus = sum(s.dropped for s in app.bus._subs)  # noqa: SLF001
        hidden = await app.store.read(
            lambda c: {
                r[0]
                for r in c.execute(
                    "SELECT seq FROM directive_events WHERE directive_id = ? AND type IN"
                    f" ({', '.join('?' * len(HIDDEN_TYPES))})",
                    (d.id, *HIDDEN_TYPES),
                )
            }
        )
        shown_events = [k for k in timings.published if k[0] == d.id and k[1] not in hidden]
        latencies = timings.latencies_ms(d.id, hidden)
        await app.engine.stop_directive(d.id)
    return {
        "sent": sent,
        "rate": sent / elapsed,
        "published": len(shown_events),
        "shown": len(latencies),
        "dropped": len(shown_events) - len(latencies) + dropped_on_bus,
        "reloads": reloads,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies, default=float("nan")),
        "key_p50": percentile(key_ms, 50),
        "key_max": max(key_ms, default=float("nan")),
        "keys": len(key_ms),
        **full_gc(),
    }


async def floor_run(workdir: Path, rate: int, seconds: float) -> dict[str, Any]:
    from textual.app import App, ComposeResult
    from textual.widgets import RichLog

    from engine.bus import EventBus
    from engine.models import Directive
    from engine.store import Store

    class Floor(App[None]):
        def compose(self) -> ComposeResult:
            yield RichLog(max_lines=2_000, wrap=False, markup=False)

    store = await Store.open(workdir / "floor.db")
    bus = EventBus()
    spec = directive_spec(workdir, chain_shape(1), parallel=1, title="floor")
    directive = Directive(spec=spec)
    await store.write(lambda tx: tx.add_directive(directive))
    timings = Timings()
    timings.watch_bus(bus)
    app = Floor()
    async with app.run_test(size=SIZE) as pilot:
        log = app.query_one(RichLog)
        log.add_events = lambda events: log.write("\n".join(e.describe() for e in events))  # type: ignore[attr-defined]
        timings.watch_log(app.screen, log, frozenset())
        subscription = bus.subscribe()

        async def follow() -> None:
            while True:
                first = await subscription.get()
                log.add_events([first, *subscription.drain()])  # type: ignore[attr-defined]

        follower = asyncio.create_task(follow())
        await pilot.pause()
        t0 = time.perf_counter()
        sent = await burst(store, bus, directive.id, rate, seconds)
        elapsed = time.perf_counter() - t0
        await asyncio.sleep(0.3)
        await pilot.pause()
        follower.cancel()
    await store.close()
    latencies = timings.latencies_ms(directive.id, set())
    return {
        "sent": sent,
        "rate": sent / elapsed,
        "published": len(timings.published),
        "shown": len(latencies),
        "dropped": len(timings.published) - len(latencies) + subscription.dropped,
        "reloads": 0,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies, default=float("nan")),
        "key_p50": float("nan"),
        "key_max": float("nan"),
        "keys": 0,
        **full_gc(),
    }


def full_gc() -> dict[str, float]:
    return {"gc_count": len(FULL_GC), "gc_max": max(FULL_GC, default=0.0)}


def child(job: dict[str, Any]) -> None:
    run = app_run if job["system"] == "app" else floor_run
    with tempfile.TemporaryDirectory(prefix="bench-screen-") as tmp:
        emit(asyncio.run(run(Path(tmp), job["rate"], job["seconds"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another copy of the code (with tui/ and engine/ in it) to run side by side",
    )
    args = parser.parse_args()

    print_machine()
    systems: dict[str, tuple[str, Path | None]] = {"directive-tui app": ("app", None)}
    for name, _, path in (v.partition("=") for v in args.variant):
        systems[f"app: {name}"] = ("app", Path(path).resolve())
    systems["floor (bare RichLog)"] = ("floor", None)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in systems}
    failures = []
    for rep in range(args.reps):
        for name, (system, root) in systems.items():
            job = {"system": system, "rate": args.rate, "seconds": args.seconds}
            try:
                results[name].append(run_child(SCRIPT, job, root=root, timeout=args.seconds + 120))
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                failures.append(f"{name} (repetition {rep + 1}): {exc}")
                print(f"  FAILED: {failures[-1]}")

    def med(name: str, key: str) -> float:
        return median([r[key] for r in results[name]])

    floor_p99 = med("floor (bare RichLog)", "p99")
    rows = [
        [name, med(name, "rate"), med(name, "p50"), med(name, "p99"), med(name, "p99") / floor_p99,
         med(name, "max"), sum(r["dropped"] for r in results[name]),
         sum(r["reloads"] for r in results[name]), med(name, "key_p50"), med(name, "key_max"),
         med(name, "gc_count"), med(name, "gc_max")]
        for name in systems
    ]  # fmt: skip
    print()
    print(
        f"publication -> painted, {args.rate} events/s for {args.seconds:.0f} s on a {STEPS}-step "
        f"running directive (median of {args.reps}; dropped and reloads summed over runs)"
    )
    print(
        table(
            [
                "system",
                "events/s",
                "p50 ms",
                "p99 ms",
                "p99 x floor",
                "max ms",
                "dropped",
                "reloads",
                "key p50 ms",
                "key max ms",
                "full GCs",
                "GC max ms",
            ],
            rows,
        )  # fmt: skip
    )
    app_runs = results["directive-tui app"]
    p99 = max((r["p99"] for r in app_runs), default=float("nan"))
    dropped = sum(r["dropped"] + r["reloads"] for r in app_runs)
    key_max = max((r["key_max"] for r in app_runs), default=float("nan"))
    verdicts = [
        Verdict(
            f"p99 under {TARGET_P99_MS:.0f} ms", f"worst run {p99:.1f} ms", p99 < TARGET_P99_MS
        ),
        Verdict(
            "no event dropped", f"{dropped} dropped or reloaded", dropped == 0 and app_runs != []
        ),
        Verdict(
            f"responsive: every key handled within {TARGET_KEY_MS:.0f} ms during the burst",
            f"slowest {key_max:.1f} ms of {sum(r['keys'] for r in app_runs)} keys",
            key_max < TARGET_KEY_MS,
        ),
    ]
    print_verdicts(verdicts, failures)


if __name__ == "__main__":
    run_script(child, main)
