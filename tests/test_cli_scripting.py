"""The command line as a script or a CI job uses it: no terminal, no
stdin, its output piped to `jq` or a file, its exit code branched on.
Real SQLite files and git repositories, the command run as a subprocess."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.test_cli import STEP_OK, directive_file, empty_database, only_directive, run_cli

ROOT = Path(__file__).resolve().parent.parent
ALWAYS_FAILS = '[[steps]]\nname = "fails"\ncommand = "false"\n'


def cli_with(shell_redirects: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """`python -m tui.cli ARGV` started by a shell with `shell_redirects`
    (`2>&-`, say), as a job's script would start it; stdin is /dev/null."""
    return subprocess.run(
        ["sh", "-c", f'exec "$@" {shell_redirects}', "sh", sys.executable, "-m", "tui.cli", *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_with_stderr_closed_an_error_never_lands_in_the_standard_output(tmp_path: Path) -> None:
    """Started with `2>&-`, Python has no sys.stderr, and print(file=None)
    writes to stdout: the error went into the data a script reads (`events
    --json | jq` read 'directive-tui: no directive ...' as JSON)."""
    db = tmp_path / "x.db"
    asyncio.run(empty_database(str(db)))
    done = cli_with("2>&-", "--db", str(db), "events", "nope", "--json")
    assert (done.returncode, done.stdout) == (2, "")


def test_approvals_json_lists_only_the_answers_the_approval_takes_now(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """A script answering from `approvals --json` took `request_changes` for
    a plan the file lists, and `replan` with no replans left: both refused
    (exit 2), where the text listing and the hints offered neither."""
    db = str(tmp_path / "x.db")
    plan_file = directive_file(tmp_path, make_git_repo(), STEP_OK, autonomy="manual")
    assert run_cli("--db", db, "run", str(plan_file), "--headless", "--json")[0] == 3
    (plan,) = json.loads(run_cli("--db", db, "approvals", "--json")[1])
    assert plan["options"] == ["approve", "deny"]
    assert "[approve/deny]" in run_cli("--db", db, "approvals")[1]

    failing = directive_file(tmp_path, make_git_repo(name="other"), ALWAYS_FAILS)
    failing.write_text(failing.read_text() + "[limits]\nmax_chain_regenerations = 0\n")
    other_db = str(tmp_path / "other.db")
    assert run_cli("--db", other_db, "run", str(failing), "--headless", "--json")[0] == 3
    (escalation,) = json.loads(run_cli("--db", other_db, "approvals", "--json")[1])
    assert escalation["options"] == ["retry", "skip", "stop"]


needs_dev_full = pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")


@needs_dev_full
def test_an_output_that_cannot_be_written_is_said_in_a_line_not_a_traceback(
    tmp_path: Path, make_git_repo: Callable[..., Path]
) -> None:
    """A full disk under the file a job writes its log to: the command died
    with a traceback and exit 1, which a script reads as 'the directive
    failed'. The run stops as when its reader goes away; resume carries on."""
    db = str(tmp_path / "x.db")
    path = directive_file(tmp_path, make_git_repo(), STEP_OK, autonomy="full_auto")
    run = cli_with(">/dev/full", "--db", db, "run", str(path), "--headless", "--json")
    listed = cli_with(">/dev/full", "--db", db, "list", "--json")
    for done in (run, listed):
        assert (done.returncode, done.stderr) == (
            74,
            "directive-tui: cannot write the standard output: No space left on device\n",
        )
    did = only_directive(db)
    code, out, _ = run_cli("--db", db, "resume", did, "--headless")
    assert code == 0 and "directive active -> completed" in out


def test_help_tells_bad_input_from_an_unwritable_output_and_a_busy_database() -> None:
    """A script retries on 75 and fixes its input on 2: both, and a full
    disk's 74, were one code 2 before, and --help listed no full disk."""
    done = cli_with("", "--help")
    assert done.returncode == 0
    codes = done.stdout.split("exit codes:\n")[1]
    two = codes[codes.index("  2 ") : codes.index("  3 ")]
    assert "busy" not in two and "cannot be written" not in two
    assert "  74   the output could not be written (a full disk)" in codes
    assert "  75   try again later: the database is busy, or another engine runs on it" in codes


async def test_the_resume_an_interrupted_json_run_prints_keeps_its_json() -> None:
    """After Ctrl-C on `run --headless --json` the hint on stderr said
    `resume ID --headless`: a script that follows it gets text, not JSON."""
    import io

    from tui.cli.headless import _say_interrupted

    class Printer:
        directive_id = "abc123"

        async def catch_up(self) -> None:
            return None

    note = io.StringIO()
    await _say_interrupted(Printer(), "directive-tui", note, as_json=True)  # type: ignore[arg-type]
    assert note.getvalue() == (
        "interrupted: `directive-tui resume abc123 --headless --json` carries on\n"
    )
