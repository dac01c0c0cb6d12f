"""Messages the app sends its screens: engine events arrive in batches."""

from __future__ import annotations

from textual.message import Message

from engine.events import EngineEvent


class EngineReady(Message, bubble=False):
    """The store is open and the engine has recovered: screens may load."""


class EngineBatch(Message, bubble=False):
    """Events published since the last batch, in order. `lagged` means the
    bus dropped some: rebuild from the store instead of applying them."""

    def __init__(self, events: list[EngineEvent], lagged: bool = False) -> None:
        super().__init__()
        self.events = events
        self.lagged = lagged

    def of(self, directive_id: str) -> list[EngineEvent]:
        return [e for e in self.events if e.directive_id == directive_id]

    def has(self, *types: str) -> bool:
        return any(e.type in types for e in self.events)
