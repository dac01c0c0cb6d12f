"""The `directive-tui` command without a screen: headless runs and their
exit codes, and the scriptable companions (list, approvals, answers,
resume, events)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from engine import connection
from engine.store import Store
from tui.cli import main


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def directive_file(tmp_path: Path, repo: Path, steps: str, **top: str) -> Path:
    head = {"title": "cli test", "goal": "exercise the command", "repo": str(repo),
            "executor": "shell", **top}  # fmt: skip
    lines = [f'{k} = "{v}"' for k, v in head.items()]
    lines += ["[verifiers]", "auto_detect = false", "llm_judge = false"]
    path = tmp_path / "d.toml"
    path.write_text("\n".join(lines) + "\n" + steps)
    return path


async def empty_database(path: str) -> None:
    await (await Store.open(path)).close()


STEP_OK = '[[steps]]\nname = "hello"\ncommand = "echo hello"\n'
# a directive-defined check that scores 0.5: yellow, so a person must answer
YELLOW = (
    STEP_OK
    + '[[verifiers.extra]]\nname = "half"\nparser = "ruff"\n'
    + "command = \"echo 'Found 10 errors'; exit 1\"\n"
)


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    """A file the test touches to let a held step end (see `held_until`);
    touched at teardown too, so no held step outlives a failed test."""
    path = tmp_path / "gate"
    yield path
    path.touch()


def held_until(gate: Path) -> str:
    """A step's command that runs until the test opens `gate`: the test, not
    a sleep, decides how long the step runs."""
    return f"until [ -e {gate} ]; do sleep 0.05; done"


def only_directive(db: str) -> str:
    """The id of the one directive in `db`, as `list --json` gives it."""
    (did,) = [d["id"] for d in json.loads(run_cli("--db", db, "list", "--json")[1])]
    return did


def test_headless_run_prints_events_and_exits_0_when_completed(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    path = directive_file(tmp_path, make_git_repo(), STEP_OK)
    code, out, _ = run_cli("--db", str(tmp_path / "x.db"), "run", str(path), "--headless")
    assert code == 0
    lines = out.splitlines()
    did = only_directive(str(tmp_path / "x.db"))
    assert "#1" in lines[0] and f"directive {did} created: cli test" in lines[0]
    assert "[hello:executor] hello" in out
    assert any(line.endswith("directive active -> completed") for line in lines)


def test_headless_json_lines_are_events(tmp_path: Path, make_git_repo: Callable[..., Path]) -> None:
    path = directive_file(tmp_path, make_git_repo(), STEP_OK)
    code, out, _ = run_cli("--db", str(tmp_path / "x.db"), "run", str(path), "--headless", "--json")
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    statuses = [e["new_status"] for e in events if e["type"] == "directive_status_changed"]
    assert statuses[-1] == "completed"


def test_waiting_for_approval_exits_3_then_approve_and_resume_completes(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    db = str(tmp_path / "x.db")
    path = directive_file(tmp_path, make_git_repo(), YELLOW)
    code, out, _ = run_cli("--db", db, "run", str(path), "--headless")
    assert code == 3
    assert "waiting for approval" in out and "approve" in out

    code, out, _ = run_cli("--db", db, "approvals", "--json")
    (pending,) = json.loads(out)
    assert pending["kind"] == "step_review"

    code, out, _ = run_cli("--db", db, "list")
    assert "1 approval " in out and "active" in out

    code, out, _ = run_cli("--db", db, "approve", pending["id"][:6])  # a unique prefix will do
    assert code == 0 and "approved" in out
    code, out, err = run_cli("--db", db, "approve", pending["id"])  # a retried script
    assert (code, out) == (0, f"approval {pending['id']}: already approved, nothing changed\n")
    code, out, err = run_cli("--db", db, "deny", pending["id"])
    assert code == 2 and "already approved" in err

    did = only_directive(db)
    code, out, _ = run_cli("--db", db, "resume", did, "--headless")
    assert code == 0 and "directive active -> completed" in out

    code, out, _ = run_cli("--db", db, "events", did, "--json")
    seqs = [json.loads(line)["seq"] for line in out.splitlines()]
    assert seqs == list(range(1, len(seqs) + 1))


def test_request_changes_needs_a_comment(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    db = str(tmp_path / "x.db")
    path = directive_file(tmp_path, make_git_repo(), YELLOW)
    run_cli("--db", db, "run", str(path), "--headless")
    (pending,) = json.loads(run_cli("--db", db, "approvals", "--json")[1])
    code, out, _ = run_cli("--db", db, "request-changes", pending["id"], "-m", "shorter please")
    did = only_directive(db)
    # in words; and, as no engine runs the database, the command that carries on
    assert (code, out.splitlines()) == (
        0,
        [
            f"approval {pending['id']}: changes requested",
            f"nothing runs this database now: `directive-tui --db {db} resume {did} --headless`"
            " carries on",
        ],
    )


def test_a_bad_directive_file_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    bad = tmp_path / "bad.toml"
    bad.write_text('title = "x"\ngoal = "y"\nrepo = "/no/such/folder"\n')
    code, out, err = run_cli("--db", str(db), "run", str(bad), "--headless")
    assert code == 2 and out == ""
    assert "repo" in err and "does not exist" in err
    assert not db.exists()


def test_unknown_ids_exit_2_with_a_message(tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    asyncio.run(empty_database(db))
    code, _, err = run_cli("--db", db, "approve", "nope")
    assert code == 2 and "no approval with id 'nope'" in err
    code, _, err = run_cli("--db", db, "resume", "nope", "--headless")
    assert code == 2 and "no directive with id 'nope'" in err


def test_stop_from_the_command_line(tmp_path: Path, make_git_repo: Callable[..., Path]) -> None:
    db = str(tmp_path / "x.db")
    path = directive_file(tmp_path, make_git_repo(), YELLOW)
    run_cli("--db", db, "run", str(path), "--headless")
    did = only_directive(db)
    code, out, _ = run_cli("--db", db, "stop", did)
    assert code == 0 and "stopped" in out
    with sqlite3.connect(db) as conn:
        assert (
            conn.execute(
                "SELECT COUNT(*) FROM approval_requests WHERE status = 'pending'"
            ).fetchone()[0]
            == 0
        )
    code, out, _ = run_cli("--db", db, "stop", did)
    assert (code, out) == (0, f"directive {did}: already stopped\n")
    code, _, err = run_cli("--db", db, "pause", did)
    assert code == 2
    assert f"directive {did} is stopped: only a directive that is planning or active" in err


def test_pausing_a_paused_directive_says_so_plainly(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    db = str(tmp_path / "x.db")
    run_cli("--db", db, "run", str(directive_file(tmp_path, make_git_repo(), YELLOW)), "--headless")
    did = only_directive(db)
    assert run_cli("--db", db, "pause", did)[:2] == (0, f"directive {did}: paused\n")
    assert run_cli("--db", db, "pause", did)[:2] == (0, f"directive {did}: already paused\n")


def test_a_tripped_breaker_is_raised_from_the_command_line_then_resumed(
    tmp_path: Path, make_git_repo: Callable[..., Path], gate: Path
) -> None:
    db = str(tmp_path / "x.db")
    steps = (
        f'[[steps]]\nname = "slow"\ncommand = "{held_until(gate)}"\n'
        '[[steps]]\nname = "after"\ncommand = "echo after"\ndepends_on = ["slow"]\n'
    )
    path = directive_file(tmp_path, make_git_repo(), steps, autonomy="full_auto")
    path.write_text(path.read_text() + "[limits]\nmax_wall_time_minutes = 0.01\n")
    code, out, _ = run_cli("--db", db, "run", str(path), "--headless")
    assert code == 4 and "breaker wall_time tripped" in out
    did = only_directive(db)
    # what to type next, as for an approval
    assert out.splitlines()[-3].startswith("paused: wall_time breaker: wall time")
    assert out.splitlines()[-2:] == [
        f"  raise the limit: directive-tui --db {db} limits {did} --max-wall-time-minutes 0.02",
        f"  then: directive-tui --db {db} resume {did} --headless",
    ]

    code, out, _ = run_cli("--db", db, "limits", did)
    assert code == 0 and "still over a limit: wall time" in out
    code, out, _ = run_cli("--db", db, "limits", did, "--json")  # what a script decides on
    shown = json.loads(out)
    assert (code, shown["directive_id"], shown["status"]) == (0, did, "paused")
    assert shown["limits"]["max_wall_time_minutes"] == 0.01
    assert shown["used"]["max_wall_time_minutes"] >= 0.01 and shown["used"]["max_failed_steps"] == 0
    assert shown["over_limit"]["breaker"] == "wall_time"
    assert shown["over_limit"]["reason"].startswith("wall time")
    code, _, err = run_cli("--db", db, "resume", did, "--headless")
    assert code == 2 and "raise the limit first" in err

    def saved() -> tuple[str, int]:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT spec, last_seq FROM directives").fetchone()

    before = saved()
    code, _, err = run_cli("--db", db, "limits", did, "--max-wall-time-minutes", "-1")
    assert code == 2
    assert "limits not changed: --max-wall-time-minutes: must be greater than 0, got -1" in err
    assert saved() == before

    code, out, _ = run_cli(
        "--db", db, "limits", did, "--max-wall-time-minutes", "10", "--max-cost-usd", "none",
        "--json",
    )  # fmt: skip
    shown = json.loads(out)
    assert (shown["limits"]["max_wall_time_minutes"], shown["limits"]["max_cost_usd"]) == (10, None)
    assert shown["over_limit"] is None
    code, out, _ = run_cli("--db", db, "limits", did, "--max-wall-time-minutes", "10")
    assert code == 0
    assert "max_wall_time_minutes          10" in out
    assert f"`directive-tui --db {db} resume {did} --headless`" in out  # the same database
    gate.touch()  # run again, the step goes straight through
    code, out, _ = run_cli("--db", db, "resume", did, "--headless")
    assert code == 0 and "directive active -> completed" in out


def test_checkpoints_and_a_reset_by_number_from_the_command_line(
    tmp_path: Path, make_git_repo
) -> None:
    """`checkpoints` lists where the directive started and each passed step;
    `reset ID N` says what would run again, and with --yes does it."""
    repo = make_git_repo({"README.md": "hi\n"})
    steps = (
        '[[steps]]\nname = "one"\ncommand = "echo 1 > one.txt"\nverifiers = ["ok"]\n'
        '[[steps]]\nname = "two"\ndepends_on = ["one"]\ncommand = "echo 2 > two.txt"\n'
        'verifiers = ["half"]\n[[verifiers.extra]]\nname = "ok"\ncommand = "true"\n'
    )
    path = directive_file(tmp_path, repo, steps + YELLOW.removeprefix(STEP_OK))
    db = str(tmp_path / "x.db")
    code, out, _ = run_cli("--db", db, "run", str(path), "--headless")
    assert code == 3  # `two` is yellow: it waits for a person, the directive is live
    with sqlite3.connect(db) as conn:
        (did,) = conn.execute("SELECT id FROM directives").fetchone()

    code, out, _ = run_cli("--db", db, "checkpoints", did)
    assert code == 0
    assert [line.split()[1:] for line in out.splitlines()] == [
        ["#0", "start:", "before", "any", "step"],
        ["#1", "one", "(attempt", "1)"],
    ]
    assert run_cli("--db", db, "reset", did, "0")[1] == (
        "would run again: one, two; add --yes to reset\n"
    )
    code, out, _ = run_cli("--db", db, "reset", did, "#0", "--yes")
    assert (code, out) == (0, "reset; to run again: one, two\n")
    assert run_cli("--db", db, "checkpoints", did)[1].count("\n") == 1  # only the start
    code, _, err = run_cli("--db", db, "reset", did, "3")
    assert code == 2 and "no checkpoint #3" in err


def test_a_headless_run_whose_reader_goes_away_ends_and_can_be_resumed(
    tmp_path: Path, make_git_repo: Callable[..., Path], gate: Path
) -> None:
    """`run --headless | head -2`: the run used to wait for ever for a printer
    that had died on the broken pipe, holding the database's lease."""
    import subprocess
    import sys

    steps = f'[[steps]]\nname = "slow"\ncommand = "{held_until(gate)}"\n'
    path = directive_file(tmp_path, make_git_repo(), steps, autonomy="full_auto")
    db = str(tmp_path / "x.db")
    cli = [sys.executable, "-m", "tui.cli", "--db", db]
    with subprocess.Popen(
        [*cli, "run", str(path), "--headless"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as run:
        assert run.stdout is not None
        assert " created: " in run.stdout.readline().decode()
        run.stdout.close()  # the reader goes away
        assert run.wait(timeout=30) == 141  # while its step still runs
        assert run.stderr is not None and run.stderr.read() == b""  # no traceback

    gate.touch()  # run again, the step goes straight through
    (listed,) = json.loads(subprocess.run([*cli, "list", "--json"], capture_output=True).stdout)
    resumed = subprocess.run([*cli, "resume", listed["id"], "--headless"], capture_output=True)
    assert resumed.returncode == 0, resumed.stderr  # the lease was let go
    assert "directive active -> completed" in resumed.stdout.decode()


FAILING_STEP = '[[steps]]\nname = "boom"\ncommand = "echo boom >&2; exit 1"\n'


def test_the_answer_hint_offers_only_what_the_approval_takes(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """A step review is answered by approve / deny / request-changes, an
    escalation by `decide`; the hint and the refusal say only those, as the
    command line spells them, and with the database they were given."""
    db = str(tmp_path / "review.db")
    code, out, _ = run_cli("--db", db, "run", str(directive_file(tmp_path, make_git_repo(), YELLOW)), "--headless")  # fmt: skip
    assert code == 3
    ((review, kind, options),) = [line.split()[:3] for line in run_cli("--db", db, "approvals")[1].splitlines()]  # fmt: skip
    assert (kind, options) == ("step_review", "[approve/request-changes/deny]")
    me = f"directive-tui --db {db}"
    hint = out[out.index("answer with one of:") :].splitlines()
    assert [line.strip() for line in hint[1:4]] == [
        f"{me} approve {review}",
        f'{me} request-changes {review} -m "what to change"',
        f"{me} deny {review}",
    ]
    assert hint[4].strip().startswith(f"then: {me} resume ")
    code, _, err = run_cli("--db", db, "decide", review[:6], "skip")
    assert code == 2
    assert f"approval {review} (step_review) takes approve, request-changes, deny, not skip" in err
    assert "request_changes" not in err

    db = str(tmp_path / "escalation.db")
    path = directive_file(tmp_path, make_git_repo(name="repo2"), FAILING_STEP)
    code, out, _ = run_cli("--db", db, "run", str(path), "--headless")
    assert code == 3
    (escalation,) = json.loads(run_cli("--db", db, "approvals", "--json")[1])
    hint = out[out.index("answer with one of:") :].splitlines()
    decide = f"{me.replace('review', 'escalation')} decide {escalation['id']}"
    assert [line.strip() for line in hint[1:5]] == [
        f"{decide} {answer}" for answer in ("retry", "skip", "replan", "stop")
    ]  # one pasteable line each
    assert hint[5].strip().startswith("then: ")
    code, _, err = run_cli("--db", db, "approve", escalation["id"])
    assert code == 2 and "takes retry, skip, replan, stop, not approve" in err


def test_hints_name_the_database_from_the_environment_too(
    tmp_path: Path, make_git_repo: Callable[..., Path], monkeypatch
) -> None:
    db = tmp_path / "env.db"
    monkeypatch.setenv("DIRECTIVE_TUI_DB", str(db))
    code, out, _ = run_cli("run", str(directive_file(tmp_path, make_git_repo(), YELLOW)), "--headless")  # fmt: skip
    assert code == 3 and f"then: directive-tui --db {db} resume " in out


def test_a_missing_database_is_not_created_by_commands_that_read_it(tmp_path: Path) -> None:
    """A mistyped --db used to answer with an empty list (exit 0), leaving
    a new empty database and its folders behind."""
    db = tmp_path / "typo" / "x.db"
    for argv in (["list"], ["approvals"], ["events", "abc"], ["diff", "abc"],
                 ["checkpoints", "abc"], ["limits", "abc"], ["approve", "abc"],
                 ["resume", "abc", "--headless"]):  # fmt: skip
        code, out, err = run_cli("--db", str(db), *argv)
        assert (code, out, err) == (2, "", f"directive-tui: no database at {db}\n"), argv
    assert not db.parent.exists()
    empty = tmp_path / "empty.db"  # an empty file is not made into one either
    empty.write_bytes(b"")
    code, _, err = run_cli("--db", str(empty), "list")
    assert (code, err) == (2, f"directive-tui: no database at {empty} (an empty file)\n")
    assert empty.stat().st_size == 0


def test_a_folder_given_as_the_database_is_refused_plainly(tmp_path: Path) -> None:
    for argv in (["list"], ["run", "d.toml", "--headless"]):
        code, _, err = run_cli("--db", str(tmp_path), *argv)
        assert code == 2, argv
        assert err == f"directive-tui: {tmp_path} is a folder: --db takes a database file, such as {tmp_path / 'directives.db'}\n"  # fmt: skip


def test_another_programs_sqlite_database_is_refused_and_left_as_it_was(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """`--db` on some other program's SQLite file used to be taken as a new
    database: even `list` added the store's tables to it (and switched it
    to WAL), and `run` went on to keep directives in it."""
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE users (id INTEGER, name TEXT)")
        conn.execute("INSERT INTO users VALUES (1, 'ada')")
    conn.close()
    before = db.read_bytes()
    path = directive_file(tmp_path, make_git_repo(), STEP_OK)
    for argv in (["list"], ["events", "abc"], ["run", str(path), "--headless"]):
        code, out, err = run_cli("--db", str(db), *argv)
        assert (code, out) == (2, ""), argv
        assert err == (
            f"directive-tui: {db} is another program's SQLite database (its tables: users):"
            " give --db a file of directive-tui's own, or a new path\n"
        )
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("app")) == ["app.db"]


def test_a_database_another_program_keeps_locked_is_said_to_be_busy(
    tmp_path: Path, make_git_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write lock held past the store's wait (a backup, a sqlite3 shell
    left in a transaction) ended `run` in a traceback (exit 1); at opening
    it read `not a usable directive-tui database`, as if the file were bad.
    (The wait is 10 s; half a second here, and the message says so.)"""
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_S", 0.5)
    db = tmp_path / "x.db"
    asyncio.run(empty_database(str(db)))
    path = directive_file(tmp_path, make_git_repo(), STEP_OK)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        code, out, err = run_cli("--db", str(db), "run", str(path), "--headless")
        assert (code, out) == (75, "")  # try again later, not bad input
        assert err == (
            f"directive-tui: {db} is busy: another program kept it locked for longer than"
            " this command waits (0.5 s); try again once it is done\n"
        )
        assert run_cli("--db", str(db), "list") == (
            0,
            f"no directives in {db}\n",
            "",
        )  # reading is not held up
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert run_cli("--db", str(db), "run", str(path), "--headless")[0] == 0


def test_json_without_headless_is_refused_rather_than_opening_the_app(tmp_path: Path) -> None:
    """A CI job that forgot --headless used to hang in the full-screen app."""
    for argv in (["run", "d.toml", "--json"], ["demo", "--json"], ["resume", "abc", "--json"]):
        try:
            run_cli("--db", str(tmp_path / "x.db"), *argv)
        except SystemExit as exit_:
            assert exit_.code == 2, argv
        else:
            raise AssertionError(f"{argv} was accepted")
    assert not (tmp_path / "x.db").exists()


def test_the_app_without_a_terminal_is_refused_rather_than_left_waiting(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """A CI job that forgot --headless (stdin not a terminal, stderr to a
    log) used to run the app there: the directive ran, then the job hung on
    a screen nobody could quit; with stdin closed it failed with a traceback."""
    path = directive_file(tmp_path, make_git_repo(), STEP_OK)
    db = tmp_path / "x.db"
    for argv, stdin in (
        (["run", str(path)], subprocess.DEVNULL),
        (["run", str(path)], None),  # closed below
        ([], subprocess.DEVNULL),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "tui.cli", "--db", str(db), *argv],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parent.parent,
            preexec_fn=(lambda: os.close(0)) if stdin is None else None,
        )
        assert (result.returncode, result.stdout) == (2, ""), argv
        hint = "add --headless to run without a screen" if argv else "the commands"
        assert result.stderr.startswith("directive-tui: the app needs a terminal, and stdin"), argv
        assert hint in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    assert not db.exists()


def test_merge_names_the_branch_and_a_second_merge_is_already_done(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    import subprocess

    repo = make_git_repo()
    db = str(tmp_path / "x.db")
    steps = '[[steps]]\nname = "write"\ncommand = "echo hi > out.txt"\n'
    assert run_cli("--db", db, "run", str(directive_file(tmp_path, repo, steps)), "--headless")[0] == 0  # fmt: skip
    did = only_directive(db)
    tip = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", f"directive/{did}/integration"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    code, out, _ = run_cli("--db", db, "merge", did)
    assert code == 0 and out.startswith(f"fast-forwarded main to {tip[:12]} (it was at "), out
    assert (repo / "out.txt").read_text() == "hi\n"  # the checkout moved with its branch
    assert run_cli("--db", db, "merge", did)[:2] == (
        0,
        f"already merged: main has the directive's result ({tip[:12]})\n",
    )


def test_a_merge_whose_log_line_cannot_be_written_still_says_it_merged(
    tmp_path: Path, make_git_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The branch moved, then the log line's write found the database busy:
    `merge` exited 75 'try again', and again said only 'already merged', the
    old commit and the command that undoes the move never shown."""
    repo = make_git_repo()
    db = str(tmp_path / "x.db")
    steps = '[[steps]]\nname = "write"\ncommand = "echo hi > out.txt"\n'
    assert run_cli("--db", db, "run", str(directive_file(tmp_path, repo, steps)), "--headless")[0] == 0  # fmt: skip
    did = only_directive(db)
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_S", 0.3)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a backup, a sqlite3 shell left in a transaction
    try:
        code, out, _ = run_cli("--db", db, "merge", did)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 0 and out.startswith("fast-forwarded main to "), out
    assert "to undo, while main is still at" in out
    assert (repo / "out.txt").read_text() == "hi\n"


def test_a_limit_is_switched_off_with_none(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    db = str(tmp_path / "x.db")
    run_cli("--db", db, "run", str(directive_file(tmp_path, make_git_repo(), YELLOW)), "--headless")
    did = only_directive(db)
    code, out, _ = run_cli("--db", db, "limits", did, "--max-cost-usd", "none")
    assert code == 0 and out.splitlines()[0].split()[:2] == ["max_cost_usd", "none"]
    with sqlite3.connect(db) as conn:
        (spec,) = conn.execute("SELECT spec FROM directives").fetchone()
    assert json.loads(spec)["limits"]["max_cost_usd"] is None
    code, out, _ = run_cli("--db", db, "limits", did, "--max-cost-usd", "7.5")
    assert out.splitlines()[0].split()[:2] == ["max_cost_usd", "7.5"]


def test_a_limit_out_of_range_is_refused_in_plain_words(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    db = str(tmp_path / "x.db")
    run_cli("--db", db, "run", str(directive_file(tmp_path, make_git_repo(), YELLOW)), "--headless")
    did = only_directive(db)
    before = run_cli("--db", db, "limits", did)[1]
    for flag, value, says in (
        ("--max-failed-steps", "0", "--max-failed-steps: must be at least 1, got 0"),
        ("--max-cost-usd", "-3", "--max-cost-usd: must be greater than 0, got -3"),
    ):
        code, out, err = run_cli("--db", db, "limits", did, flag, value)
        assert (code, out, err) == (2, "", f"directive-tui: limits not changed: {says}\n")
    assert run_cli("--db", db, "limits", did)[1] == before


def test_an_empty_id_is_refused(tmp_path: Path, make_git_repo: Callable[..., Path]) -> None:
    db = str(tmp_path / "x.db")
    run_cli("--db", db, "run", str(directive_file(tmp_path, make_git_repo(), YELLOW)), "--headless")
    code, _, err = run_cli("--db", db, "events", "")
    assert code == 2 and "the directive id is empty" in err
    code, _, err = run_cli("--db", db, "approve", "")
    assert code == 2 and "the approval id is empty" in err


def test_run_refuses_a_file_that_needs_a_key_it_does_not_have(
    tmp_path: Path, make_git_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    path = directive_file(tmp_path, make_git_repo(), "", planner="anthropic", executor="agent")
    db = tmp_path / "x.db"
    code, out, err = run_cli("--db", str(db), "run", str(path), "--headless")
    assert code == 2 and out == ""
    assert 'planner = "anthropic" and executor = "agent" need ANTHROPIC_API_KEY' in err
    assert not db.exists()  # nothing written


def test_approvals_name_the_directive_each_one_belongs_to(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    db = str(tmp_path / "x.db")
    long_title = "Rename every handler in the payments service"
    for title, repo in (("docs", "repo1"), (long_title, "repo2")):
        path = directive_file(tmp_path, make_git_repo(name=repo), YELLOW, title=title)
        assert run_cli("--db", db, "run", str(path), "--headless")[0] == 3
    lines = run_cli("--db", db, "approvals")[1].splitlines()
    # after the options, each directive's title (shortened, in a column), then the summary
    (first, second) = json.loads(run_cli("--db", db, "approvals", "--json")[1])
    assert first["directive_id"] != second["directive_id"]  # the JSON keeps its ids
    # after the options, each directive's id and title (shortened, in a
    # column: two runs of one file share a title), then the summary
    named = [line.split("]  ", 1)[1].split("  step hello scored", 1)[0] for line in lines]
    assert named == [
        f"{first['directive_id']} {'docs'.ljust(24)}",
        f"{second['directive_id']} Rename every handler in…",
    ]


DIAMOND = (
    '[[steps]]\nname = "make"\ncommand = "true"\n'
    '[[steps]]\nname = "lint"\ncommand = "true"\ndepends_on = ["make"]\n'
    '[[steps]]\nname = "test"\ncommand = "true"\ndepends_on = ["make"]\n'
    '[[steps]]\nname = "after"\ncommand = "true"\ndepends_on = ["lint", "test"]\n'
)


def test_a_chain_is_logged_by_layers_and_older_events_as_they_were(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """Steps that run side by side are shown together; an event stored
    before the layers were recorded still reads as its step names in a row."""
    db = str(tmp_path / "x.db")
    code, out, _ = run_cli("--db", db, "run", str(directive_file(tmp_path, make_git_repo(), DIAMOND)), "--headless")  # fmt: skip
    assert code == 0 and "chain created: make -> {lint, test} -> after\n" in out
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE directive_events SET data = json_remove(data, '$.layers')")
    did = only_directive(db)
    assert "chain created: make -> lint -> test -> after\n" in run_cli("--db", db, "events", did)[1]


def test_a_quiet_run_whose_reader_goes_away_ends_without_waiting_to_print(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """The step prints nothing for a long while: the run notices the closed
    pipe by itself (it used to wait for the next line, the step's end)."""
    import subprocess
    import sys

    steps = '[[steps]]\nname = "quiet"\ncommand = "sleep 60"\n'
    path = directive_file(tmp_path, make_git_repo(), steps, autonomy="full_auto")
    cli = [sys.executable, "-m", "tui.cli", "--db", str(tmp_path / "x.db")]
    with subprocess.Popen(
        [*cli, "run", str(path), "--headless"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as run:
        assert run.stdout is not None
        assert " created: " in run.stdout.readline().decode()
        run.stdout.close()
        assert run.wait(timeout=30) == 141  # long before the step's 60 s


def test_with_no_replans_left_replan_is_neither_offered_nor_taken(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """Following the hint used to trip the breaker and pause the directive."""
    steps = '[[steps]]\nname = "fails"\ncommand = "false"\n'
    path = directive_file(tmp_path, make_git_repo(), steps)
    path.write_text(path.read_text() + "[limits]\nmax_chain_regenerations = 0\n")
    db = str(tmp_path / "x.db")
    code, out, _ = run_cli("--db", db, "run", str(path), "--headless")
    assert code == 3
    (approval,) = json.loads(run_cli("--db", db, "approvals", "--json")[1])
    for answer in ("retry", "skip", "stop"):
        assert f"directive-tui --db {db} decide {approval['id']} {answer}\n" in out
    assert f"decide {approval['id']} replan" not in out
    assert "[retry/skip/stop]" in run_cli("--db", db, "approvals")[1]
    code, _, err = run_cli("--db", db, "decide", approval["id"], "replan")
    assert code == 2 and "no replans left (0/0)" in err


def test_changes_to_a_plan_the_file_lists_are_neither_offered_nor_taken(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """A new plan would list the file's steps again: it used up a replan."""
    path = directive_file(tmp_path, make_git_repo(), STEP_OK, autonomy="manual")
    db = str(tmp_path / "x.db")
    code, out, _ = run_cli("--db", db, "run", str(path), "--headless")
    assert code == 3
    (plan,) = json.loads(run_cli("--db", db, "approvals", "--json")[1])
    me = f"directive-tui --db {db}"
    hint = out[out.index("answer with one of:") :].splitlines()
    assert [line.strip() for line in hint[1:3]] == [
        f"{me} approve {plan['id']}",
        f"{me} deny {plan['id']}",
    ]
    assert hint[3].strip().startswith("then: ")
    assert "[approve/deny]" in run_cli("--db", db, "approvals")[1]
    code, _, err = run_cli("--db", db, "request-changes", plan["id"], "-m", "split it")
    assert code == 2
    assert "come from the directive file, so a new plan would be the same: edit the file" in err
    assert json.loads(run_cli("--db", db, "approvals", "--json")[1]) == [plan]  # still waiting


def test_reset_says_up_front_that_a_step_runs_in_another_process(
    tmp_path: Path, make_git_repo: Callable[..., Path], gate: Path
) -> None:
    """The preview (no --yes) used to list what would run again, and the
    reset itself was then refused: both say it now."""
    import subprocess
    import sys
    import time

    steps = f'[[steps]]\nname = "slow"\ncommand = "{held_until(gate)}"\n'
    path = directive_file(tmp_path, make_git_repo(), steps, autonomy="full_auto")
    db = str(tmp_path / "x.db")

    def running() -> str | None:
        """The directive's id once its step runs."""
        listed = json.loads(run_cli("--db", db, "list", "--json")[1] or "[]")
        did = listed[0]["id"] if listed else None
        events = run_cli("--db", db, "events", did)[1] if did else ""
        return did if "step slow: ready -> running" in events else None

    cli = [sys.executable, "-m", "tui.cli", "--db", db]
    with subprocess.Popen([*cli, "run", str(path), "--headless"], stdout=subprocess.PIPE) as run:
        deadline = time.monotonic() + 20
        while not (did := running()):
            assert time.monotonic() < deadline, "the step never started"
            time.sleep(0.05)
        refusal = "cannot reset while slow runs in another directive-tui: pause the directive there"
        for yes in ([], ["--yes"]):
            code, out, err = run_cli("--db", db, "reset", did, "0", *yes)
            assert (code, out) == (2, "") and refusal in err, err
        gate.touch()
        assert run.wait(timeout=30) == 0


def test_a_stop_while_the_repository_is_gone_is_tidied_by_a_later_command(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """`stop` could not remove the worktrees from a folder moved away: it
    says so, and `checkpoints` (once the folder is back) removes them."""
    import subprocess

    repo = make_git_repo()
    db = str(tmp_path / "x.db")
    assert run_cli("--db", db, "run", str(directive_file(tmp_path, repo, YELLOW)), "--headless")[0] == 3  # fmt: skip
    did = only_directive(db)

    def worktrees() -> int:
        listed = subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True)
        return len(listed.stdout.splitlines())

    assert worktrees() > 1  # the waiting step's, and the integration worktree
    away = repo.rename(tmp_path / "away")
    assert run_cli("--db", db, "stop", did)[:2] == (0, f"directive {did}: stopped\n")
    assert f"{repo} is gone, so its worktrees stay" in run_cli("--db", db, "events", did)[1]
    away.rename(repo)
    code, out, _ = run_cli("--db", db, "checkpoints", did)
    assert code == 0 and "start: before any step" in out
    assert worktrees() == 1
    # and the notice the stop could not write: here, that no step passed with a change
    assert run_cli("--db", db, "events", did)[1].endswith("no step changed anything: nothing to merge\n")  # fmt: skip


def test_list_tells_skipped_steps_from_passed_ones(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    db = str(tmp_path / "x.db")
    path = directive_file(tmp_path, make_git_repo(), FAILING_STEP + STEP_OK)
    assert run_cli("--db", db, "run", str(path), "--headless")[0] == 3
    (escalation,) = json.loads(run_cli("--db", db, "approvals", "--json")[1])
    assert run_cli("--db", db, "decide", escalation["id"], "skip")[0] == 0
    did = only_directive(db)
    assert run_cli("--db", db, "resume", did, "--headless")[0] == 0
    assert " completed  2/2 steps (1 skipped)  $0.00  0 approvals  cli test" in run_cli("--db", db, "list")[1]  # fmt: skip
    (row,) = json.loads(run_cli("--db", db, "list", "--json")[1])
    assert (row["steps_done"], row["steps_skipped"], row["steps_total"]) == (2, 1, 2)


def test_a_run_waiting_while_the_repository_is_gone_says_so_before_its_answers(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """The answers it listed were each refused (`the repository folder ...
    is gone`), and nothing had said why the wait could not be ended."""
    db = str(tmp_path / "x.db")
    repo = make_git_repo()
    path = directive_file(tmp_path, repo, YELLOW)
    assert run_cli("--db", db, "run", str(path), "--headless")[0] == 3
    did = only_directive(db)
    moved = repo.rename(repo.with_name("moved"))

    code, out, _ = run_cli("--db", db, "resume", did, "--headless")
    assert code == 3
    waiting = out[out.index("the repository folder") :].splitlines()
    assert waiting[0] == (
        f"the repository folder {repo} is gone: put it back before answering"
        " (until then only deny and stop are taken)"
    )
    assert waiting[1].startswith("waiting for approval")
    (pending,) = json.loads(run_cli("--db", db, "approvals", "--json")[1])
    assert run_cli("--db", db, "approve", pending["id"])[0] == 2

    moved.rename(repo)
    code, out, _ = run_cli("--db", db, "resume", did, "--headless")
    assert code == 3 and "is gone" not in out


def test_an_answered_escalation_says_which_way_it_went(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """`decide ID stop` printed `resolved`, as retry, skip and replan did."""
    db = str(tmp_path / "x.db")
    path = directive_file(tmp_path, make_git_repo(), YELLOW)
    run_cli("--db", db, "run", str(path), "--headless")
    (review,) = json.loads(run_cli("--db", db, "approvals", "--json")[1])
    code, out, _ = run_cli("--db", db, "deny", review["id"])
    (escalation,) = json.loads(run_cli("--db", db, "approvals", "--json")[1])
    assert (code, out.splitlines()) == (  # the deny opened an escalation: named, with its answers
        0,
        [
            f"approval {review['id']}: denied",
            f"waiting for approval {escalation['id']}: {escalation['summary']}",
            f"  its answers: directive-tui --db {db} approvals",
        ],
    )
    assert run_cli("--db", db, "decide", escalation["id"][:5], "stop") == (
        0,
        f"approval {escalation['id']}: resolved (stop)\n",
        "",
    )


def test_help_lists_the_exit_codes_a_script_branches_on() -> None:
    """They were only in the README: a CI author reading --help could not
    tell waiting (3) from paused (4)."""
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    lines = out.getvalue().split("exit codes:\n")[1].splitlines()
    said = {int(line.split()[0]): line for line in lines if line.split()[0].isdigit()}
    for code, says in ((0, "completed"), (1, "failed"), (2, "bad input"), (3, "approval"),
                       (4, "paused"), (130, "interrupted"), (141, "output was closed")):  # fmt: skip
        assert says in said[code], code


def test_hints_name_the_database_by_its_full_path(
    tmp_path: Path, make_git_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Typed as `--db x.db`, the hints still reach it from another folder."""
    path = directive_file(tmp_path, make_git_repo(), YELLOW)
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli("--db", "x.db", "run", str(path), "--headless")
    assert code == 3
    assert f"directive-tui --db {tmp_path / 'x.db'} approve " in out
    assert "--db x.db" not in out


def test_hints_name_the_program_by_its_path_when_the_shell_would_not_find_it(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """Run as .venv/bin/directive-tui with that folder not on PATH, the
    pasted hint said `directive-tui ...`: command not found."""
    import subprocess
    import sys

    program = Path(sys.executable).parent / "directive-tui"
    path = directive_file(tmp_path, make_git_repo(), YELLOW)
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    db = tmp_path / "x.db"
    ran = subprocess.run(
        [str(program), "--db", str(db), "run", str(path), "--headless"],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 3
    assert f"{program} --db {db} approve " in ran.stdout


def test_the_last_events_of_a_long_log_and_following_one_that_has_ended(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """A step's output is an event a line: `--last N` shows where it is
    without the flood; `--follow` on a directive that has ended prints
    what there is and exits as its run did."""
    db = str(tmp_path / "x.db")
    noisy = '[[steps]]\nname = "noisy"\ncommand = "seq 1 500"\n'
    path = directive_file(tmp_path, make_git_repo(), noisy, autonomy="full_auto")
    assert run_cli("--db", db, "run", str(path), "--headless")[0] == 0
    did = only_directive(db)
    whole = run_cli("--db", db, "events", did)[1].splitlines()
    assert len(whole) > 500
    code, out, _ = run_cli("--db", db, "events", did, "--last", "3")
    assert (code, out.splitlines()) == (0, whole[-3:])
    code, out, _ = run_cli("--db", db, "events", did, "--after", str(len(whole) - 1), "--last", "5")
    assert (code, out.splitlines()) == (0, whole[-1:])  # both: the narrower wins
    err = io.StringIO()
    with redirect_stderr(err), pytest.raises(SystemExit) as refused:
        main(["--db", db, "events", did, "--last", "-2"])
    assert refused.value.code == 2 and "'-2' is not a count" in err.getvalue()

    assert run_cli("--db", db, "events", did, "--last", "1", "--follow")[:2] == (
        0,
        whole[-1] + "\n",
    )
    stopped = directive_file(tmp_path, make_git_repo(name="other"), YELLOW, title="stopped")
    assert run_cli("--db", db, "run", str(stopped), "--headless")[0] == 3
    (other,) = [
        d["id"] for d in json.loads(run_cli("--db", db, "list", "--json")[1]) if d["id"] != did
    ]
    run_cli("--db", db, "stop", other)
    code, out, _ = run_cli("--db", db, "events", other, "--follow")
    assert code == 1 and "directive active -> stopped" in out


def test_a_replan_from_the_command_line_runs_no_step_in_the_command(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """`decide ID replan` made the command's own engine a driver: it claimed
    the new chain's first step and started its command, then cut it off as
    it exited (while the app could be the one running the database)."""
    steps = '[[steps]]\nname = "fails"\ncommand = "false"\n'
    db = str(tmp_path / "x.db")
    path = directive_file(tmp_path, make_git_repo(), steps)
    assert run_cli("--db", db, "run", str(path), "--headless")[0] == 3
    (approval,) = json.loads(run_cli("--db", db, "approvals", "--json")[1])
    code, _, err = run_cli("--db", db, "decide", approval["id"], "replan")
    assert code == 0, err
    printed = run_cli("--db", db, "events", only_directive(db), "--json")[1]
    events = [json.loads(line) for line in printed.splitlines()]
    replanned = next(
        i for i, e in enumerate(events) if e["type"] == "chain_created" and e.get("old_chain_id")
    )
    started = [e for e in events[replanned:] if e.get("new_status") == "running"]
    assert started == [], "the command ran a step of the new chain"
    # nor is its wall-time clock left running: nothing runs it until a resume
    answered = next(i for i, e in enumerate(events) if e["type"] == "approval_resolved")
    assert [e for e in events[answered:] if e["type"] == "clock_changed"] == []
