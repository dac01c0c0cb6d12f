"""The command line when things go wrong around it: a printer that falls
behind, signals, databases it may not write, step output that is not plain
text. Real SQLite files, real git repositories, real subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import pty
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from engine.bus import EventBus, Subscription
from engine.engine import DirectiveEngine
from engine.store import Store
from tests.conftest import init_git_repo
from tests.engine_kit import chain_spec
from tests.proc_kit import alive, wait_for_file
from tests.test_cli import (
    FAILING_STEP,
    STEP_OK,
    YELLOW,
    directive_file,
    empty_database,
    only_directive,
    run_cli,
)
from tui.cli import main
from tui.cli.entry import load_spec
from tui.cli.headless import run_headless


class WatchedBus(EventBus):
    """The engine's bus, keeping its subscriptions to say whether one lagged."""

    def __init__(self, max_queue: int) -> None:
        super().__init__(max_queue)
        self.subscriptions: list[Subscription] = []

    def subscribe(self, directive_id: str | None = None) -> Subscription:
        sub = super().subscribe(directive_id)
        self.subscriptions.append(sub)
        return sub


def seq_of(line: str, as_json: bool) -> int:
    return json.loads(line)["seq"] if as_json else int(line.split()[1].removeprefix("#"))


@pytest.mark.parametrize("as_json", [False, True])
def test_a_headless_printer_that_falls_behind_still_prints_every_event_once_in_order(
    tmp_path: Path, make_git_repo: Callable[..., Path], as_json: bool
) -> None:
    """A step prints thousands of lines faster than the printer keeps up: the
    bus drops what its queue cannot hold (here a queue of 8), and the printed
    log used to jump from one seq to a much later one without a word."""
    steps = '[[steps]]\nname = "loud"\ncommand = "seq 1 3000"\n'
    spec = load_spec(directive_file(tmp_path, make_git_repo(), steps, autonomy="full_auto"))
    db = tmp_path / "x.db"
    bus = WatchedBus(max_queue=8)
    out = io.StringIO()

    code = asyncio.run(run_headless(db, spec=spec, as_json=as_json, out=out, bus=bus))

    assert code == 0
    assert any(sub.dropped for sub in bus.subscriptions)  # it did fall behind
    lines = out.getvalue().splitlines()
    printed = [seq_of(line, as_json) for line in lines]

    async def stored() -> list[int]:
        store = await Store.open(db)
        try:
            (d,) = await store.list_directives()
            return [e.seq for e in await store.list_events(d.id)]
        finally:
            await store.close()

    assert printed == asyncio.run(stored()) == list(range(1, len(printed) + 1))


def held_step(tmp_path: Path) -> str:
    """A step that notes its shell's pid, then waits (until `go` exists)."""
    return (
        '[[steps]]\nname = "held"\n'
        f'command = "echo $$ >> {tmp_path}/pids; test -f {tmp_path}/go || sleep 60"\n'
    )


STOPPING = pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["SIGTERM", "SIGHUP"]
)


