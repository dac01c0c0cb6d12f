"""What every benchmark script shares: the machine record, the no-op engine
parts, chain shapes, child processes, medians and the printed tables.

Each measurement runs in a fresh child process (its own imports, heap and
event loop) and prints one JSON line; the parent interleaves systems and
repetitions so that a noisy neighbour hits every column alike, and reports
medians and ratios from the same run.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


# --------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    """Where the figures come from: they mean nothing without it."""
    return {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "sqlite": sqlite3.sqlite_version,
        "textual": _version("textual"),
        "aiosqlite": _version("aiosqlite"),
        "langgraph": _version("langgraph"),
    }


def print_machine() -> None:
    m = machine()
    print(
        f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['os']}, "
        f"SQLite {m['sqlite']}, textual {m['textual']}, aiosqlite {m['aiosqlite']}, "
        f"langgraph {m['langgraph']}"
    )


# --------------------------------------------------------------------------
# Chain shapes: (name, depends_on) per step
# --------------------------------------------------------------------------

Shape = list[tuple[str, list[str]]]


def chain_shape(n: int) -> Shape:
    """s0 -> s1 -> ... -> s{n-1}."""
    return [(f"s{i}", [f"s{i - 1}"] if i else []) for i in range(n)]


def layered_shape(n: int, width: int = 10) -> Shape:
    """Layers of `width` steps; every step depends on every step of the
    layer before (a barrier between layers, as a fan-out/fan-in pipeline)."""
    steps: Shape = []
    for i in range(n):
        layer = i // width
        prev = range((layer - 1) * width, min(layer * width, n)) if layer else range(0)
        steps.append((f"s{i}", [f"s{j}" for j in prev]))
    return steps


SHAPES: dict[str, Callable[[int], Shape]] = {"chain": chain_shape, "dag10": layered_shape}
PARALLEL = {"chain": 1, "dag10": 10}


# --------------------------------------------------------------------------
# The engine with instant parts
# --------------------------------------------------------------------------


class InstantGreen:
    """A verifier that passes at once: the engine's own overhead is all that
    is left to measure."""

    name = "instant"
    kind = "command"
    weight = 1.0
    gating = False

    async def verify(self, ctx: Any) -> Any:
        from engine.models import VerifierResult

        return VerifierResult(name=self.name, passed=True, score=1.0, summary="instant green")


class SleepExecutor:
    """Work that takes wall time but no CPU (as an agent waiting on a model):
    what parallel steps overlap."""

    kind = "sleep"
    modifies_files = False

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def run(self, ctx: Any) -> Any:
        import asyncio

        from engine.executors.base import ExecutionResult

        await asyncio.sleep(self.seconds)
        return ExecutionResult(success=True, summary=f"slept {self.seconds} s")


def noop_services(**overrides: Any) -> Any:
    from engine.engine import EngineServices
    from engine.executors.noop import NoopExecutor

    values: dict[str, Any] = dict(
        llm_provider=lambda spec: None,
        executor=lambda kind, llm: NoopExecutor(),
        verifiers=lambda d, step, llm: [InstantGreen()],
        track_changes=False,
    )
    if "isolate_steps" in EngineServices.__dataclass_fields__:
        values["isolate_steps"] = False  # no-op steps change no files: no worktrees
    values.update(overrides)
    return EngineServices(**values)


def directive_spec(
    repo: Path, shape: Shape, *, parallel: int, title: str = "benchmark", manual: bool = False
) -> Any:
    """`manual`: the plan waits for approval, so the chain is stored and
    shown but no step runs (what the screen benchmarks need)."""
    from engine.models import (
        Autonomy,
        DirectiveSpec,
        ExecutorKind,
        Limits,
        PlannerKind,
        StepSpec,
        VerifierConfig,
    )

    return DirectiveSpec(
        title=title,
        goal="measure the engine",
        repo=repo,
        autonomy=Autonomy.MANUAL if manual else Autonomy.FULL_AUTO,
        planner=PlannerKind.EXPLICIT,
        executor=ExecutorKind.NOOP,
        verifiers=VerifierConfig(auto_detect=False, llm_judge=False),
        limits=Limits(max_parallel_steps=parallel, max_cost_usd=None, max_wall_time_minutes=None),
        steps=[StepSpec(name=n, type="implement", depends_on=deps) for n, deps in shape],
    )


def rss_mb() -> tuple[float, float]:
    """This process's resident memory now and at its peak, in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return tuple(int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))  # type: ignore[return-value]


