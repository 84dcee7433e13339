"""The form that queues new runs: the fields of `fino queue add`, validated the same way
(`build_run_config` for every seed) before anything is written."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from fino.store.text import printable
from fino_tui.actions import FormError, QueueRequest, queue_runs
from fino_tui.polling import reason_of

if TYPE_CHECKING:
    from fino_tui.app import FinoApp

# (field, label, placeholder); algo is a Select.
FIELDS = (
    ("task", "task", "cube-single, antmaze-large-navigate, Pendulum-v1, ..."),
    ("preset", "preset", "paper (default), quick, or FILE.toml[:PROFILE]"),
    ("seeds", "seeds", "0-4, 0,2,5 or 3"),
    ("overrides", "overrides", "train.offline_steps=1000 agent.alpha=300"),
    ("tags", "tags", "sweep paper"),
    ("name", "name", "default: task[-profile]-algo-sSEED"),
    ("priority", "priority", "higher runs first"),
    ("backend", "backend", "auto, ogbench, minari or gymnasium"),
    ("dataset", "dataset", "gymnasium backend: FILE.npz or a Minari id"),
)
DEFAULTS = {"seeds": "0", "priority": "0", "backend": "auto"}


class QueueFormScreen(ModalScreen[list[int] | None]):
    """Dismissed with the ids of the queued runs, or None when cancelled."""

    app: FinoApp
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel"),
                Binding("ctrl+s", "submit", "Queue")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="box form"):
            yield Static("Queue new runs (as `fino queue add`)", classes="question")
            with Grid(classes="fields"):
                for name, label, placeholder in FIELDS[:1]:
                    yield Label(label)
                    yield Input(DEFAULTS.get(name, ""), placeholder=placeholder, id=name,
                                compact=True)
                yield Label("algo")
                yield Select([("fino", "fino"), ("fql", "fql")], value="fino",
                             allow_blank=False, id="algo", compact=True)
                for name, label, placeholder in FIELDS[1:]:
                    yield Label(label)
                    yield Input(DEFAULTS.get(name, ""), placeholder=placeholder, id=name,
                                compact=True)
            yield Static("", id="error", classes="error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Queue (ctrl+s)", variant="primary", id="queue", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#task", Input).focus()

    def request(self) -> QueueRequest:
        values = {name: self.query_one(f"#{name}", Input).value for name, _, _ in FIELDS}
        algo = self.query_one("#algo", Select).value
        return QueueRequest(algo=str(algo), **values)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "queue":
            self.action_submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def action_submit(self) -> None:
        for field in self.query(Input):
            field.remove_class("-invalid")
        self.query_one("#error", Static).update("checking…")
        self._queue(self.request())

    @work(thread=True, exclusive=True, group="queue-form")
    def _queue(self, request: QueueRequest) -> None:
        # A thread: resolving a task may import its backend, and the write may wait on a lock.
        try:
            ids = queue_runs(self.app.store, request, runs_dir=self.app.runs_dir)
        except FormError as exc:
            self.app.call_from_thread(self._reject, exc.field, str(exc))
        except SQLAlchemyError as exc:
            self.app.call_from_thread(self._reject, "", f"database: {reason_of(exc)}")
        else:
            self.app.call_from_thread(self.dismiss, ids)

    def _reject(self, field: str, message: str) -> None:
        self.query_one("#error", Static).update(Text(printable(message)))
        if field and (found := self.query(f"#{field}")):
            found.first().add_class("-invalid")
            found.first().focus()
