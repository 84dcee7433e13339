"""The tuning view: the Optuna studies of `fino tune` (progress, best so far, every trial with
its parameters, last pruning report and runs) over a plot of the optimisation history. Reads
Optuna's storage in the polling thread and never writes to it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Header, Static

from fino.runfacts import STATUS_STYLE
from fino.store.text import printable
from fino.tune.summary import (
    StudySnapshot,
    TrialView,
    format_value,
    open_readonly,
    snapshot,
    study_names,
    study_run_status,
)
from fino_tui.curves import Curve
from fino_tui.polling import PollingScreen
from fino_tui.widgets.metric_plot import MetricPlot

# Optuna's states; a trial in flight shows its runs' (queued, running, parked, failed, ...).
STATE_STYLE: dict[str, str] = {
    **STATUS_STYLE, TrialView.COMPLETE: "green", TrialView.RUNNING: "cyan",
    TrialView.PRUNED: "yellow", TrialView.FAIL: "red", TrialView.WAITING: "dim",
    TrialView.PARKED: "magenta"}


@dataclass(frozen=True)
class TuningData:
    names: tuple[str, ...]
    shot: StudySnapshot | None
    problem: str | None = None  # why there is nothing to show
    failed: bool = False  # the storage could not be read this time


class TuningScreen(PollingScreen[TuningData]):
    """One study at a time (`[`/`]` switch between studies, newest shown first)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("right_square_bracket", "study(1)", "Next study", tooltip="next study"),
        Binding("left_square_bracket", "study(-1)", "Previous study",
                tooltip="previous study"),
        Binding("f2", "app.switch_mode('runs')", "Runs", tooltip="the runs view"),
        Binding("q", "app.request_quit", "Quit", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="tuning-screen")
        self.requested: str | None = None  # the study the user asked for (UI writes, thread reads)
        self.study_name: str | None = None  # the study on screen
        self.names: tuple[str, ...] = ()
        self.shot: StudySnapshot | None = None
        self._storage: Any = None  # the polling thread's own

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading…", id="tune-summary")
        with Vertical(id="tune-main"):
            yield DataTable(id="trials", cursor_type="row", zebra_stripes=True)
            yield MetricPlot(id="tune-history", classes="panel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#trials", DataTable).focus()

    # ---- thread ----

    def read(self) -> TuningData:
        try:
            if self._storage is None:
                self._storage = open_readonly(self.app.optuna_storage)
            names = tuple(study_names(self._storage))
            if not names:
                return TuningData((), None, "no study yet: `fino tune --task TASK` starts one")
            name = self.requested if self.requested in names else names[-1]
            try:  # where the trials' runs are: queued, running, cancelled, ...
                statuses: dict[int, str] | None = study_run_status(self.app.store, name)
            except SQLAlchemyError:
                statuses = None  # Optuna's states stand in until the store answers again
            return TuningData(names, snapshot(self._storage, name, statuses))
        except Exception as exc:  # a missing or unreadable storage is shown, not raised
            self._storage = None
            return TuningData((), None, " ".join(str(exc).split())[:300], failed=True)

    # ---- UI ----

    def show(self, data: TuningData) -> None:
        self.names = data.names
        summary = self.query_one("#tune-summary", Static)
        table = self.query_one("#trials", DataTable)
        plot = self.query_one("#tune-history", MetricPlot)
        if data.failed and self.shot is not None:  # keep the last data, say why it is old
            text = self._summary(self.shot)
            text.append(f"\n⚠ not readable now: {printable(data.problem)}", style="bold red")
            summary.update(text)
            return
        self.shot = data.shot
        if data.shot is None:
            summary.update(Text(printable(data.problem or ""), style="italic"))
            table.clear(columns=True)
            plot.set_data("objective", [], note=data.problem or "")
            return
        shot = data.shot
        self.study_name = shot.name
        summary.update(self._summary(shot))
        self._fill(table, shot)
        numbers, values, _ = shot.history()
        curves = [Curve("best so far", *shot.best_steps(), color=1, marks="line"),
                  Curve("trial value", numbers, values, color=0, marks="points")
                  ] if len(values) else []  # the points drawn last, over the line
        plot.set_data(f"{shot.settings.get('key', 'objective')} by trial", curves,
                      note="" if curves else "no complete trial yet")

    def _summary(self, shot: StudySnapshot) -> Text:
        text = Text()
        position = self.names.index(shot.name) + 1 if shot.name in self.names else 0
        text.append(f"study {printable(shot.name)}", style="bold")
        text.append(f" ({position}/{len(self.names)}; [ ] switch)", style="dim")
        settings = shot.settings
        if settings:
            text.append(printable(f" · {settings.get('task', '?')}, preset "
                                  f"{settings.get('preset') or '-'}, seeds "
                                  f"{settings.get('seeds', '?')}"))
        text.append(" · " + ", ".join(f"{n} {state}" for state, n in shot.counts.items())
                    if shot.counts else " · no trials yet")
        best = shot.best
        if best is not None:
            text.append(printable(f" · best {best.value:.2f} (trial {best.number}: " + ", ".join(
                f"{k}={format_value(v)}" for k, v in best.params.items()) + ")"),
                style="bold green")
        return text

    def _fill(self, table: DataTable, shot: StudySnapshot) -> None:
        params = list(dict.fromkeys(k for t in shot.trials for k in t.params))
        columns = ["trial", "state", "value", *params, "last report", "runs"]
        if [str(c.label) for c in table.columns.values()] != columns:
            table.clear(columns=True)
            for column in columns:
                table.add_column(Text(printable(column)), key=column)
        cursor = table.cursor_row
        table.clear()
        best = shot.best
        for t in reversed(shot.trials):  # newest first, as in the runs table
            style = "bold green" if best is not None and t.number == best.number else ""
            report = (f"{t.last_report[1]:.1f} @ {t.last_report[0]:,}"
                      if t.last_report is not None else "-")
            table.add_row(
                Text(str(t.number), style=style),
                Text(printable(t.state), style=STATE_STYLE.get(t.state, "")),
                Text("-" if t.value is None else f"{t.value:.2f}", style=style),
                *(Text(printable(format_value(t.params[p]))) if p in t.params else "-"
                  for p in params),
                report, ",".join(map(str, t.run_ids)) or "-", key=str(t.number))
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))

    def action_study(self, step: int) -> None:
        if not self.names:
            return
        current = self.requested or self.study_name
        index = self.names.index(current) if current in self.names else 0
        self.requested = self.names[(index + step) % len(self.names)]
        self.wake()
