"""Two processes, one database: a second engine is refused while the first
lives, takes over once it is gone, and never runs a step twice; readers
watch without disturbing it.

Real processes throughout: `tests/crash_worker.py --lease` is an engine
that takes the lease (engine/lease.py) first; `tui.cli` is the command.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.bus import EventBus
from engine.engine import DirectiveEngine, EngineError, EngineServices
from engine.invariants import check_invariants, describe
from engine.lease import EngineLease, LeaseError, LeaseHeld, LeaseHolder, holder_gone
from engine.store import Store
from tests.proc_kit import wait_for_file, wait_gone

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
WAIT_S = 60  # generous bound for anything a process must get to


def slow_directive(
    tmp_path: Path, steps: int = 5, sleep_s: float = 0.4, gate: Path | None = None
) -> Path:
    """Steps s0, s1, ... one after the other, each appending its name to
    runs.log. With `gate`, s0 first notes its shell's pid in `gate.pid` and
    holds until the test opens the gate (touches the file): the test, not
    the clock, decides how long the engine stays busy."""
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)

    def command(i: int) -> str:
        if i == 0 and gate is not None:
            held = f"until [ -e {gate} ]; do sleep 0.05; done"
            return f"echo $$ > {gate}.pid; {held}; echo s0 >> runs.log"
        return f"sleep {sleep_s} && echo s{i} >> runs.log"

    body = "".join(
        f'\n[[steps]]\nname = "s{i}"\ncommand = "{command(i)}"\n'
        + (f'depends_on = ["s{i - 1}"]\n' if i else "")
        for i in range(steps)
    )
    path = tmp_path / "slow.toml"
    path.write_text(
        f'title = "slow"\ngoal = "be run once"\nrepo = "{repo}"\nautonomy = "full_auto"\n'
        'executor = "shell"\n[verifiers]\nauto_detect = false\nllm_judge = false\n' + body
    )
    return path


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    """The gate a held step waits on; opened at teardown too, so no held
    step outlives a failed test."""
    path = tmp_path / "gate"
    yield path
    path.touch()


def worker(db: Path, directive: Path, log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, "-m", "tests.crash_worker", str(db), str(directive), "--lease"],
        cwd=ROOT,
        env=ENV,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def cli(db: Path, *args: str, timeout: float = WAIT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "tui.cli", "--db", str(db), *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def cli_started(
    db: Path, *args: str, stdout: Any = subprocess.PIPE, stderr: Any = subprocess.PIPE
) -> subprocess.Popen[str]:
    """The command started in the background, as a second terminal runs it."""
    return subprocess.Popen(
        [PY, "-m", "tui.cli", "--db", str(db), *args],
        cwd=ROOT, env=ENV, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def query(db: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []


@contextlib.contextmanager
def reaped(proc: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """The process, killed and reaped on the way out if it still runs
    (a failed assertion must not leave an engine behind)."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_for(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


def a_step_is_running(db: Path) -> bool:
    return bool(query(db, "SELECT 1 FROM chain_steps WHERE status = 'running'"))


def runs_per_step(db: Path) -> dict[str, int]:
    return dict(
        query(
            db,
            "SELECT s.name, COUNT(r.id) FROM chain_steps s LEFT JOIN step_runs r ON r.step_id = s.id"
            " GROUP BY s.name",
        )
    )


# --------------------------------------------------------------------------
# Engines as processes
# --------------------------------------------------------------------------


