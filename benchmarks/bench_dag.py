"""DAG scale: the directive screen with chains of 100, 500 and 2,000 steps.

The real app (`DirectiveApp`, headless through `run_test`, 200x60) opens a
directive whose chain is stored and waiting for plan approval (so nothing
runs and every figure is the screen's own). For each size, in a fresh
process:

* open: the screen pushed -> the first paint that draws the DAG's steps
  (database reads included);
* DAG alone: `set_steps` (geometry and every tile anew) -> painted;
* repaint: one step's status changed -> painted, 20 times (wall time, which
  waits for Textual's 60 fps frame, and the event loop's CPU time for it);
* End key: focus and scroll to the last step -> painted;
* memory: resident set after all of it.

A 10-step chain is the floor each figure is compared with, in the same run.

    python benchmarks/bench_dag.py [--reps N] [--sizes 10,100,500,2000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))

from _common import (  # noqa: E402
    PaintProbe,
    Verdict,
    chain_shape,
    directive_spec,
    emit,
    median,
    noop_services,
    print_machine,
    print_verdicts,
    rss_mb,
    run_child,
    run_script,
    table,
)

SCRIPT = Path(__file__).resolve()
SIZE = (200, 60)
REPAINTS = 20
TARGET_FIRST_MS = 200.0  # first render of 500 steps
TARGET_REPAINT_MS = 5.0
TARGET_RSS_MB = 200.0  # with 2,000 steps


async def seed(db: Path, n: int) -> str:
    """A directive with an n-step chain, planned and waiting for approval."""
    from engine.bus import EventBus
    from engine.engine import DirectiveEngine
    from engine.store import Store

    store = await Store.open(db)
    engine = DirectiveEngine(store, EventBus(), noop_services())
    await engine.start()
    spec = directive_spec(db.parent, chain_shape(n), parallel=1, manual=True, title=f"{n} steps")
    d = await engine.create_directive(spec)
    await engine.start_directive(d.id)
    outcome = await engine.wait_settled(d.id, timeout=120)
    await engine.close()
    await store.close()
    if outcome.value != "awaiting_approval":
        raise RuntimeError(f"seeded directive ended {outcome.value}, not awaiting_approval")
    return d.id


async def measure(db: Path, directive_id: str, n: int) -> dict[str, Any]:
    from textual.geometry import Region

    from engine.models import StepStatus
    from tui.app import DirectiveApp
    from tui.screens.directive import DirectiveScreen
    from tui.widgets.dag import DagView

    app = DirectiveApp(db, services=noop_services())
    out: dict[str, Any] = {}
    async with app.run_test(size=SIZE) as pilot:
        while not app.engine_ready:
            await asyncio.sleep(0.005)
        await pilot.pause()

        screen = DirectiveScreen(directive_id)
        t0 = time.perf_counter()
        app.push_screen(screen)  # what `open_directive_screen` does
        while not screen.is_mounted:
            await asyncio.sleep(0)
        dag = screen.query_one(DagView)
        if dag.steps:
            raise RuntimeError("the chain was drawn before the probe was in place")
        probe = PaintProbe(screen, dag)
        while True:
            painted = await probe.arm()
            if len(dag.steps) == n:
                break
        out["open_ms"] = (painted - t0) * 1e3

        await pilot.pause()
        t0, c0 = time.perf_counter(), time.thread_time()
        dag.set_steps(list(dag.steps))
        painted = await probe.arm()
        out["set_ms"] = (painted - t0) * 1e3
        out["set_cpu_ms"] = (time.thread_time() - c0) * 1e3

        # Steps whose box is on screen (a change to any other draws nothing),
        # but not the focused one (its change also reloads the step panel).
        view = Region(*dag.scroll_offset, *dag.size)
        focused = dag.focused_step.id if dag.focused_step else None
        shown = [
            b.index
            for b in dag.geometry.boxes
            if b.region.overlaps(view) and dag.steps[b.index].id != focused
        ]
        walls, cpus = [], []
        for i in range(REPAINTS):
            await pilot.pause()
            step = dag.steps[shown[i % len(shown)]]
            status = StepStatus.RUNNING if step.status is StepStatus.PENDING else StepStatus.PENDING
            t0, c0 = time.perf_counter(), time.thread_time()
            dag.update_step(step.model_copy(update={"status": status}))
            painted = await probe.arm()
            walls.append((painted - t0) * 1e3)
            cpus.append((time.thread_time() - c0) * 1e3)
        out["repaint_ms"] = median(walls)
        out["repaint_cpu_ms"] = median(cpus)
        out["repaint_cpu_worst_ms"] = max(cpus)

        await pilot.pause()
        t0 = time.perf_counter()
        waiter = probe.arm()
        await pilot.press("end")
        out["end_ms"] = (await waiter - t0) * 1e3
        if dag.focused_step is None or dag.focused_step.id != dag.steps[-1].id:
            raise RuntimeError("End did not focus the last step")
        out["rss_mb"], out["peak_mb"] = rss_mb()
    return out


def child(job: dict[str, Any]) -> None:
    if "seed" in job:
        emit({"directive_id": asyncio.run(seed(Path(job["db"]), job["seed"]))})
        return
    with tempfile.TemporaryDirectory(prefix="bench-dag-") as tmp:
        db = Path(tmp) / "dag.db"
        shutil.copy(job["db"], db)  # the app's engine writes (recovery, lease): a copy per run
        emit(asyncio.run(measure(db, job["directive_id"], job["n"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sizes", default="10,100,500,2000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    print_machine()
    results: dict[int, list[dict[str, Any]]] = {n: [] for n in sizes}
    failures = []
    with tempfile.TemporaryDirectory(prefix="bench-dag-seed-") as tmp:
        seeded = {}
        for n in sizes:
            db = Path(tmp) / f"chain-{n}" / "dag.db"
            db.parent.mkdir()
            seeded[n] = (db, run_child(SCRIPT, {"seed": n, "db": str(db)})["directive_id"])
        for rep in range(args.reps):
            for n in sizes:
                db, did = seeded[n]
                try:
                    results[n].append(
                        run_child(SCRIPT, {"db": str(db), "directive_id": did, "n": n})
                    )
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    failures.append(f"{n} steps (repetition {rep + 1}): {exc}")
                    print(f"  FAILED: {failures[-1]}")

    def med(n: int, key: str) -> float:
        return median([r[key] for r in results[n]])

    floor = min(sizes)
    keys = [
        ("open_ms", "open ms"),
        ("set_ms", "DAG alone ms"),
        ("set_cpu_ms", "DAG alone CPU ms"),
        ("repaint_ms", "repaint ms"),
        ("repaint_cpu_ms", "repaint CPU ms"),
        ("end_ms", "End key ms"),
        ("rss_mb", "RSS MB"),
    ]
    rows = [[n] + [med(n, k) for k, _ in keys] for n in sizes]
    ratios = [[n] + [med(n, k) / med(floor, k) for k, _ in keys] for n in sizes]
    print()
    print(f"directive screen, {SIZE[0]}x{SIZE[1]}, chains of n steps (median of {args.reps})")
    print(table(["steps"] + [h for _, h in keys], rows))
    print()
    print(f"the same as ratios to the {floor}-step floor")
    print(table(["steps"] + [f"{h.rsplit(' ', 1)[0]} x" for _, h in keys], ratios))

    verdicts = []
    if 500 in sizes:
        first = med(500, "open_ms")
        verdicts.append(
            Verdict(
                f"first render of 500 steps under {TARGET_FIRST_MS:.0f} ms",
                f"{first:.1f} ms (screen pushed -> DAG painted)",
                first < TARGET_FIRST_MS,
            )
        )
    worst = max(med(n, "repaint_cpu_ms") for n in sizes)
    verdicts.append(
        Verdict(
            f"one repaint under {TARGET_REPAINT_MS:.0f} ms",
            f"worst median {worst:.2f} ms of work (wall, with the 60 fps frame wait: "
            f"{max(med(n, 'repaint_ms') for n in sizes):.1f} ms)",
            worst < TARGET_REPAINT_MS,
        )
    )
    if 2000 in sizes:
        rss = max(r["rss_mb"] for r in results[2000])
        verdicts.append(
            Verdict(
                f"app with 2,000 steps under {TARGET_RSS_MB:.0f} MB RSS",
                f"{rss:.0f} MB (worst run)",
                rss < TARGET_RSS_MB,
            )
        )
    print_verdicts(verdicts, failures)


if __name__ == "__main__":
    run_script(child, main)