@STOPPING
def test_sigterm_stops_a_headless_run_as_ctrl_c_does_and_resume_runs_the_step_again(
    tmp_path: Path, make_git_repo: Callable[..., Path], signum: int, code: int
) -> None:
    """`timeout`, `kill`, a cancelled CI job (SIGTERM) or a closed terminal
    (SIGHUP): the step's shell used to run on with no parent, a resume
    started a second one beside it, and the wall-time clock ran on."""
    path = directive_file(tmp_path, make_git_repo(), held_step(tmp_path), autonomy="full_auto")
    cli = [sys.executable, "-m", "tui.cli", "--db", str(tmp_path / "x.db")]
    with subprocess.Popen(
        [*cli, "run", str(path), "--headless"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as run:
        (step_pid,) = map(int, wait_for_file(tmp_path / "pids").split())
        run.send_signal(signum)
        assert run.wait(timeout=30) == code
        assert run.stderr is not None and run.stderr.read() == b""  # no traceback
        assert run.stdout is not None
        printed = run.stdout.read().decode().splitlines()
    assert not alive(step_pid)
    # the log goes on to what the closing wrote, then says how to carry on
    (did,) = [
        d["id"]
        for d in json.loads(subprocess.run([*cli, "list", "--json"], capture_output=True).stdout)
    ]
    assert (
        "step held: running -> ready"
        " (interrupted: directive-tui closed; runs again when it next runs this directive)"
    ) in printed[-3]
    assert "wall-time clock stopped" in printed[-2]
    assert printed[-1] == (
        f"interrupted: `directive-tui --db {tmp_path / 'x.db'} resume {did} --headless` carries on"
    )
    with sqlite3.connect(tmp_path / "x.db") as conn:
        (clock,) = conn.execute("SELECT active_since FROM directives").fetchone()
    assert clock is None  # stopped: no engine runs it

    (tmp_path / "go").touch()
    resumed = subprocess.run([*cli, "resume", did, "--headless"], capture_output=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "step held: ready -> running (attempt 2)" in resumed.stdout.decode()
    assert len((tmp_path / "pids").read_text().split()) == 2  # ran again, once


@STOPPING
def test_sigterm_quits_the_app_closing_its_engine_so_no_step_is_left_running(
    tmp_path: Path, make_git_repo: Callable[..., Path], signum: int, code: int
) -> None:
    """The app in a terminal (a pty here) quits on SIGTERM or SIGHUP as on
    Ctrl-Q with its steps interrupted, and says so with its exit code."""
    path = directive_file(tmp_path, make_git_repo(), held_step(tmp_path), autonomy="full_auto")
    db = tmp_path / "x.db"
    pid, fd = pty.fork()
    if pid == 0:  # the child: the app, on the pty
        os.execv(
            sys.executable, [sys.executable, "-m", "tui.cli", "--db", str(db), "run", str(path)]
        )
    try:
        reader = threading.Thread(target=drain, args=(fd,), daemon=True)
        reader.start()
        (step_pid,) = map(int, wait_for_file(tmp_path / "pids").split())
        os.kill(pid, signum)
        deadline = time.monotonic() + 30
        while not (done := os.waitpid(pid, os.WNOHANG))[0]:
            assert time.monotonic() < deadline, "the app is still running"
            time.sleep(0.05)
        assert os.waitstatus_to_exitcode(done[1]) == code
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert not alive(step_pid)
    with sqlite3.connect(db) as conn:
        (status,) = conn.execute("SELECT status FROM chain_steps").fetchone()
    assert status == "ready"  # to run again when the database is run again


def drain(fd: int) -> None:
    """Read what the app draws, so it never blocks on a full pty."""
    with contextlib.suppress(OSError):
        while os.read(fd, 65536):
            pass


# -- databases this user may not write ------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder under /tmp that another user can reach (pytest's tmp_path is
    private to its owner): the read-only cases run the command as `nobody`
    when the tests run as root, whom file modes do not stop."""
    folder = Path(tempfile.mkdtemp(prefix="directive-ro-", dir="/tmp"))
    folder.chmod(0o777)
    yield folder
    for path in (folder, *folder.rglob("*")):
        with contextlib.suppress(OSError):
            path.chmod(0o777 if path.is_dir() else 0o666)
    shutil.rmtree(folder, ignore_errors=True)


def cli_as_other_user(*argv: str) -> subprocess.CompletedProcess[str]:
    """The command in a process of its own: as `nobody` when we are root
    (through setpriv, as a person would; Python's own switch of user cannot
    reach this venv's interpreter)."""
    as_nobody: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root, and no setpriv to run the command as another user")
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    return subprocess.run(
        [*as_nobody, sys.executable, "-m", "tui.cli", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": "/tmp"},
        cwd=Path(__file__).resolve().parent.parent,
        timeout=60,
    )


def waiting_directive(folder: Path) -> tuple[Path, str, str]:
    """A database in `folder` with one directive waiting on an escalation:
    (the database, the directive's id, the escalation's id)."""
    repo = init_git_repo(folder / "repo", {"a.txt": "a\n"})
    for path in (repo, *repo.rglob("*")):
        path.chmod(0o777 if path.is_dir() else 0o666)
    db = folder / "x.db"
    spec = directive_file(folder, repo, FAILING_STEP)
    code, _, _ = run_cli("--db", str(db), "run", str(spec), "--headless")
    assert code == 3
    did = only_directive(str(db))
    (escalation,) = json.loads(run_cli("--db", str(db), "approvals", "--json")[1])
    return db, did, escalation["id"]


def test_a_read_only_database_is_read_and_a_write_to_it_is_refused_in_one_line(
    shared_dir: Path,
) -> None:
    """`chmod 444`: list, approvals and events work; every command that
    writes used to end in SQLite's traceback ('attempt to write a readonly
    database', exit 1)."""
    db, did, escalation = waiting_directive(shared_dir)
    db.chmod(0o444)
    before = db.read_bytes()

    for reading in (["list"], ["approvals"], ["events", did]):
        done = cli_as_other_user("--db", str(db), *reading)
        assert (done.returncode, done.stderr) == (0, ""), reading
    assert did in cli_as_other_user("--db", str(db), "list").stdout

    for writing in (
        ["decide", escalation, "retry"],
        ["pause", did],
        ["limits", did, "--max-failed-steps", "5"],
        ["resume", did, "--headless"],
    ):
        done = cli_as_other_user("--db", str(db), *writing)
        assert done.returncode == 2, writing
        assert done.stderr == f"directive-tui: the database {db} is read-only:" + (
            " this command writes to it (make it writable)\n"
        ), writing
    assert db.read_bytes() == before


def test_a_database_in_a_read_only_folder_is_refused_naming_the_folder(
    shared_dir: Path,
) -> None:
    """SQLite writes -wal and -shm files beside the database: in a folder it
    may not write in, even `list` fails. It used to be called 'not a usable
    directive-tui database', as if the file were broken."""
    db, _, _ = waiting_directive(shared_dir)
    db.chmod(0o666)  # the file itself is writable: the folder is what stops it
    for leftover in shared_dir.glob("x.db-*"):
        leftover.unlink()
    before = db.read_bytes()
    shared_dir.chmod(0o555)

    done = cli_as_other_user("--db", str(db), "list")
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"directive-tui: cannot write in the folder {shared_dir} of the database {db}: "
    )
    assert done.stderr.count("\n") == 1
    assert db.read_bytes() == before


def test_a_new_database_in_a_read_only_folder_is_refused_in_one_line(shared_dir: Path) -> None:
    """The right message used to be followed by a thread's traceback
    ('Event loop is closed'): aiosqlite's worker answered after the loop
    had gone."""
    repo = init_git_repo(shared_dir / "repo", {"a.txt": "a\n"})
    spec = directive_file(shared_dir, repo, STEP_OK)
    (shared_dir / "dbs").mkdir(mode=0o555)
    (shared_dir / "dbs").chmod(0o555)
    db = shared_dir / "dbs" / "new.db"
    for _ in range(3):  # the traceback came on most tries, not all
        done = cli_as_other_user("--db", str(db), "run", str(spec), "--headless")
        assert (done.returncode, done.stdout) == (2, "")
        assert done.stderr == (
            f"directive-tui: cannot create the database {db}:"
            f" the folder {db.parent} is not writable\n"
        )
    assert not db.exists()


# -- step output on a terminal --------------------------------------------------

# Colours, a window title (OSC ended by BEL), a carriage return over the line,
# a backspace; then a failure whose message holds the output's lines.
UNRULY_STEP = (
    '[[steps]]\nname = "unruly"\n'
    "command = \"printf 'A\\\\033[31mRED\\\\033[0m \\\\033]0;title\\\\007 bs:\\\\010 cr:x\\\\ry\\\\n';"
    ' echo out; echo err >&2; exit 7"\n'
)
EVENT_LINE = re.compile(r"^\d\d:\d\d:\d\d #\d+ +\w+ +\S")


def test_step_output_keeps_one_line_per_event_and_cannot_drive_the_terminal(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """A failed step's message spans lines (its stdout and stderr), and its
    output may hold escape sequences and CRs: the text log and `approvals`
    printed them raw, so one event took two lines (`approvals | cut -c1-12`
    read `err (its fil` as an id) and a step could retitle the terminal."""
    db = str(tmp_path / "x.db")
    path = directive_file(tmp_path, make_git_repo(), UNRULY_STEP)
    code, out, _ = run_cli("--db", db, "run", str(path), "--headless")
    assert code == 3
    log = out[: out.index("waiting for approval")].splitlines()
    assert all(EVENT_LINE.match(line) for line in log), log
    assert "[unruly:executor] ARED  bs:\\x08 cr:x ⏎ y" in log[6]
    assert any(
        "command exited with 7: err ⏎ the output ended: ⏎ ARED  bs:\\x08 cr:x ⏎ y ⏎ out ⏎ err ("
        in line
        for line in log
    )

    did = only_directive(db)
    for text in (out, run_cli("--db", db, "events", did)[1], run_cli("--db", db, "approvals")[1]):
        assert not set(text) & {"\x1b", "\r", "\x07", "\x08"}
    (row,) = run_cli("--db", db, "approvals")[1].splitlines()
    assert row.endswith("while the step waits)") and " ⏎ err (its files are kept in " in row


def test_json_lines_keep_step_output_exactly_one_event_a_line(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    db = str(tmp_path / "x.db")
    path = directive_file(tmp_path, make_git_repo(), UNRULY_STEP)
    code, out, _ = run_cli("--db", db, "run", str(path), "--headless", "--json")
    assert code == 3
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert "A\x1b[31mRED\x1b[0m \x1b]0;title\x07 bs:\x08 cr:x\ry" in [e.get("line") for e in events]
    did = only_directive(db)
    assert run_cli("--db", db, "events", did, "--json")[1] == out


# -- smaller points of the command line -----------------------------------------


def test_list_counts_approvals_in_words_and_says_when_there_are_none(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    db = str(tmp_path / "x.db")
    asyncio.run(empty_database(db))
    assert run_cli("--db", db, "list") == (0, f"no directives in {db}\n", "")  # was silent
    assert run_cli("--db", db, "list", "--json") == (0, "[]\n", "")

    run_cli("--db", db, "run", str(directive_file(tmp_path, make_git_repo(), YELLOW)), "--headless")
    (row,) = run_cli("--db", db, "list")[1].splitlines()
    assert "  1 approval  cli test" in row  # was `1 approvals`


def test_an_ambiguous_id_prefix_names_the_ids_it_matches(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """`events 0` said only that the prefix matched more than one directive."""
    db = tmp_path / "x.db"

    async def seventeen_drafts() -> list[str]:  # two of them must share a first digit
        store = await Store.open(db)
        engine = DirectiveEngine(store)
        try:
            spec = chain_spec(make_git_repo(), [("a", [])])
            return [(await engine.create_directive(spec)).id for _ in range(17)]
        finally:
            await engine.close()
            await store.close()

    ids = asyncio.run(seventeen_drafts())
    first = next(c for c in "0123456789abcdef" if sum(i.startswith(c) for i in ids) > 1)
    shared = sorted(i for i in ids if i.startswith(first))
    code, out, err = run_cli("--db", str(db), "events", first)
    assert (code, out) == (2, "")
    named = ", ".join(shared[:8]) + (", and more" if len(shared) > 8 else "")
    assert err == f"directive-tui: id prefix {first!r} matches more than one directive: {named}\n"


def test_the_headless_demo_says_where_its_repository_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its last hint (`merge ID fast-forwards master`) is about a folder the
    demo made: the run never said which."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code, out, _ = run_cli("--db", str(tmp_path / "demo.db"), "demo", "--headless", "--auto")
    assert code == 0
    (repo,) = tmp_path.glob("directive-demo-*/*/.git")
    assert out.splitlines()[-1] == f"the demo's repository: {repo.parent}"


def test_a_closed_standard_output_is_an_error_not_a_silent_success(tmp_path: Path) -> None:
    """`list >&-` exited 0 having shown nothing."""
    db = tmp_path / "x.db"
    asyncio.run(empty_database(str(db)))
    done = subprocess.run(
        [
            "sh",
            "-c",
            'exec "$@" >&-',
            "sh",
            sys.executable,
            "-m",
            "tui.cli",
            "--db",
            str(db),
            "list",
        ],
        capture_output=False,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "directive-tui: the standard output is closed:"
        " give it a file (or /dev/null) for list to write to\n"
    )


def test_db_is_taken_after_the_command_too_and_an_empty_one_is_named(tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    asyncio.run(empty_database(db))
    assert run_cli("list", "--db", db) == (0, f"no directives in {db}\n", "")
    with pytest.raises(SystemExit) as exit_, redirect_stderr(io.StringIO()) as err:
        main(["--db", "", "list"])
    assert exit_.value.code == 2
    assert "argument --db: it is empty: give a database file" in err.getvalue()


def test_a_step_that_leaves_a_detached_child_ends_the_run_without_a_traceback(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """`setsid sleep &` leaves the step's session and keeps its output pipe
    open: the run used to end with 'Exception ignored in ...
    BaseSubprocessTransport.__del__ ... Event loop is closed' on stderr."""
    steps = (
        '[[steps]]\nname = "sleepy"\n'
        f'command = "setsid sleep 30 & echo $! > {tmp_path}/detached; echo started"\n'
    )
    path = directive_file(tmp_path, make_git_repo(), steps, autonomy="full_auto")
    cli = [sys.executable, "-m", "tui.cli", "--db", str(tmp_path / "x.db")]
    try:
        done = subprocess.run(
            [*cli, "run", str(path), "--headless"], capture_output=True, text=True
        )
        assert (done.returncode, done.stderr) == (0, "")
        assert "directive active -> completed" in done.stdout
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int((tmp_path / "detached").read_text()), signal.SIGKILL)
