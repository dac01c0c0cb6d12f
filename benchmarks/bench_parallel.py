"""Parallelism: one layer of 10 steps that each sleep 1 s, max_parallel_steps = 10.

The full engine (SQLite store in WAL, events persisted and published) runs
the layer; beside it, the floor is `asyncio.gather` of the same ten sleeps in
a bare event loop. Each measurement is a fresh process; the two systems are
interleaved and medians reported.

    python benchmarks/bench_parallel.py [--reps N] [--width 10] [--sleep 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))

from _common import (  # noqa: E402
    SleepExecutor,
    Verdict,
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
TARGET_S = 1.2


async def engine_run(width: int, seconds: float, workdir: Path) -> dict[str, Any]:
    from engine.bus import EventBus
    from engine.engine import DirectiveEngine
    from engine.store import Store

    store = await Store.open(workdir / "engine.db")
    bus = EventBus()
    services = noop_services(executor=lambda kind, llm: SleepExecutor(seconds))
    engine = DirectiveEngine(store, bus, services)
    await engine.start()
    shape = [(f"s{i}", []) for i in range(width)]  # one layer: no dependencies
    d = await engine.create_directive(directive_spec(workdir, shape, parallel=width))
    t0 = time.perf_counter()
    await engine.start_directive(d.id)
    outcome = await engine.wait_settled(d.id, timeout=60)
    elapsed = time.perf_counter() - t0
    await engine.close()
    await store.close()
    if outcome.value != "completed":
        raise RuntimeError(f"directive ended {outcome.value}, not completed")
    return {"wall_s": elapsed}


async def floor_run(width: int, seconds: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    await asyncio.gather(*(asyncio.sleep(seconds) for _ in range(width)))
    return {"wall_s": time.perf_counter() - t0}


def child(job: dict[str, Any]) -> None:
    if job["system"] == "floor":
        emit(asyncio.run(floor_run(job["width"], job["sleep"])))
        return
    with tempfile.TemporaryDirectory(prefix="bench-parallel-") as tmp:
        emit(asyncio.run(engine_run(job["width"], job["sleep"], Path(tmp))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--width", type=int, default=10)
    parser.add_argument("--sleep", type=float, default=1.0)
    args = parser.parse_args()

    print_machine()
    runs: dict[str, list[float]] = {"engine": [], "floor": []}
    failures = []
    for rep in range(args.reps):
        for system in runs:
            job = {"system": system, "width": args.width, "sleep": args.sleep}
            try:
                runs[system].append(run_child(SCRIPT, job)["wall_s"])
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                failures.append(f"{system} (repetition {rep + 1}): {exc}")
                print(f"  FAILED: {failures[-1]}")

    engine_s, floor_s = median(runs["engine"]), median(runs["floor"])
    serial_s = args.width * args.sleep
    print()
    print(
        f"{args.width} steps of {args.sleep} s in one layer, max_parallel_steps = {args.width} "
        f"(median of {args.reps}; serial would take {serial_s:.1f} s)"
    )
    print(
        table(
            ["system", "wall s", "x floor", "worst s", "speed-up vs serial"],
            [
                [
                    "engine",
                    engine_s,
                    engine_s / floor_s,
                    max(runs["engine"], default=0.0),
                    serial_s / engine_s,
                ],
                [
                    "floor (asyncio.gather)",
                    floor_s,
                    1.0,
                    max(runs["floor"], default=0.0),
                    serial_s / floor_s,
                ],
            ],  # fmt: skip
        )
    )
    target = TARGET_S * args.sleep
    verdicts = [
        Verdict(
            f"layer of {args.width} under {target:.1f} s", f"{engine_s:.3f} s", engine_s < target
        )
    ]
    print_verdicts(verdicts, failures)


if __name__ == "__main__":
    run_script(child, main)
