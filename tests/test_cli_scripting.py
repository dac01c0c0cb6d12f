"""The command line as a script or a CI job uses it: no terminal, no
stdin, its output piped to `jq` or a file, its exit code branched on.
Real SQLite files and git repositories, the command run as a subprocess."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from tests.test_cli import empty_database

ROOT = Path(__file__).resolve().parent.parent


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
