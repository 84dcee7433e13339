"""`RunTable`: one page of runs; the columns that fit the width, rows updated in place so that
the cursor and the scroll position survive every refresh."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import DataTable

from fino.store.text import printable
from fino_tui import fmt
from fino_tui.queries import RunRow

MARK = "●"


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int
    rank: int  # columns of lower rank stay longest as the table narrows
    cell: Callable[[RunRow], str | Text]
    justify: str = "right"
    order_by: str | None = None  # the store's sort column, when it can sort by it


COLUMNS = (
    Column("id", "id", 5, 0, lambda r: str(r.id), order_by="id"),
    Column("name", "name", 18, 0, lambda r: r.name, "left", "name"),
    Column("task", "task", 18, 8, lambda r: r.task, "left", "task"),
    Column("algo", "algo", 4, 7, lambda r: r.algo, "left", "algo"),
    Column("seed", "seed", 4, 7, lambda r: str(r.seed), order_by="seed"),
    Column("status", "status", 9, 0, lambda r: fmt.status(r.status, r.cancel_requested),
           "left", "status"),
    Column("progress", "progress", 8, 1, lambda r: fmt.progress(r.progress, r.status)),
    Column("score", "score", 6, 1, lambda r: fmt.number(r.score)),
    Column("entropy", "entropy", 7, 4, lambda r: fmt.number(r.entropy, 2)),
    Column("beta", "β", 6, 5, lambda r: fmt.number(r.beta, 2)),
    Column("noise", "noise", 5, 6, lambda r: fmt.number(r.noise_scale, 2)),
    Column("elapsed", "elapsed", 7, 3, lambda r: fmt.fmt_duration(r.elapsed_s),
           order_by="started_at"),
    Column("eta", "ETA", 7, 2, lambda r: fmt.fmt_duration(r.eta_s)),
)
NAME_MAX = 40
PADDING = 2  # DataTable's cell padding, one each side


def fitting(width: int) -> tuple[list[Column], int]:
    """(the columns that fit in `width` cells, in display order; the name column's width)."""
    chosen: set[str] = {"mark"}
    used = 1 + PADDING
    for column in sorted(COLUMNS, key=lambda c: c.rank):
        need = column.width + PADDING
        if used + need <= width:
            chosen.add(column.key)
            used += need
    columns = [c for c in COLUMNS if c.key in chosen]
    name = min(NAME_MAX, COLUMNS[1].width + max(0, width - used))
    return columns, name


class RunTable(DataTable[str | Text]):
    """Rows keyed by run id; a mark column for the multi-selection."""

    DEFAULT_CSS = "RunTable { height: 1fr; }"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Detail")]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.rows_by_id: dict[int, RunRow] = {}
        self.order: list[int] = []
        self.selected: set[int] = set()
        self._columns: list[Column] = []
        self._name_width = 0

    @property
    def cursor_run(self) -> int | None:
        """The id of the run under the cursor."""
        if not self.order or not 0 <= self.cursor_row < len(self.order):
            return None
        return self.order[self.cursor_row]

    def show(self, rows: Sequence[RunRow], selected: set[int]) -> None:
        """Display these rows; cells are updated in place when the same runs are shown."""
        self.selected = selected
        before = self.rows_by_id
        self.rows_by_id = {r.id: r for r in rows}
        ids = [r.id for r in rows]
        if not self._columns:  # not sized yet: `on_resize` adds the rows
            self.order = ids
            return
        if ids == self.order:
            for row in rows:
                if before.get(row.id) == row:
                    continue
                for column in self._all_columns():
                    self.update_cell(str(row.id), column[0], self._cell(row, column))
            return
        keep = self.cursor_run
        self.order = ids
        self.clear()
        for row in rows:
            self.add_row(*(self._cell(row, c) for c in self._all_columns()), key=str(row.id))
        if keep in ids:
            self.move_cursor(row=ids.index(keep), animate=False)

    def set_selected(self, selected: set[int]) -> None:
        self.selected = selected
        for run_id in self.order:
            self.update_cell(str(run_id), "mark", MARK if run_id in selected else "")

    def on_resize(self) -> None:
        columns, name = fitting(self.size.width - 2)  # room for the vertical scrollbar
        if [c.key for c in columns] == [c.key for c in self._columns] and \
                name == self._name_width:
            return
        self._columns, self._name_width = columns, name
        keep = self.cursor_run
        self.clear(columns=True)
        self.add_column("", key="mark", width=1)
        for column in columns:
            width = name if column.key == "name" else column.width
            label = Text(column.label, justify="right" if column.justify == "right" else "left")
            self.add_column(label, key=column.key, width=width)
        rows = [self.rows_by_id[i] for i in self.order]
        self.order = []
        self.show(rows, self.selected)
        if keep in self.order:
            self.move_cursor(row=self.order.index(keep), animate=False)

    def _all_columns(self) -> list[tuple[str, Column | None]]:
        return [("mark", None), *((c.key, c) for c in self._columns)]

    def _cell(self, row: RunRow, column: tuple[str, Column | None]) -> str | Text:
        key, spec = column
        if spec is None:
            return MARK if row.id in self.selected else ""
        value = spec.cell(row)
        width = self._name_width if key == "name" else spec.width
        text = value if isinstance(value, Text) else Text(printable(value))
        if spec.justify == "right":
            text.justify = "right"
        text.truncate(width, overflow="ellipsis")
        return text

    def column_spec(self, key: str) -> Column | None:
        return next((c for c in COLUMNS if c.key == key), None)