async def test_a_second_engine_is_refused_while_the_first_runs(tmp_path: Path, gate: Path) -> None:
    db, directive = tmp_path / "shared.db", slow_directive(tmp_path, sleep_s=0, gate=gate)
    with reaped(worker(db, directive, tmp_path / "first.log")) as first:
        wait_for(lambda: a_step_is_running(db), "the first engine to run a step")
        second = subprocess.run(
            [PY, "-m", "tests.crash_worker", str(db), str(directive), "--lease"],
            cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=WAIT_S,
        )  # fmt: skip
        assert second.returncode == 2, second.stdout + second.stderr
        message = second.stderr.strip()
        assert "in use by another directive-tui engine" in message
        assert f"pid {first.pid} on {socket.gethostname()}" in message
        assert "since " in message and "last heartbeat" in message
        gate.touch()  # s0 ends; the first engine runs on to the end
        assert first.wait(timeout=WAIT_S) == 0, (tmp_path / "first.log").read_text()
    assert set(runs_per_step(db).values()) == {1}, "a step ran more than once"
    assert (tmp_path / "repo" / "runs.log").read_text().split() == [f"s{i}" for i in range(5)]
    assert await check_invariants(db) == []


async def test_the_lease_of_a_killed_engine_is_taken_over(tmp_path: Path, gate: Path) -> None:
    db, directive = tmp_path / "shared.db", slow_directive(tmp_path, sleep_s=0, gate=gate)
    first = worker(db, directive, tmp_path / "first.log")
    wait_for(lambda: a_step_is_running(db), "the first engine to run a step")
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    holder = await EngineLease.holder(db)
    assert holder is not None and holder.pid == first.pid  # the dead engine's row is still there

    gate.touch()  # s0 runs through when the second engine runs it again
    second = worker(db, directive, tmp_path / "second.log")
    assert second.wait(timeout=WAIT_S) == 0, (tmp_path / "second.log").read_text()
    log = (tmp_path / "second.log").read_text()
    assert f"took over the lease of 'crash worker' (pid {first.pid}" in log
    assert f"pid {first.pid} no longer runs" in log
    assert await EngineLease.holder(db) is None  # released at the end
    assert await check_invariants(db) == []
    steps = query(db, "SELECT status FROM chain_steps")
    assert {s for (s,) in steps} == {"passed"}


CONTENDER = """
import asyncio, sys, time
from pathlib import Path
from engine.lease import EngineLease, LeaseHeld

async def main(db, ready, go, release):
    Path(ready).touch()
    while not Path(go).exists():
        await asyncio.sleep(0.005)
    try:
        lease = await EngineLease.acquire(db, "contender")
    except LeaseHeld:
        print("held", flush=True)
        return
    print("won", flush=True)
    while not Path(release).exists():
        await asyncio.sleep(0.01)
    await lease.release()

asyncio.run(main(*sys.argv[1:]))
"""


