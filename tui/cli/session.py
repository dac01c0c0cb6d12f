"""The store, and an engine running no step, opened for one command: what
either refuses becomes the one-line usage error (exit 2), or busy, the
one-line try-later error (exit 75)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tui.cli.database import busy_message, is_busy
from tui.cli.exits import TryLater, UsageError


async def open_store(db: Path) -> Any:
    """The store, or why it cannot be opened in a line: busy past the wait,
    not ours, or somewhere it may not be made."""
    import sqlite3

    from engine.store import Store, StoreError

    try:
        return await Store.open(db)
    except StoreError as exc:
        if is_busy(exc.__cause__):
            raise TryLater(busy_message(db)) from exc
        raise UsageError(str(exc)) from exc
    except (sqlite3.Error, OSError) as exc:  # a folder we may not write in, say
        raise UsageError(f"cannot open the database {db}: {exc}") from exc


@contextlib.asynccontextmanager
async def engine_session(db: Path) -> AsyncIterator[tuple[Any, Any]]:
    """The store and an engine (running no step) for one command: what the
    engine refuses, an unknown id and a move the tables refuse become the
    one-line usage error; both are closed after."""
    from engine.engine import DirectiveEngine, EngineError
    from engine.store import NotFound
    from engine.transitions import InvalidTransition

    store = await open_store(db)
    engine = DirectiveEngine(store, drives=False)
    try:
        yield store, engine
    except (EngineError, NotFound, InvalidTransition) as exc:
        raise UsageError(str(exc)) from exc
    finally:
        await engine.close()
        await store.close()