class PaintProbe:
    """When a widget's change reached the screen: the end of the first
    compositor refresh that drew lines of `widget` after `arm()`.

    Textual paints at most 60 times a second, from a timer; the probe wraps
    the screen's compositor refresh and the widget's `render_line` on these
    two instances only, so the app's code is untouched."""

    def __init__(self, screen: Any, widget: Any) -> None:
        import asyncio

        self._drawn = False
        self._waiters: list[asyncio.Future[float]] = []
        self.paints = 0
        render_line, refresh = widget.render_line, screen._compositor_refresh

        def drawing(y: int) -> Any:
            self._drawn = True
            return render_line(y)

        def refreshing() -> None:
            refresh()
            if self._drawn:
                self._drawn = False
                self.paints += 1
                now = time.perf_counter()
                for waiter in self._waiters:
                    if not waiter.done():
                        waiter.set_result(now)
                self._waiters.clear()

        widget.render_line = drawing
        screen._compositor_refresh = refreshing

    def arm(self) -> Any:
        """A future for the next paint that draws the widget (perf_counter)."""
        import asyncio

        self._drawn = False
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter


def db_bytes(directory: Path, stem: str) -> int:
    """The database with its WAL and shared-memory files, if any remain."""
    return sum(p.stat().st_size for p in directory.glob(f"{stem}*") if p.is_file())


# --------------------------------------------------------------------------
# Child processes and statistics
# --------------------------------------------------------------------------


CHILD_TIMEOUT_S = 180.0


def run_child(
    script: Path,
    job: dict[str, Any],
    *,
    root: Path | None = None,
    timeout: float = CHILD_TIMEOUT_S,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run `script --child JOB` and return its last JSON line. `root` puts
    another copy of the code first on the path (to compare a patch)."""
    child_env = {**os.environ, **(env or {})}
    if root is not None:
        child_env["PYTHONPATH"] = os.pathsep.join(
            [str(root), child_env.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep)
    proc = subprocess.run(
        [PYTHON, str(script), "--child", json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env,
        cwd=REPO,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-60:]
        raise RuntimeError(f"{script.name} {job} failed:\n" + "\n".join(tail))
    return json.loads(lines[-1])


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


# --------------------------------------------------------------------------
# Tables and verdicts
# --------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table: readable in a terminal, pasteable
    into docs/BENCHMARKS.md as is."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = []
    for k, row in enumerate(cells):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if k == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@dataclass
class Verdict:
    target: str
    measured: str
    met: bool

    def line(self) -> str:
        return f"{'PASS' if self.met else 'MISS'}  {self.target}: {self.measured}"


def print_verdicts(verdicts: Sequence[Verdict], failures: Sequence[str] = ()) -> None:
    """The targets, PASS or MISS; runs that failed (printed as they happened)
    are a MISS of their own, so a broken run never reads as a clean table."""
    if failures:
        verdicts = [
            *verdicts,
            Verdict("every run finished", f"{len(failures)} failed (above)", False),
        ]
    print()
    print("targets:")
    for v in verdicts:
        print(v.line())


def run_script(child: Callable[[dict[str, Any]], Any], main: Callable[[], Any]) -> None:
    """A benchmark script's entry: the measuring child when started with
    `--child JSON` by its parent, else the parent that runs and reports."""
    job = child_job()
    if job is not None:
        child(job)
    else:
        main()


def child_job() -> dict[str, Any] | None:
    """The job of a child process (`--child JSON`), or None in the parent.
    A child that hangs dumps every thread's stack to stderr (which the
    parent shows) and exits before the parent gives up on it."""
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        import faulthandler

        faulthandler.dump_traceback_later(CHILD_TIMEOUT_S - 10, exit=True)
        return json.loads(sys.argv[2])
    return None


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)
