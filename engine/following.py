"""Other processes on the same database: the lease that lets one engine
run it, and following what the others write (an answer given with
`directive-tui approve`, a directive started from a watching app).

A watching engine publishes the running one's events and takes the lease
over once its holder is gone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from engine.core import EngineCore
from engine.models import Directive, DirectiveStatus

log = logging.getLogger(__name__)

D = DirectiveStatus


class Following(EngineCore):
    """The engine's lease and the writes of other processes. Picks up what
    it adopts, or all once it takes the lease over, with the driver's
    `_recover`, `_recover_all`, `_launch_driver` and `_wake`
    (engine.engine)."""

    async def watch_external(self) -> None:
        """Follow writes made by other processes on this database (an answer
        given with `directive-tui approve`, a directive started from a
        watching app, or the holder's own work when this engine watches):
        their events are published here as well. Cheap: SQLite's
        `data_version` moves only when another connection commits."""
        if self._watcher is not None:
            return
        for d in await self.store.list_directives():
            self._seen.setdefault(d.id, d.last_seq)
        self._watcher = asyncio.create_task(self._follow_external(), name="external-writes")

    async def _follow_external(self) -> None:
        version = await self.store.read(_data_version)
        next_try = 0.0
        while True:
            await asyncio.sleep(self.services.external_poll_s)
            if self.watching is not None and asyncio.get_running_loop().time() >= next_try:
                next_try = asyncio.get_running_loop().time() + self.services.lease_heartbeat_s
                await self._try_take_over()
            now_version = await self.store.read(_data_version)
            if now_version == version:
                continue
            version = now_version
            directives = await self.store.list_directives()
            self._forget_deleted({d.id for d in directives})
            for d in directives:
                events = await self.store.list_events(d.id, after_seq=self._seen.get(d.id, 0))
                if not events:
                    continue
                self._seen[d.id] = events[-1].seq
                self.bus.publish_many(events)
                if self.runs_steps:
                    await self._adopt(d)

    def _forget_deleted(self, present: set[str]) -> None:
        """Directives deleted by another process (only an ended or draft one
        can be: nothing of it runs here) are forgotten, and said."""
        gone = [did for did in self._seen if did not in present]
        for did in gone:
            self._seen.pop(did, None)
            rt = self._rt.get(did)
            if rt is not None and all(t.done() for t in rt.tasks()):
                self._rt.pop(did, None)
        if gone and self.on_directives_gone is not None:
            self.on_directives_gone(gone)

    async def _adopt(self, d: Directive) -> None:
        """Something else wrote to `d`: the running engine carries on with it
        (a directive started or resumed from a watching app or the command
        line gets a driver here; a running one re-reads, and stops its steps
        when it was paused or stopped elsewhere)."""
        rt = self._rt.get(d.id)
        if rt is not None and rt.driver is not None and not rt.driver.done():
            self._wake(d.id)
            return
        if d.status not in (D.ACTIVE, D.PLANNING):
            if rt is not None:
                self._wake(d.id)
            return
        if rt is not None and rt.steps:
            self._launch_driver(d.id)
        else:  # none of its steps runs here: close what a crash left open, then drive
            await self._recover(d)

    async def _take_lease(self, label: str) -> None:
        from engine.lease import EngineLease

        self._lease = await EngineLease.acquire(
            self.store,
            label,
            heartbeat_s=self.services.lease_heartbeat_s,
            stale_after_s=self.services.lease_stale_after_s,
            on_lost=self._lease_lost,
        )
        self.watching = None
        if self._lease.taken_over:
            log.warning("%s", self._lease.taken_over)

    async def _try_take_over(self) -> None:
        """A watching engine becomes the running one once the holder is gone."""
        from engine.lease import LeaseError

        try:
            await self._take_lease(self._label)
        except (LeaseError, OSError) as exc:
            holder = getattr(exc, "holder", None)
            if holder is not None:
                self.watching = holder.brief()
            return
        self._only = None
        self._role_changed()
        await self._recover_all()

    def _role_changed(self) -> None:
        if self.on_role_change is not None:
            self.on_role_change(self.watching)

    def _lease_lost(self) -> None:
        """Another engine took this database over (ours had gone quiet too
        long): stop running anything, so no step runs twice, and watch."""
        log.error("engine lease lost: this engine stops running steps and watches")
        self.watching = "the engine that took this database over"
        self._role_changed()
        for rt in self._rt.values():
            for t in rt.tasks():
                t.cancel()

    async def _another_engine_lives(self) -> bool:
        """Whether another engine holds this database's lease and lives (a
        step it left marked running is its to finish, not a leftover)."""
        from engine.lease import EngineLease

        if self._lease is not None:  # this engine holds it: no other runs here
            return False
        runner = await EngineLease.runner(self.store.path, self.services.lease_stale_after_s)
        return runner is not None


def _data_version(conn: Any) -> int:
    return conn.execute("PRAGMA data_version").fetchone()[0]
