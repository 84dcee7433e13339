"""The main screen: the runs table (filter, sort, pages, multi-select) over live plots of the
selected runs, or of the run under the cursor. Polls the store in a thread."""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.widgets import DataTable, Footer, Header, Input, Static

from fino.metric_keys import (
    ACTOR_BC_FLOW_LOSS,
    ACTOR_DISTILL_LOSS,
    ACTOR_LOSS,
    ACTOR_NOISE_SCALE,
    ACTOR_Q_LOSS,
    CRITIC_LOSS,
    EVAL_LENGTH,
    EVAL_RETURN,
    EVAL_SCORE,
    ONLINE_EPISODE_RETURN,
    POLICY_BETA,
    POLICY_ENTROPY,
    PROGRESS_ENV_STEPS,
    UPDATES_PER_SEC,
)
from fino_tui import fmt
from fino_tui.curves import Panel, make_panels, series_keys
from fino_tui.polling import PollingScreen
from fino_tui.queries import (
    Page,
    PageRequest,
    SeriesCache,
    keys_of,
    read_page,
    runs_by_id,
    seed_group,
)
from fino_tui.screens.dialogs import ChoiceScreen, ConfirmScreen, PromptScreen
from fino_tui.screens.run_actions import RUN_ACTION_BINDINGS, RUN_ACTION_COMMANDS, RunActions
from fino_tui.widgets.filter_bar import FilterBar
from fino_tui.widgets.metric_plot import MetricPlot
from fino_tui.widgets.run_table import COLUMNS, RunTable

PAGE_SIZE = 100
DEFAULT_KEY = EVAL_SCORE
# What the extra plots of a large terminal show, after the chosen key.
COMPANION_KEYS = (POLICY_ENTROPY, POLICY_BETA, CRITIC_LOSS, EVAL_RETURN,
                  ACTOR_NOISE_SCALE)
# Offered in the key list even before a run logs them (in this order), then any other key.
PLOT_KEYS = (EVAL_SCORE, EVAL_RETURN, EVAL_LENGTH, POLICY_ENTROPY, POLICY_BETA,
             ACTOR_NOISE_SCALE, CRITIC_LOSS, ACTOR_LOSS, ACTOR_BC_FLOW_LOSS,
             ACTOR_DISTILL_LOSS, ACTOR_Q_LOSS, ONLINE_EPISODE_RETURN,
             UPDATES_PER_SEC, PROGRESS_ENV_STEPS)
MAX_LINES = 10  # runs drawn as their own lines: one palette colour each
MAX_GROUPED = 60  # runs averaged into seed groups
TWO_PLOTS_WIDTH, FOUR_PLOTS_HEIGHT = 140, 40
VIEWS = ("split", "table", "plots")
SORTABLE = [c for c in COLUMNS if c.order_by]


@dataclass(frozen=True)
class RunsView:
    """What the polling thread reads: set by the UI, read whole by the thread."""

    page: PageRequest
    plot_ids: tuple[int, ...]
    plot_keys: tuple[str, ...]
    grouped: bool


@dataclass(frozen=True)
class RunsData:
    view: RunsView
    page: Page
    panels: dict[str, Panel]
    logged: tuple[str, ...]  # the keys the plotted runs have logged
    plotted: tuple[int, ...]  # the plotted runs that still exist


