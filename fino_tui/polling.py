"""A screen fed by the database: its `read()` runs in a thread worker every few seconds (at once
after `wake()`), and each result arrives on the screen as one message; a newer result replaces
one not yet shown, so bursts are merged before anything redraws."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from textual import work
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.worker import get_current_worker

from fino.store.text import printable

if TYPE_CHECKING:
    from fino_tui.app import FinoApp

T = TypeVar("T")


class Polled(Message, Generic[T]):
    """A fresh snapshot from the database."""

    def __init__(self, data: T, at: datetime) -> None:
        super().__init__()
        self.data, self.at = data, at

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Polled)


class PollFailed(Message):
    """The database could not be read this time (busy, unreachable); the last data stays."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PollFailed)


def reason_of(error: Exception) -> str:
    """The driver's message on one line (SQLAlchemy's adds the statement)."""
    return printable(" ".join(str(getattr(error, "orig", None) or error).split())[:200])


class PollingScreen(Screen[None], Generic[T]):
    """Subclasses implement `read()` (thread; store reads only) and `show(data)` (UI thread).

    While a full screen covers this one it stops polling; it reads at once when shown again.
    """

    app: FinoApp

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._wake = threading.Event()
        self._active = threading.Event()
        self._closing = False
        self.last_ok: datetime | None = None
        self.failure: str | None = None

    def read(self) -> T:
        raise NotImplementedError

    def show(self, data: T) -> None:
        raise NotImplementedError

    def show_failure(self, reason: str | None) -> None:
        """Called when reading starts or stops failing; the default notifies once."""
        if reason:
            self.notify(f"database not readable: {reason}; showing the last data read",
                        severity="warning", timeout=6, markup=False)

    def wake(self) -> None:
        """Read now rather than at the next interval (the user changed what is shown)."""
        self._wake.set()

    def on_mount(self) -> None:
        self._active.set()
        self._poll()

    def on_unmount(self) -> None:
        # Let the thread see its end now rather than after its interval.
        self._closing = True
        self._active.set()
        self._wake.set()

    def on_screen_suspend(self) -> None:
        # Under a dialog this screen stays in sight and live; under a full screen it rests.
        if not isinstance(self.app.screen, ModalScreen):
            self._active.clear()

    def on_screen_resume(self) -> None:
        self._active.set()
        self.wake()

    @work(thread=True, exclusive=True, group="poll")
    def _poll(self) -> None:
        worker = get_current_worker()
        while not (worker.is_cancelled or self._closing):
            self._active.wait(0.5)
            if not self._active.is_set() or self._closing:
                continue
            try:
                data = self.read()
            except SQLAlchemyError as exc:
                self.post_message(PollFailed(reason_of(exc)))
            else:
                self.post_message(Polled(data, self.app.clock()))
            self._wake.wait(self.app.refresh_interval)
            self._wake.clear()

    def on_polled(self, message: Polled[T]) -> None:
        message.stop()
        self.last_ok = message.at
        if self.failure is not None:
            self.failure = None
            self.show_failure(None)
        self.show(message.data)

    def on_poll_failed(self, message: PollFailed) -> None:
        message.stop()
        first = self.failure is None
        self.failure = message.reason
        if first:
            self.show_failure(message.reason)