async def test_engines_starting_at_the_same_moment_elect_exactly_one(tmp_path: Path) -> None:
    db, go, release = tmp_path / "shared.db", tmp_path / "go", tmp_path / "release"
    store = await Store.open(db)  # the schema, made once
    await store.close()
    ready = [tmp_path / f"ready-{n}" for n in range(6)]
    procs = [
        subprocess.Popen(
            [PY, "-c", CONTENDER, str(db), str(line), str(go), str(release)],
            cwd=ROOT,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for line in ready
    ]
    try:
        wait_for(lambda: all(r.exists() for r in ready), "every contender at the starting line")
        go.touch()
        # The winner holds the lease until every other one has answered: a
        # late contender must not find it free again.
        deadline = time.monotonic() + WAIT_S
        while sum(p.poll() is None for p in procs) > 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    finally:
        go.touch()  # whatever failed above, no contender is left waiting
        release.touch()
        results = [p.communicate(timeout=WAIT_S) for p in procs]
    answers = sorted(out.strip() for out, _ in results)
    assert answers == ["held"] * 5 + ["won"], results


# --------------------------------------------------------------------------
# Watching: readers on the same file while an engine runs
# --------------------------------------------------------------------------


async def test_readers_watch_a_running_engine_without_disturbing_it(
    tmp_path: Path, gate: Path
) -> None:
    db, directive = tmp_path / "shared.db", slow_directive(tmp_path, sleep_s=0, gate=gate)
    with reaped(worker(db, directive, tmp_path / "first.log")) as first:
        wait_for(lambda: a_step_is_running(db), "the engine to run a step")
        (did,) = query(db, "SELECT id FROM directives")[0]
        listed = cli(db, "list")
        assert listed.returncode == 0, listed.stderr
        assert did in listed.stdout and "active" in listed.stdout
        events = cli(db, "events", did)
        assert events.returncode == 0 and "running" in events.stdout, events.stderr
        during = await check_invariants(db)  # a read-only look mid-run
        assert during == [], describe(during)
        gate.touch()
        assert first.wait(timeout=WAIT_S) == 0
    assert set(runs_per_step(db).values()) == {1}


async def test_a_second_headless_command_on_the_same_directive_is_refused(
    tmp_path: Path, gate: Path
) -> None:
    db = tmp_path / "shared.db"
    directive = slow_directive(tmp_path, steps=4, sleep_s=0, gate=gate)
    first = cli_started(db, "run", str(directive), "--headless")
    with reaped(first):
        wait_for(lambda: a_step_is_running(db), "the first command to run a step")
        (did,) = query(db, "SELECT id FROM directives")[0]
        second = cli(db, "resume", str(did), "--headless")
        gate.touch()  # only now may the first command's step end
        first_out, first_err = first.communicate(timeout=WAIT_S)
    doubled = {name: n for name, n in runs_per_step(db).items() if n > 1}
    assert not doubled, f"steps run more than once: {doubled}"
    assert await check_invariants(db) == []
    assert second.returncode == 75, second.stdout[-2000:] + second.stderr  # try again later
    assert "in use by another directive-tui engine" in second.stderr
    assert "open the app on this database" in second.stderr  # to watch; no read-only option
    assert "read-only" not in second.stderr
    assert first.returncode == 0, first_out[-2000:] + first_err


# --------------------------------------------------------------------------
# The lease's rules, in one process (hosts and clocks are rows we write)
# --------------------------------------------------------------------------


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    store = await Store.open(tmp_path / "lease.db")
    await store.close()
    return tmp_path / "lease.db"


def plant(db: Path, *, pid: int, host: str, age_s: float, label: str = "other engine") -> None:
    """A lease row as another engine would have left it."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT OR REPLACE INTO engine_lease (id, owner, pid, host, heartbeat) VALUES (1, ?, ?, ?, ?)",
            (f"{label}\x1fabc\x1f{time.time() - 3600:.3f}", pid, host, time.time() - age_s),
        )


async def test_a_live_holder_on_another_host_is_respected(db: Path) -> None:
    plant(db, pid=12345, host="build-box-7", age_s=2)
    with pytest.raises(LeaseHeld) as refused:
        await EngineLease.acquire(db, "tui")
    message = str(refused.value)
    assert "'other engine' (pid 12345 on build-box-7 since " in message
    assert "last heartbeat 2 s ago" in message
    assert refused.value.holder.host == "build-box-7"


async def test_a_stale_heartbeat_is_taken_over_on_any_host(db: Path) -> None:
    plant(db, pid=12345, host="build-box-7", age_s=120)
    lease = await EngineLease.acquire(db, "tui", stale_after_s=30)
    try:
        assert lease.taken_over is not None and "heartbeat is 120 s old" in lease.taken_over
        holder = await EngineLease.holder(db)
        assert holder is not None and (holder.label, holder.pid) == ("tui", os.getpid())
    finally:
        await lease.release()
    assert await EngineLease.holder(db) is None


async def test_a_gone_pid_on_this_host_is_taken_over_at_once(db: Path) -> None:
    dead = subprocess.Popen([PY, "-c", "pass"])
    dead.wait()  # a pid that ran here and is gone
    plant(db, pid=dead.pid, host=socket.gethostname(), age_s=0)
    lease = await EngineLease.acquire(db, "tui")
    try:
        assert lease.taken_over is not None and f"pid {dead.pid} no longer runs" in lease.taken_over
    finally:
        await lease.release()


@pytest.mark.parametrize("folder", ["build#7", "what?", "100%"])
async def test_the_holder_is_read_in_a_folder_whose_name_a_uri_would_cut(
    tmp_path: Path, folder: str
) -> None:
    path = tmp_path / folder / "lease.db"
    path.parent.mkdir()
    await (await Store.open(path)).close()
    plant(path, pid=12345, host="build-box-7", age_s=2)
    holder = await EngineLease.holder(path)  # `file:.../build#7/...` read the folder `build`
    assert holder is not None and holder.pid == 12345


async def test_the_runner_is_the_holder_only_while_it_lives(db: Path) -> None:
    plant(db, pid=12345, host="build-box-7", age_s=2)
    runner = await EngineLease.runner(db)
    assert runner is not None and runner.host == "build-box-7"
    plant(db, pid=12345, host="build-box-7", age_s=120)  # its heartbeat went quiet
    assert await EngineLease.runner(db) is None
    dead = subprocess.Popen([PY, "-c", "pass"])
    dead.wait()
    plant(db, pid=dead.pid, host=socket.gethostname(), age_s=0)  # its process is gone
    assert await EngineLease.runner(db) is None


async def test_an_unreaped_zombie_holder_counts_as_gone(db: Path) -> None:
    zombie = subprocess.Popen([PY, "-c", "pass"])
    wait_for(lambda: zombie_state(zombie.pid), "the child to exit (unreaped)")
    plant(db, pid=zombie.pid, host=socket.gethostname(), age_s=0)
    try:
        lease = await EngineLease.acquire(db, "tui")
        await lease.release()
    finally:
        zombie.wait()


def zombie_state(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return False


async def test_the_same_process_cannot_hold_it_twice(db: Path) -> None:
    first = await EngineLease.acquire(db, "tui")
    try:
        with pytest.raises(LeaseHeld, match=f"pid {os.getpid()}"):
            await EngineLease.acquire(db, "second engine")
    finally:
        await first.release()
    again = await EngineLease.acquire(db, "second engine")
    await again.release()


async def test_the_heartbeat_renews_and_a_lost_lease_is_noticed(db: Path) -> None:
    noticed: list[str] = []
    lease = await EngineLease.acquire(
        db, "tui", heartbeat_s=0.02, stale_after_s=5, on_lost=lambda: noticed.append("lost")
    )
    first = await EngineLease.holder(db)
    assert first is not None

    async def renewed() -> None:
        while (now := await EngineLease.holder(db)) is None or now.heartbeat <= first.heartbeat:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(renewed(), WAIT_S)
    assert lease.held
    plant(db, pid=4242, host="elsewhere", age_s=0, label="usurper")  # taken from us
    await asyncio.wait_for(lease.lost.wait(), WAIT_S)
    assert noticed == ["lost"] and not lease.held
    await lease.release()  # gives back nothing that is not ours
    holder = await EngineLease.holder(db)
    assert holder is not None and holder.label == "usurper"


async def test_a_file_without_the_schema_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(LeaseError, match="no database at"):
        await EngineLease.acquire(tmp_path / "missing.db", "tui")
    plain = tmp_path / "plain.db"
    sqlite3.connect(plain).close()
    with pytest.raises(LeaseError, match="no engine_lease table"):
        await EngineLease.acquire(plain, "tui")


def test_bad_timings_are_refused() -> None:
    with pytest.raises(ValueError, match="heartbeat_s < stale_after_s"):
        asyncio.run(EngineLease.acquire("x.db", "tui", heartbeat_s=10, stale_after_s=5))


def test_the_takeover_rule_as_a_table() -> None:
    here = socket.gethostname()
    now = 1_000_000.0

    def holder(host: str, age: float) -> LeaseHolder:
        return LeaseHolder("e", "t", None, 4242, host, now - age)

    cases = [
        # (host, heartbeat age, pid alive) -> taken over?
        ((here, 1, True), False),
        ((here, 1, False), True),
        ((here, 31, True), True),
        (("other", 1, False), False),  # another host's pid means nothing here
        (("other", 31, True), True),
    ]
    for (host, age, alive), taken in cases:
        why = holder_gone(
            holder(host, age),
            host=here,
            now=now,
            stale_after_s=30,
            alive=lambda pid, alive=alive: alive,
        )
        assert (why is not None) is taken, (host, age, alive, why)


# --------------------------------------------------------------------------
# A watching engine: the app (or any engine) opened while another one runs
# --------------------------------------------------------------------------


def headless(db: Path, directive: Path, log: Path) -> subprocess.Popen[str]:
    """`directive-tui run FILE --headless`: the engine holding the lease."""
    return cli_started(
        db, "run", str(directive), "--headless", stdout=log.open("w"), stderr=subprocess.STDOUT
    )


def one_step_spec(repo: Path, name: str) -> Any:
    from engine.directive_file import parse_directive_text

    return parse_directive_text(
        f'title = "{name}"\ngoal = "run once"\nrepo = "{repo}"\nautonomy = "full_auto"\n'
        'executor = "shell"\n[verifiers]\nauto_detect = false\nllm_judge = false\n'
        f'[[steps]]\nname = "{name}"\ncommand = "echo {name} >> runs.log"\n',
        base_dir=repo,
        source=f"{name}.toml",
    )


def watcher_services() -> EngineServices:
    """A watcher that looks for its chance every 0.2 s. It takes over once
    the holder's process is gone (at once, on this host), never because a
    live holder seems quiet: the headless holder writes its heartbeat every
    5 s, so a staleness limit under that (it was 2 s) had the watcher take
    over a holder still running its step, and run that step a second time."""
    return EngineServices(
        llm_provider=lambda spec: None,
        lease_heartbeat_s=0.2,
        lease_stale_after_s=30.0,
        external_poll_s=0.05,
    )


async def until_async(check: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        result = check()
        if hasattr(result, "__await__"):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)


async def test_a_watching_engine_hands_its_commands_to_the_holder_then_takes_over(
    tmp_path: Path, gate: Path
) -> None:
    db = tmp_path / "shared.db"
    directive = slow_directive(tmp_path, steps=4, sleep_s=0.1, gate=gate)
    repo = tmp_path / "repo"
    with reaped(headless(db, directive, tmp_path / "holder.log")) as holder:
        wait_for(lambda: a_step_is_running(db), "the holder to run a step")
        store = await Store.open(db)
        bus = EventBus()
        seen = StepNames(bus.subscribe())
        engine = DirectiveEngine(store, bus, watcher_services())
        try:
            await engine.start(watch_if_held=True)
            assert engine.watching is not None
            assert "'directive-tui --headless'" in engine.watching
            assert f"pid {holder.pid}" in engine.watching

            # Started here, run there: the holder picks it up from the database.
            quick = await engine.create_directive(one_step_spec(repo, "quick"))
            await engine.start_directive(quick.id)
            await until_async(
                lambda: status_of(store, quick.id, "completed"), "the holder to run 'quick'"
            )
            assert holder.poll() is None, "the holder ended before it could have run 'quick'"
            gate.touch()  # the holder's own directive goes on: s0 ends, s1 runs
            # The holder's own events reached the watcher's subscribers too.
            await until_async(lambda: "s1" in seen, "the holder's step events")

            assert holder.wait(timeout=WAIT_S) == 0, (tmp_path / "holder.log").read_text()
            await until_async(lambda: engine.watching is None, "the watcher to take the lease over")
            late = await engine.create_directive(one_step_spec(repo, "late"))
            await engine.start_directive(late.id)
            await until_async(lambda: status_of(store, late.id, "completed"), "'late' to run here")
        finally:
            await engine.close()
            await store.close()
    assert sorted((repo / "runs.log").read_text().split()) == sorted(
        ["s0", "s1", "s2", "s3", "quick", "late"]
    )
    assert set(runs_per_step(db).values()) == {1}
    assert await check_invariants(db) == []


async def test_pausing_from_another_process_stops_the_running_step(
    tmp_path: Path, gate: Path
) -> None:
    db = tmp_path / "shared.db"
    directive = slow_directive(tmp_path, steps=2, sleep_s=0, gate=gate)
    with reaped(headless(db, directive, tmp_path / "holder.log")) as holder:
        wait_for(lambda: a_step_is_running(db), "the holder to run a step")
        step_pid = int(wait_for_file(Path(f"{gate}.pid")))
        (did,) = query(db, "SELECT id FROM directives")[0]
        paused = cli(db, "pause", str(did))
        assert paused.returncode == 0, paused.stderr
        assert holder.wait(timeout=WAIT_S) == 4, (tmp_path / "holder.log").read_text()
    # The step's process died with it (held at the gate, it never reached
    # its echo), and the attempt was closed, not left running.
    assert await wait_gone(step_pid), "the paused step's process runs on"
    assert not (tmp_path / "repo" / "runs.log").exists()
    assert query(db, "SELECT status FROM step_runs") == [("cancelled",)]
    assert await check_invariants(db) == []
    gate.touch()  # run again, s0 goes straight through
    resumed = cli(db, "resume", str(did), "--headless", timeout=WAIT_S * 2)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr
    assert (tmp_path / "repo" / "runs.log").read_text().split() == ["s0", "s1"]


async def test_the_app_opened_on_a_running_database_watches_it(tmp_path: Path, gate: Path) -> None:
    from engine.models import DirectiveStatus
    from tests.tui_kit import until
    from tui.app import DirectiveApp
    from tui.screens.home import HomeScreen

    db = tmp_path / "shared.db"
    directive = slow_directive(tmp_path, steps=3, sleep_s=0.1, gate=gate)
    with reaped(headless(db, directive, tmp_path / "holder.log")) as holder:
        wait_for(lambda: a_step_is_running(db), "the holder to run a step")
        (did,) = query(db, "SELECT id FROM directives")[0]
        app = DirectiveApp(db, services=watcher_services())
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: app.engine_ready, "the app's engine")
            assert app.engine is not None and app.engine.watching is not None
            screen = app.screen
            assert isinstance(screen, HomeScreen)
            assert "watching · run by 'directive-tui --headless'" in str(
                screen.query_one("#home-title").render()
            )
            # so does the directive's own screen, in its header
            from tests.tui_kit import loaded, plain_text
            from tui.widgets.header import DirectiveHeader

            app.open_directive_screen(str(did))
            await until(pilot, lambda: loaded(app), "the directive screen")
            header = app.screen.query_one(DirectiveHeader)
            assert "watching · run by 'directive-tui --headless'" in plain_text(header)
            await pilot.press("escape")
            gate.touch()  # the holder's directive goes on to its end
            # the holder's progress arrives as events: the row reaches completed
            await until(
                pilot,
                lambda: (
                    getattr(screen.directives.get(str(did)), "status", None)
                    is DirectiveStatus.COMPLETED
                ),
                "the row to show the holder's directive completed",
            )
        assert holder.wait(timeout=WAIT_S) == 0
    assert set(runs_per_step(db).values()) == {1}


async def status_of(store: Store, directive_id: str, wanted: str) -> bool:
    return (await store.get_directive(directive_id)).status.value == wanted


class StepNames:
    """The step names a subscription has seen so far."""

    def __init__(self, sub: Any) -> None:
        self.sub, self.names = sub, set()

    def __contains__(self, name: str) -> bool:
        self.names |= {getattr(e, "step_name", None) for e in self.sub.drain()}
        return name in self.names


async def test_an_engine_whose_lease_is_taken_stops_and_says_so(tmp_path: Path) -> None:
    from tests.engine_kit import Script, chain_spec, services

    script = Script(delay={"a": 30.0})
    store = await Store.open(tmp_path / "lost.db")
    engine = DirectiveEngine(store, EventBus(), services(script))
    engine.services.lease_heartbeat_s, engine.services.lease_stale_after_s = 0.05, 1.0
    try:
        await engine.start()
        d = await engine.create_directive(chain_spec(tmp_path, [("a", []), ("b", ["a"])]))
        await engine.start_directive(d.id)
        await until_async(lambda: a_step_is_running(tmp_path / "lost.db"), "step a to run")
        with sqlite3.connect(tmp_path / "lost.db") as conn:  # what a takeover writes
            conn.execute("UPDATE engine_lease SET owner = 'usurper', pid = 1")
        with pytest.raises(EngineError, match="lost the database"):
            await engine.wait_settled(d.id, timeout=WAIT_S)
        assert engine.watching is not None
        await until_async(lambda: not engine._rt[d.id].steps, "its steps to be cancelled")
    finally:
        await engine.close()
        await store.close()
    assert [name for name, _, _ in script.calls] == ["a"]  # b never started here
    # and the cancelled attempt left its rows to the engine that took over
    assert query(tmp_path / "lost.db", "SELECT status FROM chain_steps WHERE name = 'a'") == [
        ("running",)
    ]


# --------------------------------------------------------------------------
# The command line beside a running engine
# --------------------------------------------------------------------------


def follow(db: Path, directive_id: str, stdout: Any = subprocess.PIPE) -> subprocess.Popen[str]:
    """`directive-tui events ID --follow`, as a second terminal runs it."""
    return cli_started(db, "events", directive_id, "--follow", stdout=stdout)


def the_directive(db: Path) -> str:
    wait_for(lambda: query(db, "SELECT id FROM directives"), "the directive to be created")
    ((did,),) = query(db, "SELECT id FROM directives")
    return str(did)


@pytest.mark.parametrize(
    ("stop", "code", "ending"),
    [(False, 0, "directive active -> completed"), (True, 1, "directive active -> stopped")],
    ids=["completed", "stopped"],
)
def test_events_follow_prints_what_the_running_engine_writes_until_the_directive_ends(
    tmp_path: Path, gate: Path, stop: bool, code: int, ending: str
) -> None:
    """The app (a headless run here) works in one terminal; `events --follow`
    in another prints each event as it is written, every one once, and ends
    with the directive, exiting as its run does."""
    db, printed = tmp_path / "x.db", tmp_path / "followed.txt"
    directive = slow_directive(tmp_path, steps=3, sleep_s=0.1, gate=gate)
    with reaped(headless(db, directive, tmp_path / "run.log")) as run:
        did = the_directive(db)
        with reaped(follow(db, did, stdout=printed.open("w"))) as follower:
            wait_for(lambda: a_step_is_running(db), "the first step to run")
            wait_for(lambda: printed.read_text(), "the follower to print what there is so far")
            if stop:  # while s0 still runs: the gate stays shut
                assert cli(db, "stop", did).returncode == 0
            else:
                gate.touch()  # the rest is written while it follows
            assert run.wait(timeout=WAIT_S) == code
            _, err = follower.communicate(timeout=WAIT_S)
    out = printed.read_text()
    assert (follower.returncode, err) == (code, "")
    seqs = [int(line.split()[1].removeprefix("#")) for line in out.splitlines()]
    assert seqs == list(range(1, query(db, "SELECT last_seq FROM directives")[0][0] + 1))
    assert ending in out


def test_a_limit_raised_beside_a_running_engine_names_it_to_resume_through(
    tmp_path: Path,
) -> None:
    """While the app runs the database, `resume --headless` is refused (one
    engine per file): the hint after the limit names the app, and the
    command that opens another one on it, rather than the refused one."""
    db = tmp_path / "x.db"
    path = slow_directive(tmp_path, steps=1, sleep_s=5)
    path.write_text(path.read_text() + "[limits]\nmax_wall_time_minutes = 0.01\n")
    assert cli(db, "run", str(path), "--headless").returncode == 4  # the breaker
    did = the_directive(db)
    plant(db, pid=os.getpid(), host=socket.gethostname(), age_s=0, label="directive-tui app")
    shown = cli(db, "limits", did, "--max-wall-time-minutes", "5")
    assert shown.returncode == 0, shown.stderr
    hint = shown.stdout.splitlines()[-1]
    assert hint == (
        f"within its limits: 'directive-tui app' (pid {os.getpid()} on {socket.gethostname()})"
        " runs this database, so a headless resume would be refused:"
        f" `directive-tui --db {db} resume {did}` opens the app on it,"
        " which has that engine resume it"
    )
    assert cli(db, "resume", did, "--headless").returncode == 75  # refused indeed: try later

    with sqlite3.connect(db) as conn:  # the app quit
        conn.execute("DELETE FROM engine_lease")
    hint = cli(db, "limits", did).stdout.splitlines()[-1]
    assert hint == f"within its limits: `directive-tui --db {db} resume {did} --headless`"


def test_following_a_directive_nothing_runs_says_so_and_goes_on_once_one_does(
    tmp_path: Path, gate: Path
) -> None:
    """`events --follow` and `list` on a directive left active with no
    engine: it would seem to hang, so it says what would run it."""
    db = tmp_path / "x.db"
    path = slow_directive(tmp_path, steps=2, sleep_s=0.2, gate=gate)  # s0 runs until it opens
    path.write_text(path.read_text().replace('"full_auto"', '"manual"'))
    assert cli(db, "run", str(path), "--headless").returncode == 3  # the plan waits
    did = the_directive(db)
    # waiting for a person, not for an engine: no line under its row
    assert cli(db, "list").stdout.splitlines()[-1].startswith(f"{did}  active ")
    ((plan,),) = query(db, "SELECT id FROM approval_requests WHERE status = 'pending'")
    assert cli(db, "approve", str(plan)).returncode == 0
    resume = f"`directive-tui --db {db} resume {did} --headless`"
    assert cli(db, "list").stdout.splitlines()[-1] == (
        f"nothing runs this database now: {did} waits for the app or {resume}"
    )
    with reaped(follow(db, did)) as follower:
        assert follower.stderr is not None
        assert follower.stderr.readline() == (
            f"nothing runs this database now: following until the app or {resume} runs it\n"
        )
        with reaped(headless_resume(db, did)) as run:
            wait_for(lambda: a_step_is_running(db), "the resumed run's first step")
            assert (
                cli(db, "list")
                .stdout.splitlines()[-1]
                .startswith("run by 'directive-tui --headless' (pid ")
            )
            gate.touch()
            run.wait(timeout=WAIT_S)  # manual: the first step's review waits
        # nothing runs it again, and a person's answer is due: it follows on
        assert follower.poll() is None


def headless_resume(db: Path, directive_id: str) -> subprocess.Popen[str]:
    return cli_started(
        db, "resume", directive_id, "--headless",
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip


def test_following_a_paused_directive_says_what_it_waits_for(tmp_path: Path) -> None:
    """`events --follow` on a paused directive printed nothing and never
    ended: nothing writes to it until someone resumes it."""
    db = tmp_path / "x.db"
    path = slow_directive(tmp_path, steps=1, sleep_s=0.2)
    path.write_text(path.read_text().replace('"full_auto"', '"manual"'))
    assert cli(db, "run", str(path), "--headless").returncode == 3  # the plan waits
    did = the_directive(db)
    assert cli(db, "pause", did).returncode == 0
    with reaped(follow(db, did)) as follower:
        assert follower.stderr is not None
        assert follower.stderr.readline() == (
            "the directive is paused: following until it is resumed"
            f" (`directive-tui --db {db} resume {did}`)\n"
        )
