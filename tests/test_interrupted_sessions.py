"""A session cut short as a user meets it: the app or a headless run killed
mid-step (`kill -9`, a reboot, a closed terminal), then the commands and the
app opened again on the same database. What they say must be true, and the
next run must pick up where the last one was. Real SQLite files, real git
repositories, real subprocesses."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.breakers import duration
from tests.proc_kit import wait_for_file
from tests.test_cli import directive_file

HOUR_S = 3600.0


def held_step(tmp_path: Path) -> str:
    """A step that notes its shell's pid, then waits (until `go` exists)."""
    return (
        '[[steps]]\nname = "held"\n'
        f'command = "echo $$ >> {tmp_path}/pids; test -f {tmp_path}/go || sleep 60"\n'
    )


def cli(db: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", "--db", str(db), *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )


def killed_mid_step(tmp_path: Path, repo: Path, limits: str = "") -> tuple[Path, str]:
    """A headless run SIGKILLed while its one step runs: (database, id)."""
    path = directive_file(tmp_path, repo, limits + held_step(tmp_path), autonomy="full_auto")
    db = tmp_path / "x.db"
    run = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "--db", str(db), "run", str(path), "--headless"],
        stdout=subprocess.DEVNULL,
    )
    wait_for_file(tmp_path / "pids")
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    (did,) = [d["id"] for d in json.loads(cli(db, "list", "--json").stdout)]
    return db, did


def an_hour_later(db: Path) -> float:
    """Move the killed run's clock start and last heartbeat an hour back,
    as if the user came back an hour after the kill; the seconds it had
    run by its last heartbeat."""
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE directives SET active_since = active_since - ?", (HOUR_S,))
        conn.execute("UPDATE engine_lease SET heartbeat = heartbeat - ?", (HOUR_S,))
        ((since, beat),) = conn.execute(
            "SELECT active_since, heartbeat FROM directives, engine_lease"
        ).fetchall()
    return beat - since


def test_limits_after_a_kill_count_no_time_when_nothing_ran_the_directive(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """An hour after a run was killed, `limits` said an hour was used and the
    wall-time limit was reached; the next engine charges only up to the dead
    run's last heartbeat, and the directive went on within its limits."""
    limits = "[limits]\nmax_wall_time_minutes = 30\n"
    db, did = killed_mid_step(tmp_path, make_git_repo(), limits)
    ran_s = an_hour_later(db)

    shown = cli(db, "limits", did)

    assert shown.returncode == 0, shown.stderr
    (wall,) = [line for line in shown.stdout.splitlines() if "max_wall_time_minutes" in line]
    assert f"(used {duration(max(ran_s, 0.0))})" in wall, wall
    assert "still over a limit" not in shown.stdout
    (tmp_path / "go").touch()
    resumed = cli(db, "resume", did, "--headless")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr  # within its limits, as said


def table(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.parametrize("command", ["pause", "stop"])
def test_pausing_or_stopping_after_a_kill_leaves_no_step_running_and_charges_no_dead_time(
    tmp_path: Path, make_git_repo: Callable[..., Path], command: str
) -> None:
    """After a run was killed, `stop` left its step and attempt marked running
    for good (the app showed '▶ running' in a stopped directive), and `pause`
    or `stop` charged the hour nothing ran as wall time used."""
    db, did = killed_mid_step(tmp_path, make_git_repo())
    ran_s = max(an_hour_later(db), 0.0)

    done = cli(db, command, did)

    assert done.returncode == 0, done.stderr
    assert table(db, "SELECT status FROM chain_steps") == [("ready",)]
    assert table(db, "SELECT status, error FROM step_runs") == [
        ("cancelled", "interrupted by restart")
    ]
    ((used, since),) = table(db, "SELECT wall_time_used_s, active_since FROM directives")
    assert since is None and used == pytest.approx(ran_s, abs=0.01)
    log = cli(db, "events", did).stdout
    assert "step held: running -> ready (interrupted by restart; runs again)" in log
    if command == "pause":  # and the next run picks the step up again, once
        (tmp_path / "go").touch()
        resumed = cli(db, "resume", did, "--headless")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert len((tmp_path / "pids").read_text().split()) == 2


@pytest.mark.parametrize("ending", ["killed", "closed"])
def test_an_attempt_whose_evaluation_was_cut_off_says_so_and_the_step_runs_again(
    tmp_path: Path, make_git_repo: Callable[..., Path], ending: str
) -> None:
    """The engine died (SIGKILL) or closed (SIGTERM) while a verifier ran:
    the attempt stayed "succeeded" with no evaluation and no word of why, so
    the panel showed a success that led nowhere beside the next attempt."""
    slow_check = (
        '[[steps]]\nname = "made"\ncommand = "echo made > made.txt"\n'
        '[[verifiers.extra]]\nname = "slow"\n'
        f'command = "echo $$ >> {tmp_path}/checks; test -f {tmp_path}/go || sleep 60"\n'
    )
    path = directive_file(tmp_path, make_git_repo(), slow_check, autonomy="full_auto")
    db = tmp_path / "x.db"
    run = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "--db", str(db), "run", str(path), "--headless"],
        stdout=subprocess.DEVNULL,
    )
    wait_for_file(tmp_path / "checks")  # the step ran; its check runs
    run.send_signal(signal.SIGKILL if ending == "killed" else signal.SIGTERM)
    run.wait(timeout=30)
    (did,) = [d["id"] for d in json.loads(cli(db, "list", "--json").stdout)]
    (tmp_path / "go").touch()
    assert cli(db, "resume", did, "--headless").returncode == 0
    with sqlite3.connect(db) as conn:
        runs = conn.execute(
            "SELECT attempt, status, error FROM step_runs ORDER BY attempt"
        ).fetchall()
    why = "interrupted by restart" if ending == "killed" else "interrupted: directive-tui closed"
    ((first, status, error), second) = runs
    assert (first, status) == (1, "succeeded")
    assert error.startswith(f"its evaluation was cut off ({why}")
    assert error.endswith("no verdict, the step runs again")
    assert second == (2, "succeeded", None)
