"""The lock a directive's git workspace is changed under: merges, resets,
and worktrees made or removed go one at a time, within this process (an
asyncio lock) and across processes on the same database (an advisory
`flock` on a file beside the directive's worktrees). Two engines' merges
into one integration worktree raced: an `approve` from the command line
merging beside the app's verdict failed on git's ref lock, and its undo
moved the branch back over the other merge, dropping a passed step."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from types import TracebackType

POLL_S = 0.02  # waiting for another process: short sleeps, so a cancel lands at once


class WorkspaceLock:
    """`async with lock:` holds both; the file is created when first taken."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = asyncio.Lock()
        self._fd: int | None = None

    async def __aenter__(self) -> None:
        await self._local.acquire()
        try:
            self._fd = await self._take()
        except BaseException:
            self._local.release()
            raise

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        fd, self._fd = self._fd, None
        try:
            if fd is not None:
                os.close(fd)  # closing the file lets the other processes in
        finally:
            self._local.release()

    async def _take(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    await asyncio.sleep(POLL_S)
        except BaseException:
            os.close(fd)
            raise
