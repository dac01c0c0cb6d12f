"""A connection to the database file: how one is set up, the parsed specs
it keeps, and why SQLite may refuse to write the file, in words."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from engine.models import DirectiveSpec
from engine.schema import SCHEMA_VERSION, foreign_tables, migrate


class Connection(sqlite3.Connection):
    """sqlite3's connection with the parsed directive specs it has read,
    by (directive id, spec_rev): a cache that lives and dies with the
    connection, so two databases never share one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.specs: dict[tuple[str, int], DirectiveSpec] = {}


def forget_specs(conn: sqlite3.Connection) -> None:
    """A rolled-back write may have cached a spec revision that was never
    committed (and that number may be reused by a different spec)."""
    specs = getattr(conn, "specs", None)
    if specs is not None:
        specs.clear()


# How long a connection waits for another's lock before SQLite says busy
# (read when a connection opens; the command line names it in that message).
BUSY_TIMEOUT_S = 10.0


def configure(conn: sqlite3.Connection, readonly: bool) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    foreign = foreign_tables(conn)
    if foreign:  # before WAL mode or a migration could change the file
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise sqlite3.DatabaseError(
            f"it is another program's SQLite database (its tables: {shown})"
        )
    if readonly:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {version} is newer than this program")
        return
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes in WAL
    migrate(conn)


def is_readonly(exc: BaseException | None) -> bool:
    """SQLite's answer to a write it may not make: the file, or the folder
    its -wal and -shm files go in, is read-only for this user."""
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    return (code is not None and code & 0xFF == sqlite3.SQLITE_READONLY) or "readonly" in str(exc)


def unwritable(path: Path) -> str | None:
    """Why SQLite may not write the database at `path`, in words (None when
    the file and its folder both look writable). The folder first: SQLite
    writes `-wal` and `-shm` files beside the database (WAL mode), so a
    folder this user may not write in keeps it from even reading one."""
    folder = path.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        if not path.exists():
            return f"cannot create the database {path}: the folder {folder} is not writable"
        return (
            f"cannot write in the folder {folder} of the database {path}: SQLite keeps"
            f" {path.name}-wal and {path.name}-shm beside it (make the folder writable,"
            " or copy the database to one that is)"
        )
    if path.exists() and not os.access(path, os.W_OK):
        return f"the database {path} is read-only: this command writes to it (make it writable)"
    return None
