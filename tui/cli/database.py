"""Which database a command works on, whether it may, and what it is told
when SQLite says no (busy, read-only): refused before anything is opened."""

from __future__ import annotations

import os
from pathlib import Path

from tui.cli.exits import UsageError

# Commands that create their database when it is missing; every other one
# works on directives that must already be in it.
CREATES_DB = {None, "run", "demo"}
READS_NO_DB = {"check"}  # only where the database's worktrees would go


def default_db() -> Path:
    env = os.environ.get("DIRECTIVE_TUI_DB")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("directive-tui")) / "directives.db"


def is_busy(exc: BaseException | None) -> bool:
    """SQLite's answer when another program held a lock past the store's wait."""
    import sqlite3

    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def readonly_error(exc: BaseException) -> bool:
    """A write SQLite refused because the database (or its folder) is
    read-only for this user: reading it worked, this command writes. The
    store's rule, imported only on this error path."""
    from engine.connection import is_readonly

    return is_readonly(exc)


def busy_message(db: Path) -> str:
    from engine.connection import BUSY_TIMEOUT_S  # the store's wait, on this error path only

    return (
        f"{db} is busy: another program kept it locked for longer than this command"
        f" waits ({BUSY_TIMEOUT_S:g} s); try again once it is done"
    )


def check_db(db: Path, command: str | None) -> None:
    """Refuse a `--db` that cannot be right before anything is opened: a
    folder, or (for a command that needs existing directives) a missing
    file, which would otherwise be created empty, folders and all."""
    if db.is_dir():
        raise UsageError(
            f"{db} is a folder: --db takes a database file, such as {db / 'directives.db'}"
        )
    if command in READS_NO_DB:  # it opens none: only what `run` would refuse at once
        _not_sqlite(db)
    elif command not in CREATES_DB and not db.exists():
        raise UsageError(f"no database at {db}")
    if command not in CREATES_DB | READS_NO_DB and db.stat().st_size == 0:  # made one
        raise UsageError(f"no database at {db} (an empty file)")
    if db.exists():
        foreign = other_programs_tables(db)
        if foreign:
            tables = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise UsageError(
                f"{db} is another program's SQLite database (its tables: {tables}):"
                " give --db a file of directive-tui's own, or a new path"
            )


def _not_sqlite(db: Path) -> None:
    """A file that is there and is no SQLite database: `run` would refuse it
    as not usable once it opened it; `check`, which opens none, says so."""
    if not db.is_file() or db.stat().st_size == 0:
        return
    try:
        with open(db, "rb") as f:
            if f.read(16) == b"SQLite format 3\x00":
                return
    except OSError as exc:
        raise UsageError(f"cannot read the database {db}: {exc.strerror or exc}") from exc
    raise UsageError(f"{db} is not a SQLite database: give --db a file of directive-tui's own")


def other_programs_tables(db: Path) -> list[str]:
    """The tables of a SQLite file that another program made: tables, but
    none of ours and no schema version of ours (the store would otherwise
    add its tables to it, even for `list`). Read-only; anything that is not
    a readable SQLite file is left to the store to refuse."""
    import sqlite3

    try:
        with open(db, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                return []
        from engine.schema import foreign_tables  # the store's own rule

        # immutable: the main file only, as it is on disk, and no lock taken
        # or waited for. A plain reader of a database in WAL mode would leave
        # -wal and -shm files beside it.
        uri = f"{db.resolve().as_uri()}?mode=ro&immutable=1"
        conn = sqlite3.connect(uri, uri=True)
        try:
            names = foreign_tables(conn)
        finally:
            conn.close()
    except (OSError, sqlite3.Error):
        return []
    return names
