"""The help screen: what each screen shows and every key, built from the bindings themselves so
that it cannot drift from them."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown, Static

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


# Listed under "Everywhere" (or not at all: the arrows move the table's cursor) rather than
# under each screen that repeats them.
NOT_PER_SCREEN = ("app.request_quit", "app.switch_mode", "move_cursor")
KEY_NAMES = {"left_square_bracket": "[", "right_square_bracket": "]", "slash": "/",
             "question_mark": "?", "escape": "esc", "delete": "del", "ctrl+t": "^t",
             "ctrl+q": "^q", "ctrl+p": "^p", "f1": "F1", "f2": "F2", "f3": "F3"}
Rows = list[tuple[str, str]]


def key_label(keys: str) -> str:
    return " ".join(KEY_NAMES.get(k, k) for k in keys.split(","))


def key_rows(bindings: list[Binding], seen: dict[str, str], fold: bool = True) -> Rows:
    """(keys, what they do) per binding; those listed before (`seen`: action -> keys) are
    left out, or with `fold` gathered in a last row 'KEYS: as above'."""
    rows, repeated = [], []
    for binding in bindings:
        if binding.action.startswith(NOT_PER_SCREEN):
            continue
        keys = key_label(binding.key)
        if seen.get(binding.action) == keys:
            repeated.append(keys)
            continue
        seen[binding.action] = keys
        rows.append((keys, binding.tooltip or binding.description or binding.action))
    if repeated and fold:
        rows.append(("", f"{' '.join(repeated)}: as above"))
    return rows


def keys_table(groups: list[tuple[str, Rows]]) -> Group:
    """Titled groups of keys, one per line, the keys of all groups in one column."""
    width = max((len(keys) for _, rows in groups for keys, _ in rows), default=1)
    parts: list[Text | Table] = []
    for title, rows in groups:
        parts.append(Text(title, style="bold underline"))
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(no_wrap=True, style="bold", width=width)
        table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        for keys, what in rows:
            table.add_row(keys, what)
        parts.append(table)
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    """Escape or ? closes it. The keys fill one screen at 80x24; the text below scrolls."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        from fino_tui.app import FinoApp
        from fino_tui.screens.detail import RunDetailScreen
        from fino_tui.screens.run_actions import RUN_ACTION_BINDINGS
        from fino_tui.screens.runs import RunsScreen
        from fino_tui.screens.tuning import TuningScreen

        seen: dict[str, str] = {}
        actions = key_rows(RUN_ACTION_BINDINGS, seen)
        runs = key_rows(_as_bindings(RunsScreen.BINDINGS), seen, fold=False)
        everywhere = [(key_label(b.key), b.tooltip or b.description)
                      for b in _as_bindings(FinoApp.BINDINGS)]
        left = [("Runs table", runs)]
        right = [("Selected runs (else the cursor's)", actions),
                 ("Run detail", key_rows(_as_bindings(RunDetailScreen.BINDINGS), seen)),
                 ("Tuning", key_rows(_as_bindings(TuningScreen.BINDINGS), seen)),
                 ("Everywhere", [*everywhere, ("^p", "command palette: every action")])]
        with VerticalScroll(classes="help-box"):
            yield Static(Text.assemble(("Keys", "bold"), "  esc closes · scroll down for what "
                                       "each screen shows", style="dim"), classes="help-title")
            with Horizontal(classes="help-keys"):
                yield Static(keys_table(left), classes="help-column")
                yield Static(keys_table(right), classes="help-column")
            yield Markdown(INTRO)


def _as_bindings(items: list) -> list[Binding]:
    return [b if isinstance(b, Binding) else Binding(*b) for b in items]
