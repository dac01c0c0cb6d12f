"""The engine lease's own connection under cancellation: a heartbeat cut off
while SQLite waits on a busy database must not leave its call running
beside the release that closes the connection (that crashed a test run
with a segmentation fault)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from engine.lease import EngineLease
from engine.store import Store


async def leased(tmp_path: Path) -> tuple[Path, EngineLease]:
    db = tmp_path / "x.db"
    store = await Store.open(db)
    await store.close()
    return db, await EngineLease.acquire(db, "test engine", heartbeat_s=60, stale_after_s=120)


def holders(db: Path) -> list[tuple[str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT owner FROM engine_lease").fetchall()


async def test_a_renewal_cancelled_while_the_database_is_busy_ends_its_call_before_release(
    tmp_path: Path,
) -> None:
    db, lease = await leased(tmp_path)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the file
    try:
        renewal = asyncio.create_task(lease.renew())
        await asyncio.sleep(0.3)  # its BEGIN IMMEDIATE now waits on the busy file
        renewal.cancel()
        releasing = asyncio.create_task(lease.release())
        await asyncio.sleep(0.3)
        # The cancelled renewal still owns the connection until SQLite returns,
        # and the release waits behind it instead of closing the connection.
        assert not renewal.done()
        assert not releasing.done()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    with pytest.raises(asyncio.CancelledError):
        await renewal
    await asyncio.wait_for(releasing, timeout=15)
    assert holders(db) == []  # given back once the file was free
    assert not lease.held


async def test_acquiring_cancelled_while_the_database_is_busy_leaves_no_lease_behind(
    tmp_path: Path,
) -> None:
    db = tmp_path / "x.db"
    store = await Store.open(db)
    await store.close()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        acquiring = asyncio.create_task(EngineLease.acquire(db, "late engine"))
        await asyncio.sleep(0.3)
        acquiring.cancel()
        await asyncio.sleep(0.3)
        assert not acquiring.done()  # waits for SQLite before closing the connection
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(acquiring, timeout=15)
    assert holders(db) == []  # what its transaction wrote as the cancel came is given back
    lease = await EngineLease.acquire(db, "next engine")
    try:
        assert lease.held
    finally:
        await lease.release()
