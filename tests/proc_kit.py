"""Watching processes from a test: whether one still runs, waiting for it
to go, waiting for the file a command writes when it starts."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether process `pid` still runs: a zombie waiting for a reaper (one
    a container may lack) is gone for every purpose that matters."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def wait_gone(pid: int, tries: int = 100) -> bool:
    """Whether `pid` is gone within `tries` looks, 50 ms apart."""
    for _ in range(tries):
        if not alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


def wait_for_file(path: Path, timeout: float = 30) -> str:
    """The text of `path` once it holds some (a command wrote it)."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text()
