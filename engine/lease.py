"""The engine lease: at most one running engine per database file.

Two engines on one file would both recover "interrupted" steps and run them
twice. So an engine first takes the lease, the single row of the
`engine_lease` table: who holds it (owner label and instance), its pid and
host, and a heartbeat the holder renews every few seconds. Another engine
that finds the lease held gets `LeaseHeld`, whose message names the holder,
and may still open the file to watch: it runs no step, and writes its
commands (start, pause, answers) to the database for the holder to carry out.

A lease is taken over without asking when its holder is gone: on the same
host, when its pid no longer runs (a SIGKILLed engine leaves its row
behind); on any host, when its heartbeat is older than `stale_after_s`. The
check and the write happen in one `BEGIN IMMEDIATE` transaction, so two
engines starting at once cannot both win.

The holder's heartbeat task notices when its lease was taken over (its row
no longer names it: its heartbeat had gone stale, say after the machine
slept) and sets `lost`, so the engine can stop before it runs anything twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from engine import connection

DEFAULT_HEARTBEAT_S = 5.0
DEFAULT_STALE_AFTER_S = 30.0
T = TypeVar("T")
OWNER_SEPARATOR = "\x1f"  # label, instance token and start time share the owner column


class LeaseError(RuntimeError):
    """The lease cannot be used on this file at all."""


class LeaseHeld(LeaseError):
    """Another live engine holds the database; the message says which."""

    def __init__(self, message: str, holder: LeaseHolder) -> None:
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class LeaseHolder:
    """The `engine_lease` row, read back."""

    label: str
    token: str
    since: float | None
    pid: int
    host: str
    heartbeat: float

    @classmethod
    def from_row(cls, owner: str, pid: int, host: str, heartbeat: float) -> LeaseHolder:
        label, token, since = [*owner.split(OWNER_SEPARATOR, 2), "", ""][:3]
        try:
            started = float(since) if since else None
        except ValueError:
            started = None
        return cls(label, token, started, int(pid), host, float(heartbeat))

    def brief(self) -> str:
        """Who, without the clock: fit for a title line that stays up."""
        return f"{self.label!r} (pid {self.pid} on {self.host})"

    def describe(self, at: float | None = None) -> str:
        at = time.time() if at is None else at
        since = (
            time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(self.since))
            if self.since
            else ""
        )
        age = max(at - self.heartbeat, 0.0)
        return (
            f"{self.label!r} (pid {self.pid} on {self.host}{since}, last heartbeat {age:.0f} s ago)"
        )


def _owner(label: str, token: str, since: float) -> str:
    clean = label.replace(OWNER_SEPARATOR, " ").strip() or "engine"
    return OWNER_SEPARATOR.join((clean, token, f"{since:.3f}"))


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs on this host. A zombie (dead, not yet reaped by its
    parent) is not running: it will never renew anything."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def holder_gone(
    holder: LeaseHolder,
    *,
    host: str,
    now: float,
    stale_after_s: float,
    alive: Callable[[int], bool] = pid_alive,
) -> str | None:
    """Why a held lease may be taken over, or None while its holder lives."""
    if now - holder.heartbeat > stale_after_s:
        return f"its heartbeat is {now - holder.heartbeat:.0f} s old (limit {stale_after_s:g} s)"
    if holder.host == host and not alive(holder.pid):
        return f"pid {holder.pid} no longer runs on {host}"
    return None


# --------------------------------------------------------------------------
# The SQL, run on one connection inside BEGIN IMMEDIATE
# --------------------------------------------------------------------------


def _read(conn: sqlite3.Connection) -> LeaseHolder | None:
    row = conn.execute(
        "SELECT owner, pid, host, heartbeat FROM engine_lease WHERE id = 1"
    ).fetchone()
    return LeaseHolder.from_row(*row) if row else None


def _gone(holder: LeaseHolder, stale_after_s: float) -> bool:
    """As the next engine to start here would judge it."""
    now = time.time()
    return (
        holder_gone(holder, host=socket.gethostname(), now=now, stale_after_s=stale_after_s)
        is not None
    )


def still_held_by(conn: sqlite3.Connection, holder: LeaseHolder) -> bool:
    """Whether the lease row is still `holder`'s as it was read (no engine
    took it over, nor renewed it, since): checked inside a writer's own
    transaction, so a dead holder's leftovers are not an engine's that
    started meanwhile."""
    return _read(conn) == holder


def _immediate(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], Any]) -> Any:
    """`fn(conn)` in its own write transaction (taken before reading, so a
    check-then-write cannot interleave with another engine's)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


@dataclass
class _Claim:
    owner: str
    pid: int
    host: str
    stale_after_s: float
    db: str
    alive: Callable[[int], bool] = pid_alive

    def take(self, conn: sqlite3.Connection) -> tuple[str, float] | None:
        """Take the lease or raise LeaseHeld; returns what was taken over (a
        sentence, and the dead holder's last heartbeat)."""
        now = time.time()
        holder = _read(conn)
        taken_over = None
        if holder is not None:
            why = holder_gone(
                holder, host=self.host, now=now, stale_after_s=self.stale_after_s, alive=self.alive
            )
            if why is None:
                raise LeaseHeld(
                    f"{self.db} is in use by another directive-tui engine: {holder.describe(now)}. "
                    "Wait for it to finish or stop it; to watch it meanwhile, open the app on "
                    "this database. A headless command can run here once that engine is gone "
                    f"(its process has ended, or it has sent no heartbeat for "
                    f"{self.stale_after_s:g} s).",
                    holder,
                )
            taken_over = (f"took over the lease of {holder.describe(now)}: {why}", holder.heartbeat)
        conn.execute(
            "INSERT INTO engine_lease (id, owner, pid, host, heartbeat) VALUES (1, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, pid = excluded.pid,"
            " host = excluded.host, heartbeat = excluded.heartbeat",
            (self.owner, self.pid, self.host, now),
        )
        return taken_over

    def renew(self, conn: sqlite3.Connection) -> bool:
        cur = conn.execute(
            "UPDATE engine_lease SET heartbeat = ? WHERE id = 1 AND owner = ?",
            (time.time(), self.owner),
        )
        return cur.rowcount == 1

    def release(self, conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM engine_lease WHERE id = 1 AND owner = ?", (self.owner,))


# --------------------------------------------------------------------------
# The lease
# --------------------------------------------------------------------------


class EngineLease:
    """Held while an engine runs on a database. Use as

        lease = await EngineLease.acquire(store_or_path, "headless run")
        try: ... run the engine, stop if lease.lost.is_set() ...
        finally: await lease.release()

    or `async with await EngineLease.acquire(...) as lease:`.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        claim: _Claim,
        *,
        heartbeat_s: float,
        taken_over: tuple[str, float] | None,
        on_lost: Callable[[], None] | None,
    ) -> None:
        self._conn = conn
        self._claim = claim
        self._lock = asyncio.Lock()
        self.heartbeat_s = heartbeat_s
        # A sentence when a dead holder's lease was taken, and the holder's
        # last heartbeat: when it was last known to be running its directives.
        self.taken_over = taken_over[0] if taken_over else None
        self.dead_since = taken_over[1] if taken_over else None
        self.lost = asyncio.Event()
        self._on_lost = on_lost
        self._released = False
        self._task = asyncio.create_task(self._beat(), name="engine-lease-heartbeat")

    @classmethod
    async def acquire(
        cls,
        db: Any,
        owner_label: str,
        *,
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        on_lost: Callable[[], None] | None = None,
        alive: Callable[[int], bool] = pid_alive,
    ) -> EngineLease:
        """Take the lease of `db` (a path, or a `Store`, whose file is used)
        for `owner_label`, or raise `LeaseHeld` naming the live holder.

        The lease uses its own connection (not the store's), so its
        heartbeat never waits behind the engine's writes on one thread."""
        if heartbeat_s <= 0 or stale_after_s <= heartbeat_s:
            raise ValueError(
                f"need 0 < heartbeat_s < stale_after_s, got {heartbeat_s} and {stale_after_s}"
            )
        path = Path(getattr(db, "path", db))
        conn = await asyncio.to_thread(_connect, path)
        since = time.time()
        claim = _Claim(
            owner=_owner(owner_label, uuid.uuid4().hex[:12], since),
            pid=os.getpid(),
            host=socket.gethostname(),
            stale_after_s=stale_after_s,
            db=str(path),
            alive=alive,
        )
        try:
            taken_over = await _on_thread(_immediate, conn, claim.take)
        except asyncio.CancelledError:
            # The take may have committed as the cancel came: give it back,
            # or the row would name this live process with no heartbeat.
            with contextlib.suppress(Exception):
                await _on_thread(_immediate, conn, claim.release)
            conn.close()
            raise
        except BaseException:
            conn.close()  # no call runs on it now: _on_thread waited
            raise
        return cls(conn, claim, heartbeat_s=heartbeat_s, taken_over=taken_over, on_lost=on_lost)

    @staticmethod
    async def holder(db: Any) -> LeaseHolder | None:
        """Who holds `db`'s lease now (None: nobody), read-only."""
        path = Path(getattr(db, "path", db))

        def read() -> LeaseHolder | None:
            # As a URI, percent-encoded: a `#` or `?` in a folder's name would
            # otherwise end the path there, and nobody would seem to hold it.
            conn = sqlite3.connect(
                f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=connection.BUSY_TIMEOUT_S
            )
            try:
                return _read(conn)
            except sqlite3.OperationalError:  # no schema yet: nobody
                return None
            finally:
                conn.close()

        return await asyncio.to_thread(read)

    @staticmethod
    async def runner(db: Any, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> LeaseHolder | None:
        """The engine running `db` now: its holder, unless gone (as the
        next engine to start would find it), so a command can say who
        carries out what it wrote."""
        holder = await EngineLease.holder(db)
        return holder if holder is not None and not _gone(holder, stale_after_s) else None

    @staticmethod
    async def dead_holder(
        db: Any, stale_after_s: float = DEFAULT_STALE_AFTER_S
    ) -> LeaseHolder | None:
        """The holder whose engine is gone (a `kill -9`, a reboot) and left
        its row behind, or None: read once, so a live engine that took the
        lease meanwhile is never taken for the dead one."""
        holder = await EngineLease.holder(db)
        return holder if holder is not None and _gone(holder, stale_after_s) else None

    @property
    def owner(self) -> str:
        return self._claim.owner

    @property
    def held(self) -> bool:
        return not self._released and not self.lost.is_set()

    async def renew(self) -> bool:
        """Renew the heartbeat now; False (and `lost` set) if the lease was taken over."""
        async with self._lock:
            if self._released:
                return False
            still_mine = await _on_thread(_immediate, self._conn, self._claim.renew)
        if not still_mine:
            self._mark_lost()
        return still_mine

    async def release(self) -> None:
        """Stop the heartbeat and give the lease back (if it is still ours)."""
        if self._released:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        async with self._lock:
            self._released = True
            try:
                await _on_thread(_immediate, self._conn, self._claim.release)
            finally:
                await _on_thread(self._conn.close)

    async def __aenter__(self) -> EngineLease:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()

    def _mark_lost(self) -> None:
        if not self.lost.is_set():
            self.lost.set()
            if self._on_lost is not None:
                self._on_lost()

    async def _beat(self) -> None:
        while not self.lost.is_set():
            await asyncio.sleep(self.heartbeat_s)
            try:
                if not await self.renew():
                    return
            except sqlite3.OperationalError:
                continue  # busy past the timeout: try again next beat


async def _on_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on a worker thread, waited for to its end even when the
    caller is cancelled. The lease's one connection must never run two calls
    at once, nor be closed under a running one: a heartbeat cancelled while
    its `BEGIN IMMEDIATE` waited on a busy database left that call running,
    and `release` then used and closed the connection beside it (a
    segmentation fault in SQLite's C code, seen in a test run)."""
    job = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        while not job.done():  # bounded by the connection's busy timeout
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({job})
        raise


def _connect(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise LeaseError(f"no database at {path}: open it with the Store first")
    wait_s = connection.BUSY_TIMEOUT_S  # as the store's connections wait
    conn = sqlite3.connect(path, isolation_level=None, timeout=wait_s, check_same_thread=False)
    try:
        conn.execute("SELECT 1 FROM engine_lease LIMIT 1")
    except sqlite3.OperationalError as exc:
        conn.close()
        raise LeaseError(
            f"{path} has no engine_lease table (schema older than 2): open it with the Store first"
        ) from exc
    return conn
