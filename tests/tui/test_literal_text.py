"""Stored text in the dashboard: markup shows as typed and terminal escape sequences as visible
characters, in the runs table, the run detail and the tag dialog; bad tags are refused there as
on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update
from textual.widgets import DataTable

from fino.store.db import Store
from fino.store.models import Event, Run
from fino_tui.actions import FormError, QueueRequest, queue_runs
from fino_tui.screens.detail import RunDetailScreen
from fino_tui.widgets.run_table import RunTable
from tests.inspect_fixtures import Seeded
from tests.tui.conftest import make_app, on_screen, wait_for

NAME = "\x1b[31mred[bold]name[/]"
TAGS = "[bold red]x[/],\x1b]0;title\x07"
ERROR = "boom \x1b[2J[blink]gone[/]"
PACK = "[i]p\x1b[0m"  # fits the pack column


@pytest.fixture
def crafted(seeded: Seeded) -> int:
    """The failed run, renamed, tagged and packed with markup and escape sequences."""
    with seeded.store.write() as session:
        session.execute(update(Run).where(Run.id == seeded.failed)
                        .values(name=NAME, tags=TAGS, error=ERROR, pack_id=PACK))
        session.add(Event(run_id=seeded.failed, kind="note",
                          message="\x1b[41m[reverse]event[/]"))
    return seeded.failed


@pytest.mark.anyio
async def test_markup_and_escapes_show_literally_in_table_and_detail(
        seeded: Seeded, crafted: int, tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        table = pilot.app.screen.query_one(RunTable)
        await wait_for(pilot, lambda: crafted in table.order, what="the crafted run")
        cell = table.get_cell(str(crafted), "name")
        assert cell.plain == "^[[31mred[bold]name[/]" and not cell.spans
        pack = table.get_cell(str(crafted), "pack")
        assert pack.plain == "[i]p^[[0m" and not pack.spans
        assert "^[[31mred[bold]name[/]" in on_screen(table)
        table.move_cursor(row=table.order.index(crafted))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        detail = app.screen
        await wait_for(pilot, lambda: detail.detail is not None, what="the detail")
        await pilot.pause()
        summary = on_screen(detail.query_one("#summary"))
        error = on_screen(detail.query_one("#error-text"))
        assert "[bold red]x[/],^[]0;title^G" in summary and "red[bold]name[/]" in summary
        assert "[i]p^[[0m" in summary
        assert "boom ^[[2J[blink]gone[/]" in error
        events = detail.query_one("#events", DataTable)
        messages = [events.get_row_at(i)[3].plain for i in range(events.row_count)]
        assert "^[[41m[reverse]event[/]" in messages
        for text in (summary, error, on_screen(events), detail.sub_title):
            assert "\x1b" not in text and "\x07" not in text


@pytest.mark.anyio
async def test_the_tag_dialog_refuses_markup_and_shows_it_literally(
        seeded: Seeded, tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        table = pilot.app.screen.query_one(RunTable)
        await wait_for(pilot, lambda: seeded.failed in table.order, what="rows")
        table.move_cursor(row=table.order.index(seeded.failed))
        await pilot.press("t", *"+[b]x", "enter")
        dialog = app.screen
        await wait_for(pilot, lambda: "letters, digits" in on_screen(dialog.query_one(".error")),
                       what="the refusal")
        assert "'[b]x'" in on_screen(dialog.query_one(".error"))
        await pilot.press("escape")
    with Store(seeded.url).read() as session:
        assert session.scalar(select(Run.tags).where(Run.id == seeded.failed)) == ""


def test_the_queue_form_names_the_tags_field_for_a_bad_tag(seeded: Seeded) -> None:
    with pytest.raises(FormError, match="letters, digits") as error:
        queue_runs(seeded.store, QueueRequest(task="cube-single", tags="paper [b]x"))
    assert error.value.field == "tags"
