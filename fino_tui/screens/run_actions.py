"""Actions on runs shared by the runs table and the run detail screen: cancel, retry, remove,
tag, export, PNG plot. Each asks what it needs, then runs in a thread worker (a write may wait
on a busy database; a `fino` command takes seconds) and reports in a notification."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy.exc import SQLAlchemyError
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Select, Static

from fino.store.text import printable
from fino_tui import actions
from fino_tui.actions import ActionError, id_spec
from fino_tui.polling import reason_of
from fino_tui.screens.dialogs import ConfirmScreen, PromptScreen

if TYPE_CHECKING:
    from fino_tui.app import FinoApp

RUN_ACTION_BINDINGS = [
    Binding("c", "cancel_runs", "Cancel", tooltip="cancel: stop or unqueue"),
    Binding("r", "retry_runs", "Retry", show=False, tooltip="retry: back to the queue"),
    Binding("x,delete", "remove_runs", "Remove", show=False,
            tooltip="remove, metrics included"),
    Binding("t", "tag_runs", "Tag", show=False, tooltip="add or remove tags"),
    Binding("e", "export_runs", "Export", show=False, tooltip="export metrics to a file"),
    Binding("p", "png_plot", "PNG", show=False, tooltip="write the plot as a PNG"),
]
# For the command palette: (title, help, action).
RUN_ACTION_COMMANDS = (
    ("Cancel runs", "Cancel the selected runs (or the one under the cursor)", "cancel_runs"),
    ("Retry runs", "Requeue failed, lost, cancelled or pruned runs", "retry_runs"),
    ("Remove runs", "Delete runs with their metrics and events (folders stay)", "remove_runs"),
    ("Tag runs", "Add (+tag) or remove (-tag) tags", "tag_runs"),
    ("Export metrics", "Write the runs' metrics as CSV, JSON or Parquet", "export_runs"),
    ("Write PNG plot", "Write the plotted key as a PNG (fino plot) and open it", "png_plot"),
)


class ExportScreen(ModalScreen[tuple[str, Path, list[str]] | None]):
    """Format, file and keys of an export; dismissed with (format, path, keys)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, run_ids: list[int], what: str = "") -> None:
        super().__init__(classes="dialog")
        self.run_ids = run_ids
        self.what = what or f"run(s) {id_spec(run_ids)}"

    def compose(self) -> ComposeResult:
        with Vertical(classes="box form"):
            yield Static(f"Export the metrics of {self.what}", classes="question",
                         markup=False)
            with Grid(classes="fields"):
                yield Label("format")
                yield Select([(f, f) for f in ("csv", "json", "parquet")], value="csv",
                             allow_blank=False, id="format", compact=True)
                yield Label("file")
                yield Input(str(self._path("csv")), id="path", compact=True)
                yield Label("keys")
                yield Input(placeholder="all; or eval/score policy/entropy", id="keys",
                            compact=True)
            yield Static("enter: export · escape: cancel", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    def _path(self, fmt: str) -> Path:
        return Path("exports") / f"runs-{id_spec(self.run_ids).replace(',', '_')}.{fmt}"

    def on_select_changed(self, event: Select.Changed) -> None:
        self.query_one("#path", Input).value = str(self._path(str(event.value)))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        path = self.query_one("#path", Input).value.strip()
        if path:
            self.dismiss((str(self.query_one("#format", Select).value), Path(path),
                          self.query_one("#keys", Input).value.split()))


class RunActions:
    """Mixed into a screen that says which runs an action is for (`targets`), which key it
    plots, and how to refresh (`wake`)."""

    app: FinoApp
    plot_key: str
    grouped: bool
    notify: Callable[..., None]
    wake: Callable[[], None]

    def targets(self) -> list[int]:
        raise NotImplementedError

    def target_names(self) -> tuple[dict[int, str], bool]:
        """({run id: name} of the runs this screen shows, whether `targets` is a selection
        the user made) for the dialogs to name the runs they act on."""
        return {}, False

    def which(self, ids: list[int]) -> str:
        """The runs an action is about, named: 'run 9 (NAME)' or 'the 3 selected runs:' and a
        line per run."""
        names, selection = self.target_names()
        return named_runs(ids, names, selection)

    def _targets_or_say(self) -> list[int]:
        ids = self.targets()
        if not ids:
            self.notify("no run here: move the cursor to a run", severity="warning")
        return ids

    def action_cancel_runs(self) -> None:
        if ids := self._targets_or_say():
            store = self.app.store
            self.app.push_screen(ConfirmScreen(
                f"Cancel {self.which(ids)}\nQueued runs are cancelled at once; running ones "
                "are stopped by their worker (metrics and checkpoint stay).",
                yes="Cancel runs"),
                lambda yes: yes and self.act("cancel", lambda: actions.cancel(store, ids)))

    def action_retry_runs(self) -> None:
        if ids := self._targets_or_say():
            store = self.app.store
            self.act("retry", lambda: actions.retry(store, ids))

    def action_remove_runs(self) -> None:
        if ids := self._targets_or_say():
            store = self.app.store
            self.app.push_screen(ConfirmScreen(
                f"Remove {self.which(ids)}\nwith their metrics and events? Their folders on "
                "disk stay.", yes="Remove"),
                lambda yes: yes and self.act("remove", lambda: actions.remove(store, ids)))

    def action_tag_runs(self) -> None:
        if not (ids := self._targets_or_say()):
            return
        store = self.app.store

        def check(spec: str) -> None:
            try:
                actions.parse_tag_changes(spec)
            except ActionError as exc:
                raise ValueError(str(exc)) from None

        def done(spec: str | None) -> None:
            if spec:
                add, drop = actions.parse_tag_changes(spec)
                self.act("tags", lambda: actions.change_tags(store, ids, add, drop))

        self.app.push_screen(PromptScreen(f"Tags of {self.which(ids)}\n+tag adds, -tag "
                                          "removes", placeholder="+paper -draft", check=check),
                             done)

    def action_export_runs(self) -> None:
        if not (ids := self._targets_or_say()):
            return
        url = self.app.store.url

        def done(answer: tuple[str, Path, list[str]] | None) -> None:
            if answer:
                fmt, path, keys = answer
                self.act("export", lambda: "wrote " + str(
                    actions.export_metrics(url, ids, path, fmt, keys).resolve()))

        self.app.push_screen(ExportScreen(ids, self.which(ids)), done)

    def action_png_plot(self) -> None:
        if not (ids := self._targets_or_say()):
            return
        url, key, grouped = self.app.store.url, self.plot_key, self.grouped
        path = actions.plot_path(ids, key)

        def write() -> str:
            out = actions.write_plot(url, ids, key, path, grouped).resolve()
            return f"wrote {out}" + (" (opened)" if actions.open_file(out) else "")

        self.notify(f"writing {path} …", timeout=2)
        self.act("PNG plot", write)

    @work(thread=True, group="actions")
    def act(self, what: str, do: Callable[[], str]) -> None:
        """Run `do` off the UI thread; its message, or the reason it failed, as a notice."""
        try:
            message = do()
        except ActionError as exc:
            self.app.call_from_thread(self.notify, f"{what}: {exc}", severity="error",
                                      markup=False, timeout=8)
        except SQLAlchemyError as exc:
            self.app.call_from_thread(self.notify, f"{what}: database: {reason_of(exc)}; "
                                      "nothing changed, try again", severity="error",
                                      markup=False, timeout=8)
        else:
            self.app.call_from_thread(self.notify, message, markup=False, timeout=6)
        self.wake()


NAMED_MAX = 6  # runs named one per line in a dialog; the rest are counted


def named_runs(ids: list[int], names: dict[int, str], selection: bool) -> str:
    """'run 9 (NAME)', or 'the 3 selected runs:' (or 'runs 3-5:') and '#ID NAME' lines."""
    if len(ids) == 1 and not selection:
        name = names.get(ids[0])
        return f"run {ids[0]}" + (f" ({printable(name)})" if name else "")
    head = (f"the {len(ids)} selected run{'s' * (len(ids) > 1)}" if selection
            else f"runs {id_spec(ids)}")
    lines = [f"  #{i} {printable(names.get(i, ''))}".rstrip() for i in ids[:NAMED_MAX]]
    if len(ids) > NAMED_MAX:
        lines.append(f"  … and {len(ids) - NAMED_MAX} more ({id_spec(ids)})")
    return "\n".join([f"{head}:", *lines])