class RunsScreen(RunActions, PollingScreen[RunsData]):
    """Runs table and plots (the tuning view is the other app mode)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_detail", "Detail", show=False, tooltip="the run's detail"),
        Binding("space", "toggle_select", "Select", tooltip="select or unselect the run"),
        Binding("k", "choose_key", "Key", tooltip="choose the plotted metric"),
        Binding("g", "toggle_group", "Seeds", show=False,
                tooltip="seed groups: mean and 95% CI"),
        Binding("n", "queue_new", "New", tooltip="queue new runs (a form)"),
        *RUN_ACTION_BINDINGS,
        Binding("w", "worker", "Worker", show=False, tooltip="start or stop a local worker"),
        Binding("A", "select_page", "Select page", show=False,
                tooltip="select (unselect) the page"),
        Binding("G", "select_seeds", "Select seeds", show=False,
                tooltip="select the run's seeds"),
        Binding("escape", "clear_selection", "Clear selection", show=False,
                tooltip="clear the selection"),
        Binding("slash", "focus_search", "Search", show=False,
                tooltip="search names, tasks, tags"),
        Binding("s", "sort(1)", "Sort", show=False, tooltip="sort by the next column"),
        Binding("S", "sort(0)", "Reverse sort", show=False, tooltip="reverse the order"),
        Binding("right_square_bracket", "page(1)", "Next page", show=False,
                tooltip="next page"),
        Binding("left_square_bracket", "page(-1)", "Previous page", show=False,
                tooltip="previous page"),
        Binding("v", "cycle_view", "View", tooltip="table+plots, table, plots"),
        Binding("f3", "app.switch_mode('tuning')", "Tuning"),
        # Wherever the focus is (the search field, or nothing in the plots-only view), the
        # arrows move the table's cursor; the table itself handles them first when focused.
        Binding("down", "move_cursor(1)", "Next run", show=False),
        Binding("up", "move_cursor(-1)", "Previous run", show=False),
        Binding("q", "app.request_quit", "Quit", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="runs-screen")
        self.request = PageRequest(limit=PAGE_SIZE)
        self.selected: set[int] = set()
        self.plot_key = DEFAULT_KEY
        self.grouped = False
        self.panel_count = 1
        self.view_mode = VIEWS[0]
        self.logged: tuple[str, ...] = ()
        self.total: int | None = None
        self.busy: frozenset[tuple[str, int]] = frozenset()  # workers at work, by heartbeats
        self.view = RunsView(self.request, (), (DEFAULT_KEY,), False)
        self.cache = SeriesCache()  # the polling thread's own

    def compose(self) -> ComposeResult:
        yield Header()
        yield FilterBar(id="filters")
        with Vertical(id="main"):
            yield RunTable(id="runs")
            with Grid(id="plots"):
                for index in range(4):
                    yield MetricPlot(id=f"plot-{index}", classes="panel")
        yield Static(id="status-line")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        # (PollingScreen.on_mount runs too: Textual calls the handler of every base class.)
        self.query_one(RunTable).focus()
        self._layout()
        self._status()

    @property
    def table(self) -> RunTable:
        return self.query_one(RunTable)

    # ---- polling ------------------------------------------------------------------------------

    def read(self) -> RunsData:
        view, store = self.view, self.app.store
        page = read_page(store, view.page, self.app.clock())
        runs = runs_by_id(store, view.plot_ids)
        logged = keys_of(store, [r.id for r in runs])
        data = self.cache.update(store, runs, series_keys(view.plot_keys))
        panels = make_panels(runs, data, view.plot_keys, view.grouped, logged)
        return RunsData(view, page, panels, tuple(logged), tuple(r.id for r in runs))

    def show(self, data: RunsData) -> None:
        self.total = data.page.total
        self.busy = data.page.workers
        vanished = set(data.view.plot_ids) - set(data.plotted)
        if vanished & self.selected:  # removed by someone else
            self.selected -= vanished
            self._changed()
        self.table.show(data.page.rows, self.selected)
        self.logged = data.logged
        for index, key in enumerate(self.panel_keys()):
            panel = data.panels.get(key)
            if panel is not None:
                self.query_one(f"#plot-{index}", MetricPlot).set_data(key, panel.curves,
                                                                      panel.note)
        self._status()

    def show_failure(self, reason: str | None) -> None:
        super().show_failure(reason)
        self._status()

    def _changed(self) -> None:
        """The user changed what is shown: read it now."""
        ids = sorted(self.selected) or ([run] if (run := self.table.cursor_run) else [])
        limit = MAX_GROUPED if self.grouped else MAX_LINES
        self.view = RunsView(self.request, tuple(ids[:limit]), tuple(self.panel_keys()),
                             self.grouped)
        self.wake()
        self._status()

    def panel_keys(self) -> list[str]:
        keys = [self.plot_key]
        for key in COMPANION_KEYS:
            if len(keys) >= self.panel_count:
                break
            if key not in keys:
                keys.append(key)
        return keys

    # ---- layout and status --------------------------------------------------------------------

    def on_resize(self) -> None:
        self._layout()

    def _layout(self) -> None:
        width, height = self.size
        count = 1 if width < TWO_PLOTS_WIDTH else (2 if height < FOUR_PLOTS_HEIGHT else 4)
        for n in (1, 2, 4):
            self.set_class(n == count, f"-plots-{n}")
        for mode in VIEWS:
            self.set_class(mode == self.view_mode, f"-view-{mode}")
        if count != self.panel_count:
            self.panel_count = count
            self._changed()

    def _status(self) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.failure:
            since = f"; data from {self.last_ok.astimezone():%H:%M:%S}" if self.last_ok else ""
            text.append(f"⚠ database not readable: {self.failure}{since} · ", style="bold red")
        request = self.request
        if self.total is None:
            text.append("reading…")
        else:
            first = min(self.total, request.offset + 1)
            last = min(self.total, request.offset + request.limit)
            text.append(f"runs {first}-{last}/{self.total:,}")
        column = next((c.label for c in SORTABLE if c.order_by == request.order_by),
                      request.order_by)
        text.append(f" · {column}{'↓' if request.descending else '↑'}")
        if self.selected:
            text.append(f" · {len(self.selected)} selected", style="bold")
        text.append(f" · {self.plot_key}{' (seed groups)' if self.grouped else ''}")
        local = self.app.local_worker
        here = (socket.gethostname(), local.pid) if local.pid is not None else None
        text.append(f" · {fmt.workers(local.state(), here, self.busy)}")
        if self.last_ok and not self.failure:
            text.append(f" · {self.last_ok.astimezone():%H:%M:%S}", style="dim")
        self.query_one("#status-line", Static).update(text)

    # ---- table events -------------------------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if not self.selected:
            self._changed()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_detail()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        spec = self.table.column_spec(str(event.column_key.value))
        if spec is None or spec.order_by is None:
            names = ", ".join(c.label for c in SORTABLE)
            self.notify(f"sorting by this column would read every run's metrics; sort by "
                        f"{names}", severity="warning")
            return
        descending = not self.request.descending if spec.order_by == self.request.order_by \
            else spec.order_by != "name"
        self._set_request(order_by=spec.order_by, descending=descending, offset=0)

    def on_filter_bar_changed(self, event: FilterBar.Changed) -> None:
        self._set_request(filters=event.filters, offset=0)

    def _set_request(self, **changes: object) -> None:
        self.request = replace(self.request, **changes)  # type: ignore[arg-type]
        self._changed()

    # ---- actions ------------------------------------------------------------------------------

    def targets(self) -> list[int]:
        run = self.table.cursor_run
        return sorted(self.selected) or ([run] if run is not None else [])

    def target_names(self) -> tuple[dict[int, str], bool]:
        return {i: r.name for i, r in self.table.rows_by_id.items()}, bool(self.selected)

    def action_open_detail(self) -> None:
        from fino_tui.screens.detail import RunDetailScreen

        if (run := self.table.cursor_run) is not None:
            self.app.push_screen(RunDetailScreen(run))

    def action_toggle_select(self) -> None:
        run = self.table.cursor_run
        if run is None:
            return
        self.selected ^= {run}
        self.table.set_selected(self.selected)
        self.table.action_cursor_down()
        self._changed()

    def action_select_page(self) -> None:
        page = set(self.table.order)
        self.selected = self.selected - page if page <= self.selected else self.selected | page
        self.table.set_selected(self.selected)
        self._changed()

    def action_clear_selection(self) -> None:
        if self.focused is not None and self.focused.parent is self.query_one(FilterBar):
            self._focus_table()  # escape leaves the filters first
            return
        if self.selected:
            self.selected = set()
            self.table.set_selected(self.selected)
            self._changed()

    def action_select_seeds(self) -> None:
        if (run := self.table.cursor_run) is not None:
            self._select_seeds(run)

    @work(thread=True, group="read")
    def _select_seeds(self, run_id: int) -> None:
        ids = seed_group(self.app.store, run_id)
        self.app.call_from_thread(self._set_selection, ids, run_id)

    def _set_selection(self, ids: list[int], run_id: int) -> None:
        self.selected = set(ids)
        self.table.set_selected(self.selected)
        self.notify(f"selected {len(ids)} seed(s) of run {run_id}; g draws their mean and band")
        self._changed()

    def action_focus_search(self) -> None:
        self.query_one("#text", Input).focus()

    def action_sort(self, forward: int) -> None:
        if not forward:
            self._set_request(descending=not self.request.descending, offset=0)
            return
        keys = [c.order_by for c in SORTABLE]
        index = keys.index(self.request.order_by) if self.request.order_by in keys else -1
        self._set_request(order_by=keys[(index + 1) % len(keys)], offset=0)

    def action_page(self, delta: int) -> None:
        limit, total = self.request.limit, self.total or 0
        offset = max(0, min(self.request.offset + delta * limit, max(0, total - 1) // limit
                            * limit))
        if offset != self.request.offset:
            self._set_request(offset=offset)

    def action_choose_key(self) -> None:
        logged = set(self.logged)
        keys = [*PLOT_KEYS, *(k for k in self.logged if k not in PLOT_KEYS)]
        choices = [(k, k if k in logged or not self.logged else f"{k}  (not logged)")
                   for k in keys]
        self.app.push_screen(ChoiceScreen("Plot which key?", choices, self.plot_key),
                             lambda key: key and self.set_plot_key(key))

    def set_plot_key(self, key: str) -> None:
        self.plot_key = key
        self.query_one("#plot-0", MetricPlot).set_data(key, [], "reading…")
        self._changed()

    def action_toggle_group(self) -> None:
        self.grouped = not self.grouped
        self._changed()

    def action_cycle_view(self) -> None:
        self.view_mode = VIEWS[(VIEWS.index(self.view_mode) + 1) % len(VIEWS)]
        self._layout()
        self._focus_table()

    def _focus_table(self) -> None:
        """The table has the focus while it is shown; in the plots-only view nothing does, so
        that keys reach the screen's bindings rather than a filter field."""
        if self.view_mode == "plots":
            self.set_focus(None)
        else:
            self.table.focus()

    def on_screen_resume(self) -> None:
        # (PollingScreen's handler runs too.) Back from a dialog or another screen: the focus
        # returns to the table unless it was in the filter bar.
        focused = self.focused
        if focused is None or not focused.display or \
                focused.parent is not self.query_one(FilterBar):
            self._focus_table()

    def action_move_cursor(self, by: int) -> None:
        if by > 0:
            self.table.action_cursor_down()
        else:
            self.table.action_cursor_up()

    def action_queue_new(self) -> None:
        from fino_tui.screens.queue_form import QueueFormScreen

        def done(ids: list[int] | None) -> None:
            if ids:
                self.notify(f"queued {len(ids)} run(s): {', '.join(map(str, ids))}")
                self.wake()

        self.app.push_screen(QueueFormScreen(), done)

    def action_worker(self) -> None:
        worker = self.app.local_worker
        if worker.running:
            self.app.push_screen(ConfirmScreen(
                f"Stop the local worker (pid {worker.pid})? Its running runs stop and go back "
                "to the queue; they resume from their checkpoints.", yes="Stop"),
                lambda yes: yes and self._stop_worker())
            return

        def check(text: str) -> None:
            if not text.strip().isdigit() or int(text) < 1:
                raise ValueError("a whole number >= 1")

        self.app.push_screen(PromptScreen("Start a local worker: runs at a time", value="1",
                                          check=check),
                             lambda jobs: jobs and self._start_worker(int(jobs)))

    def _start_worker(self, jobs: int) -> None:
        worker = self.app.local_worker
        try:
            pid = worker.start(jobs)
        except (OSError, RuntimeError, ValueError) as exc:
            self.notify(f"worker: {exc}", severity="error", markup=False)
            return
        self.notify(f"worker started (pid {pid}, {jobs} job(s)); its log: {worker.log_path}",
                    markup=False)
        self._status()

    def _stop_worker(self) -> None:
        self.app.local_worker.stop()
        self.notify("worker stopping: its runs go back to the queue")
        self._status()

    # ---- command palette ----------------------------------------------------------------------

    def commands(self) -> list[SystemCommand]:
        found = [
            SystemCommand("Queue new runs", "A form like `fino queue add`", self.action_queue_new),
            *(SystemCommand(title, help_text, getattr(self, f"action_{action}"))
              for title, help_text, action in RUN_ACTION_COMMANDS),
            SystemCommand("Start or stop a local worker", "`fino worker --jobs N` from here",
                          self.action_worker),
            SystemCommand("Plot key…", "Choose the metric key to plot", self.action_choose_key),
            SystemCommand("Group seeds", "Mean and 95% CI band per seed group, or one line "
                          "per run", self.action_toggle_group),
            SystemCommand("Select seeds of this run", "Every run differing only by seed",
                          self.action_select_seeds),
            SystemCommand("Run detail", "Config, events, error, logs, checkpoints",
                          self.action_open_detail),
            SystemCommand("Cycle view", "Table and plots, table only, plots only",
                          self.action_cycle_view),
        ]
        for key in dict.fromkeys([*PLOT_KEYS, *self.logged]):
            found.append(SystemCommand(f"Plot {key}", "Show this key in the first plot",
                                       lambda key=key: self.set_plot_key(key), discover=False))
        return found
