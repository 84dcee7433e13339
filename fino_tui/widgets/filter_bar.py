"""`FilterBar`: one line of compact controls (free text, status, task, algorithm, tag) that
posts the resulting `Filters` once the user pauses typing."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, Select

from fino.store.models import ACTIVE, FINISHED, STATUSES
from fino_tui.queries import Filters

DEBOUNCE_S = 0.3
STATUS_CHOICES: dict[str, tuple[str, ...]] = {
    "active": ACTIVE, "finished": FINISHED, **{s: (s,) for s in STATUSES}}


class FilterBar(Horizontal):
    """Filters of the runs table; `Changed` carries the new `Filters`."""

    DEFAULT_CSS = """
    FilterBar { height: 1; }
    FilterBar > Input { width: 1fr; min-width: 8; margin-right: 1; }
    FilterBar > #text { width: 2fr; }
    FilterBar > Select { width: 18; margin-right: 1; }
    FilterBar > #algo { width: 11; }
    """

    class Changed(Message):
        def __init__(self, filters: Filters) -> None:
            super().__init__()
            self.filters = filters

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Input(placeholder="/ search", id="text", compact=True)
        yield Select([(name, name) for name in STATUS_CHOICES], prompt="any status",
                     id="status", compact=True)
        yield Input(placeholder="task", id="task", compact=True)
        yield Select([("fino", "fino"), ("fql", "fql")], prompt="any algo", id="algo",
                     compact=True)
        yield Input(placeholder="tag", id="tag", compact=True)

    @property
    def filters(self) -> Filters:
        status = self.query_one("#status", Select).value
        algo = self.query_one("#algo", Select).value
        return Filters(
            status=STATUS_CHOICES.get(status, ()) if isinstance(status, str) else (),
            task=self.query_one("#task", Input).value.strip(),
            algo=algo if isinstance(algo, str) else "",
            tag=self.query_one("#tag", Input).value.strip(),
            text=self.query_one("#text", Input).value.strip())

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._debounce()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._post()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._post()

    def _debounce(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(DEBOUNCE_S, self._post)

    def _post(self) -> None:
        self._timer = None
        self.post_message(self.Changed(self.filters))
