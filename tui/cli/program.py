"""How to call this program again, for the hints the commands print: each
must run as pasted, on the same database."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path


def command_line(db: Path | None) -> str:
    """How to call this program again on the same database, for the hints
    it prints: with `--db` when this call named one (or the environment
    did), so following a hint never lands on another database."""
    # Absolute: a hint pasted in another folder must reach the same file.
    return program() + (f" --db {shlex.quote(str(db.absolute()))}" if db is not None else "")


def program() -> str:
    """`directive-tui` when the shell finds this program by that name; the
    path it was started by when it does not (a virtualenv's bin/ that is not
    on PATH), so a pasted hint runs."""
    import shutil

    started = sys.argv[0]
    if Path(started).name != "directive-tui" or not os.path.exists(started):
        return "directive-tui"  # `python -m tui.cli`, or a test calling main()
    found = shutil.which("directive-tui")
    if found is not None and os.path.samefile(found, started):
        return "directive-tui"
    return shlex.quote(os.path.abspath(started))
