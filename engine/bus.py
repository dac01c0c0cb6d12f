"""EventBus: fan-out of persisted events to any number of subscribers.

Each subscriber owns an asyncio queue. Publishing never awaits: a subscriber
whose queue is full is marked *lagged* and its queue is cleared, so it knows
to rebuild from the store (events are always persisted before they are
published) instead of the engine slowing down for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from engine.events import EngineEvent


@dataclass(eq=False)
class Subscription:
    bus: EventBus
    directive_id: str | None  # None: every directive
    queue: asyncio.Queue[EngineEvent]
    lagged: bool = False
    dropped: int = 0
    _closed: bool = field(default=False, repr=False)

    async def get(self) -> EngineEvent:
        return await self.queue.get()

    def get_nowait(self) -> EngineEvent | None:
        try:
            return self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def drain(self) -> list[EngineEvent]:
        """Everything queued now, without waiting: lets a screen batch updates."""
        out: list[EngineEvent] = []
        while True:
            try:
                out.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                return out

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.bus._subs.discard(self)

    async def __aiter__(self) -> AsyncIterator[EngineEvent]:
        while not self._closed:
            yield await self.queue.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    def __init__(self, max_queue: int = 100_000) -> None:
        self._subs: set[Subscription] = set()
        self._max_queue = max_queue

    def subscribe(self, directive_id: str | None = None) -> Subscription:
        sub = Subscription(self, directive_id, asyncio.Queue(self._max_queue))
        self._subs.add(sub)
        return sub

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def publish(self, event: EngineEvent) -> None:
        for sub in tuple(self._subs):
            if sub.directive_id is not None and sub.directive_id != event.directive_id:
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.dropped += sub.queue.qsize() + 1
                sub.lagged = True
                sub.drain()

    def publish_many(self, events: list[EngineEvent]) -> None:
        for event in events:
            self.publish(event)
