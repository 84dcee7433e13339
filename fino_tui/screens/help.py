"""The help screen: what each screen shows and every key, built from the bindings themselves so
that it cannot drift from them."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

INTRO = """\
# FINO Lab dashboard

**Runs** (the main screen): one page of runs of the database, newest first, refreshed every few
seconds. The plots below follow the run under the cursor, or the selected runs (space) drawn
over each other; `g` draws each group of seeds (same config but the seed) as its mean with a
95% confidence band. `k` picks the key; a large terminal shows three more plots (entropy with
its target, β, critic loss). Filter with the bar at the top (`/` jumps to its search field,
tab moves on). Sorting works on the columns the store can order (id, name, task, algo, seed,
status, start time): `s`, `S` or a click on the header.

**Run detail** (enter): state, error text, status history, resolved config, latest metrics,
the tail of `worker.log` and `events.log`, checkpoints.

Actions work on the selected runs, else on the run under the cursor. The dashboard only reads
the database (never holding a lock that could stall a worker) except for these actions. The
command palette (ctrl+p) lists every action and every plot key.

**Tuning** (F3; F2 goes back to the runs): the Optuna studies of `fino tune` in the tuning
storage (`--optuna-storage`, default `optuna.journal`): trials done, running, pruned and failed,
the best so far, each trial's parameters, value, last report to the pruner and its runs, over a
plot of each complete trial's value and the best so far. `[` and `]` switch between studies.
"""


def bindings_table(title: str, bindings: list[Binding]) -> str:
    rows = [f"## {title}", "", "| key | action |", "|---|---|"]
    for binding in bindings:
        keys = ", ".join(_key_name(k) for k in binding.key.split(","))
        rows.append(f"| `{keys}` | {binding.description or binding.action} |")
    return "\n".join(rows) + "\n"


def _key_name(key: str) -> str:
    return {"left_square_bracket": "[", "right_square_bracket": "]", "slash": "/",
            "question_mark": "?", "space": "space"}.get(key, key)


class HelpScreen(ModalScreen[None]):
    """Escape or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        from fino_tui.app import FinoApp
        from fino_tui.screens.detail import RunDetailScreen
        from fino_tui.screens.runs import RunsScreen
        from fino_tui.screens.tuning import TuningScreen

        text = "\n".join([
            INTRO,
            bindings_table("Runs screen", _as_bindings(RunsScreen.BINDINGS)),
            bindings_table("Run detail screen", _as_bindings(RunDetailScreen.BINDINGS)),
            bindings_table("Tuning screen", _as_bindings(TuningScreen.BINDINGS)),
            bindings_table("Everywhere", _as_bindings(FinoApp.BINDINGS)),
        ])
        with VerticalScroll(classes="help-box"):
            yield Markdown(text)


def _as_bindings(items: list) -> list[Binding]:
    return [b if isinstance(b, Binding) else Binding(*b) for b in items]
