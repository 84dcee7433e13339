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

MARK = Text("●", style="bold magenta")
SELECTED_STYLE = "bold magenta"  # every cell of a selected row: what the actions act on


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
    Column("name", "name", 22, 0, lambda r: r.name, "left", "name"),  # cube-single-t1-fino-s0
    Column("task", "task", 18, 8, lambda r: r.task, "left", "task"),
    Column("algo", "algo", 4, 0, lambda r: r.algo, "left", "algo"),
    Column("seed", "seed", 4, 7, lambda r: str(r.seed), order_by="seed"),
    Column("status", "status", 9, 0, lambda r: fmt.status(r.status, r.cancel_requested),
           "left", "status"),
    Column("pack", "pack", 12, 6, lambda r: r.pack_id or "-", "left"),  # only with packed runs
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
NAME_MIN = 12  # the name's width when even the columns that always show barely fit
PADDING = 2  # DataTable's cell padding, one each side


def fitting(width: int, packed: bool = False) -> tuple[list[Column], int]:
    """(the columns that fit in `width` cells, in display order; the name column's width).

    The columns of rank 0 (id, name, algo, status) show whenever they fit at all; the others
    join by rank while the name keeps its full width, and what is left widens the name. The
    pack column is a candidate only where some run shown is `packed`."""
    chosen: set[str] = {"mark"}
    used = 1 + PADDING
    room_for_name = COLUMNS[1].width - NAME_MIN
    candidates = [c for c in COLUMNS if packed or c.key != "pack"]
    for column in sorted(candidates, key=lambda c: c.rank):
        need = (NAME_MIN if column.key == "name" else column.width) + PADDING
        if column.rank == 0:
            if used + need <= width:
                chosen.add(column.key)
                used += need
            continue
        if used + need + room_for_name > width:
            break
        chosen.add(column.key)
        used += need
    columns = [c for c in COLUMNS if c.key in chosen]
    return columns, min(NAME_MAX, NAME_MIN + max(0, width - used))


def middle_cut(text: str, width: int) -> str:
    """`text` in `width` characters: its start and its end around an ellipsis."""
    if len(text) <= width:
        return text
    head = max(1, (width - 1) // 3)
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


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
        self._packed = False  # whether a run shown has a pack: the pack column may show

    @property
    def cursor_run(self) -> int | None:
        """The id of the run under the cursor."""
        if not self.order or not 0 <= self.cursor_row < len(self.order):
            return None
        return self.order[self.cursor_row]

    def show(self, rows: Sequence[RunRow], selected: set[int]) -> None:
        """Display these rows; cells are updated in place when the same runs are shown."""
        reselected = self.selected ^ selected
        self.selected = set(selected)  # a copy: the screen changes its own set in place
        before = self.rows_by_id
        self.rows_by_id = {r.id: r for r in rows}
        ids = [r.id for r in rows]
        packed = any(r.pack_id for r in rows)
        if not self._columns:  # not sized yet: `on_resize` adds the rows
            self.order, self._packed = ids, packed
            return
        if packed != self._packed:  # the pack column comes or goes: lay the table out again
            self._packed = packed
            self._lay_out(rows, force=True)
            return
        if ids == self.order:
            for row in rows:
                if before.get(row.id) == row and row.id not in reselected:
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
        """Mark and colour the selected rows (the rows whose selection changed are redrawn)."""
        changed = self.selected ^ selected
        self.selected = set(selected)
        for run_id in self.order:
            if run_id in changed:
                row = self.rows_by_id[run_id]
                for column in self._all_columns():
                    self.update_cell(str(run_id), column[0], self._cell(row, column))

    def on_resize(self) -> None:
        self._lay_out([self.rows_by_id[i] for i in self.order])

    def _lay_out(self, rows: Sequence[RunRow], force: bool = False) -> None:
        """Choose the columns for the width (again when `force`) and show `rows` in them."""
        columns, name = fitting(self.size.width - 2, self._packed)  # room for the scrollbar
        if not force and [c.key for c in columns] == [c.key for c in self._columns] and \
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
        self.order = []
        self.show(rows, self.selected)
        if keep in self.order:
            self.move_cursor(row=self.order.index(keep), animate=False)

    def _all_columns(self) -> list[tuple[str, Column | None]]:
        return [("mark", None), *((c.key, c) for c in self._columns)]

    def _cell(self, row: RunRow, column: tuple[str, Column | None]) -> str | Text:
        key, spec = column
        selected = row.id in self.selected
        if spec is None:
            return MARK if selected else ""
        value = spec.cell(row)
        width = self._name_width if key == "name" else spec.width
        if key == "name":  # its end tells runs apart (...-quick-fino-s0): cut in the middle
            value = middle_cut(printable(value), width)
        text = value.copy() if isinstance(value, Text) else Text(printable(value))
        if spec.justify == "right":
            text.justify = "right"
        text.truncate(width, overflow="ellipsis")
        if selected:
            text.stylize(SELECTED_STYLE)
        return text

    def column_spec(self, key: str) -> Column | None:
        return next((c for c in COLUMNS if c.key == key), None)
