"""One run: its settings and state, status history, error text, resolved config, latest metrics,
the tail of its logs and its checkpoints; refreshed while it runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Log, Static, TabbedContent, TabPane

from fino.analysis.groups import flatten
from fino.metric_keys import EVAL_SCORE
from fino.runfacts import elapsed, fmt_time
from fino.store.text import printable
from fino_tui import fmt
from fino_tui.fmt import plain
from fino_tui.polling import PollingScreen
from fino_tui.queries import RunDetail, read_detail
from fino_tui.screens.run_actions import RUN_ACTION_BINDINGS, RUN_ACTION_COMMANDS, RunActions


class RunDetailScreen(RunActions, PollingScreen[RunDetail | None]):
    """Pushed over the runs table; escape goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", tooltip="back to the runs"),
        *RUN_ACTION_BINDINGS,
        Binding("q", "app.request_quit", "Quit", show=False),
    ]

    def __init__(self, run_id: int) -> None:
        super().__init__(classes="detail")
        self.run_id = run_id
        self.detail: RunDetail | None = None
        self.plot_key, self.grouped = EVAL_SCORE, False
        self._shown: dict[str, object] = {}  # what each part shows: redraw only on change

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="vanished")
        with Vertical(id="detail-top"):
            yield Static(f"run {self.run_id}: reading…", id="summary")
        with TabbedContent(id="tabs"):
            with TabPane("Error", id="tab-error"), VerticalScroll(id="error-box"):
                yield Static("", id="error-text")
            with TabPane("Events", id="tab-events"):
                yield DataTable(id="events", cursor_type="row", zebra_stripes=True)
            with TabPane("Config", id="tab-config"):
                yield DataTable(id="config", cursor_type="row", zebra_stripes=True)
            with TabPane("Metrics", id="tab-metrics"):
                yield DataTable(id="metrics", cursor_type="row", zebra_stripes=True)
            with TabPane("Logs", id="tab-logs"):
                yield Static("worker.log (the run's output)", classes="log-title")
                yield Log(id="worker-log", max_lines=2_000)
                yield Static("events.log", classes="log-title")
                yield Log(id="events-log", max_lines=2_000)
            with TabPane("Checkpoints", id="tab-checkpoints"):
                yield DataTable(id="checkpoints", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        for table_id, columns in (("events", ("time", "event", "status", "message")),
                                  ("config", ("setting", "value")),
                                  ("metrics", ("key", "step", "value")),
                                  ("checkpoints", ("file", "size", "modified"))):
            self.query_one(f"#{table_id}", DataTable).add_columns(*columns)
        self.query_one("#vanished").display = False
        self.query_one(TabbedContent).hide_tab("tab-error")

    def targets(self) -> list[int]:
        return [self.run_id]

    def target_names(self) -> tuple[dict[int, str], bool]:
        return ({self.run_id: self.detail.run.name} if self.detail else {}), False

    def read(self) -> RunDetail | None:
        return read_detail(self.app.store, self.run_id)

    def show(self, detail: RunDetail | None) -> None:
        notice = self.query_one("#vanished", Static)
        if detail is None:
            notice.update(f"run {self.run_id} no longer exists (removed)"
                          + ("; showing what was last read" if self.detail else ""))
            notice.display = True
            return
        notice.display = False
        self.detail = detail
        run = detail.run
        self.sub_title = printable(f"run {run.id}: {run.name}")
        self.query_one("#summary", Static).update(self._summary(detail))
        self._error(run.error or "")
        self._fill("events", [(fmt_time(e.time), e.kind,
                               f"{e.old_status or '∅'} → {e.new_status}" if e.new_status else "",
                               e.message) for e in detail.events])
        self._fill("config", [(k, str(v)) for k, v in sorted(flatten(run.config or {}).items())])
        self._fill("metrics", [(k, f"{step:,}", "-" if v is None else f"{v:.5g}")
                               for k, (step, v) in sorted(detail.latest.items())])
        self._fill("checkpoints", [(str(c.path), _size(c.size), fmt_time(c.modified))
                                   for c in detail.checkpoints])
        self._log("worker-log", detail.worker_log or f"(no worker.log in {run.run_dir})")
        self._log("events-log", detail.events_log or f"(no events.log in {run.run_dir})")

    def _summary(self, detail: RunDetail) -> Group:
        run = detail.run
        worker = f"{run.worker_host}:{run.worker_pid}" if run.worker_host else "-"
        step = max((s for s, _ in detail.latest.values()), default=None)
        score = detail.latest.get(EVAL_SCORE, (0, None))[1]
        status = fmt.status(run.status, run.cancel_requested)
        if run.exit_code is not None:
            status.append(f" (exit code {run.exit_code})")
        pairs = [
            ("run", Text(printable(f"{run.id}: {run.name}"), style="bold")),
            ("status", status), ("task", plain(f"{run.task} ({run.backend})")),
            ("algo, seed", plain(f"{run.algo}, {run.seed}")), ("preset", plain(run.preset)),
            ("tags", plain(run.tags)),
            ("started", fmt_time(run.started_at)), ("finished", fmt_time(run.finished_at)),
            ("elapsed", fmt.fmt_duration(elapsed(run, self.app.clock()))),
            ("step, score", f"{'-' if step is None else f'{step:,}'}, {fmt.number(score)}"),
            ("attempts", f"{run.attempts} of {run.max_attempts}"), ("worker", plain(worker)),
        ]
        if run.pack_id:
            pairs.append(("pack", plain(run.pack_id)))
        if run.study:
            pairs.append(("study", plain(f"{run.study}, trial {run.trial}")))
        width = self.size.width
        columns = 3 if width >= 150 else (2 if width >= 70 else 1)
        grid = Table.grid(padding=(0, 1), expand=True)
        for _ in range(columns):
            grid.add_column(style="bold", no_wrap=True)
            grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        for start in range(0, len(pairs), columns):
            cells: list[str | Text] = []
            for label, value in pairs[start:start + columns]:
                cells += [label, value]
            grid.add_row(*cells)
        folder = Text.assemble(("folder ", "bold"), plain(run.run_dir))
        if not run.notes:
            return Group(grid, folder)
        notes = Text.assemble(("notes ", "bold"), plain(run.notes), no_wrap=True,
                              overflow="ellipsis")  # the whole note: `fino runs show`
        return Group(grid, folder, notes)

    def _error(self, error: str) -> None:
        """The error text in a tab of its own (scrolled, the whole height), opened the first
        time a run shows one."""
        if self._shown.get("error") == error:
            return
        had = bool(self._shown.get("error"))
        self._shown["error"] = error
        tabs = self.query_one(TabbedContent)
        self.query_one("#error-text", Static).update(
            Text(printable(error, multiline=True), style="red"))
        if not error:
            tabs.hide_tab("tab-error")
            return
        tabs.show_tab("tab-error")
        if not had:
            tabs.active = "tab-error"
        box = self.query_one("#error-box", VerticalScroll)
        box.call_after_refresh(box.scroll_end, animate=False)  # a traceback's reason is last

    def _fill(self, table_id: str, rows: Sequence[tuple[str, ...]]) -> None:
        if self._shown.get(table_id) == rows:
            return  # unchanged: keep the cursor and the scroll position
        self._shown[table_id] = rows
        table = self.query_one(f"#{table_id}", DataTable)
        row = table.cursor_row
        table.clear()
        table.add_rows([[plain(cell, "") for cell in row] for row in rows])
        if rows:
            table.move_cursor(row=min(row, len(rows) - 1), animate=False)

    def _log(self, log_id: str, text: str) -> None:
        if self._shown.get(log_id) == text:
            return
        self._shown[log_id] = text
        log = self.query_one(f"#{log_id}", Log)
        log.clear()
        log.write(printable(text, multiline=True))

    def commands(self) -> list[SystemCommand]:
        return [SystemCommand(title, help_text, getattr(self, f"action_{action}"))
                for title, help_text, action in RUN_ACTION_COMMANDS]


def _size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
