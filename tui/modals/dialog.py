"""The base of the app's dialogs."""

from __future__ import annotations

from typing import TypeVar

from textual.screen import ModalScreen

T = TypeVar("T")


class Dialog(ModalScreen[T]):
    """A modal dialog. The toasts up when it opens are cleared: at 80x24
    they lie over its lower part, buttons included, for up to 30 s, and the
    person has moved on to the dialog (what they said is in the event log,
    the header or the home screen's title)."""

    def on_mount(self) -> None:
        self.app.clear_notifications()
