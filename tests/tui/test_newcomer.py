"""The dashboard as a newcomer meets it at 80x24 and 160x45: runs told apart, keys that keep
working after a view change or a dialog, actions that name what they act on, workers found
wherever they run, the whole error, one screen of keys, aligned plots."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import select, update
from textual.widgets import DataTable, Input, Static, TabbedContent

from fino.store.db import Store
from fino.store.models import Run
from fino_tui.screens.dialogs import ConfirmScreen
from fino_tui.screens.help import HelpScreen
from fino_tui.screens.queue_form import QueueFormScreen
from fino_tui.screens.run_actions import RUN_ACTION_BINDINGS
from fino_tui.screens.runs import RunsScreen
from fino_tui.widgets.metric_plot import MetricPlot
from fino_tui.widgets.run_table import RunTable
from tests.inspect_fixtures import Seeded
from tests.tui.conftest import NOW, make_app, wait_for

pytestmark = pytest.mark.anyio


async def loaded(pilot) -> RunTable:
    table = pilot.app.screen.query_one(RunTable)
    await wait_for(pilot, lambda: len(table.order) == 11, what="11 rows")
    return table


async def test_v_cycles_the_views_and_the_keys_stay_with_the_screen(seeded: Seeded,
                                                                    tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await loaded(pilot)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await pilot.press("v", "v")
        assert screen.view_mode == "plots"
        assert not isinstance(app.focused, Input)  # not the search field
        await pilot.press("down")  # the arrows still pick the plotted run
        assert table.cursor_row == 1
        assert screen.view.plot_ids == (table.order[1],)  # what the plots now follow
        await pilot.press("v")
        assert screen.view_mode == "split" and app.focused is table
        assert screen.query_one("#text", Input).value == ""  # no v typed into the filter
        shown = {key for key, b in screen.active_bindings.items() if b.binding.show}
        assert {"v", "f3", "question_mark"} <= shown  # in the footer


async def test_the_arrows_work_at_once_after_a_dialog(seeded: Seeded, tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await loaded(pilot)
        for keys in (("c", "n"), ("k", "escape"), ("question_mark", "escape"),
                     ("n", "escape"), ("slash", "escape")):
            row = table.cursor_row
            await pilot.press(*keys)
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="closed")
            await pilot.press("down")
            assert table.cursor_row == row + 1, keys


async def test_an_action_names_the_selected_runs_it_acts_on(seeded: Seeded,
                                                            tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await loaded(pilot)
        chosen = seeded.fql[:2]
        for run_id in chosen:
            table.move_cursor(row=table.order.index(run_id))
            await pilot.press("space")
        table.move_cursor(row=table.order.index(seeded.queued))  # the cursor elsewhere
        for run_id in chosen:  # every cell of a selected row stands out
            assert "magenta" in str(table.get_cell(str(run_id), "name").spans)
        assert "magenta" not in str(table.get_cell(str(seeded.queued), "name").spans)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the dialog")
        question = str(app.screen.query_one(".question", Static).render())
        assert "the 2 selected runs" in question
        for run_id in chosen:
            assert f"#{run_id} cube-single-fql-s" in question
        assert f"#{seeded.queued}" not in question
        await pilot.press("n")


async def test_workers_are_found_by_the_heartbeats_of_their_runs(seeded: Seeded,
                                                                 tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(160, 45)) as pilot:
        await loaded(pilot)
        status = app.screen.query_one("#status-line", Static)
        await wait_for(pilot, lambda: "no worker" in str(status.render()), what="no worker")
        with Store(seeded.url).write() as session:  # a `fino worker` on another machine
            session.execute(update(Run).where(Run.id == seeded.running).values(
                heartbeat_at=NOW - timedelta(seconds=5), worker_host="gpu-1", worker_pid=4242))
        app.screen.wake()
        await wait_for(pilot, lambda: "1 worker at work" in str(status.render()),
                       what="the worker elsewhere")
        with Store(seeded.url).write() as session:  # its heartbeat went stale
            session.execute(update(Run).where(Run.id == seeded.running).values(
                heartbeat_at=NOW - timedelta(minutes=10)))
        app.screen.wake()
        await wait_for(pilot, lambda: "no worker" in str(status.render()), what="gone")


@pytest.mark.parametrize("size", [(80, 24), (160, 45)])
async def test_the_whole_error_shows_in_a_tab_of_its_own(seeded: Seeded, tmp_path: Path,
                                                         size: tuple[int, int]) -> None:
    error = "\n".join(f"  frame {i}" for i in range(40)) + "\nTrainingDiverged: at step 700"
    with Store(seeded.url).write() as session:
        session.execute(update(Run).where(Run.id == seeded.failed).values(
            error=error, notes="rerun with a lower lr"))
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=size) as pilot:
        table = await loaded(pilot)
        table.move_cursor(row=table.order.index(seeded.failed))
        await pilot.press("enter")
        await wait_for(pilot, lambda: getattr(app.screen, "detail", None) is not None,
                       what="the detail")
        tabs = app.screen.query_one(TabbedContent)
        assert tabs.active == "tab-error"
        text = app.screen.query_one("#error-text", Static)
        assert "TrainingDiverged: at step 700" in str(text.render())
        console = Console(width=200, record=True, file=io.StringIO())
        console.print(app.screen.query_one("#summary", Static).content)
        assert "notes rerun with a lower lr" in console.export_text()  # `fino runs note`
        box = app.screen.query_one("#error-box")
        assert box.size.height >= 8  # far more than one line, at 80x24 too
        await wait_for(pilot, lambda: box.scroll_y == box.max_scroll_y > 0,
                       what="scrolled to the error's last line")
        await pilot.press("escape")
        table.move_cursor(row=table.order.index(seeded.fino[0]))  # a run without an error
        await pilot.press("enter")
        await wait_for(pilot, lambda: getattr(app.screen, "detail", None) is not None,
                       what="the other detail")
        tabs = app.screen.query_one(TabbedContent)
        assert tabs.active == "tab-events"
        assert not tabs.get_tab("tab-error").display


async def test_every_key_fits_on_one_help_screen_at_80x24(seeded: Seeded,
                                                          tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help")
        keys = app.screen.query_one(".help-keys")
        assert keys.region.y >= 0 and keys.region.bottom <= 24 - 1  # above the box's border
        console = Console(width=38, record=True, file=io.StringIO())
        for column in app.screen.query(".help-column").results(Static):
            console.print(column.content)
        text = console.export_text()
        for binding in RUN_ACTION_BINDINGS:
            assert binding.tooltip in text
        for words in ("select or unselect the run", "table+plots, table, plots",
                      "the tuning view", "command palette"):
            assert words in text


async def test_long_legends_stay_on_one_line_and_plots_aligned(seeded: Seeded,
                                                               tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(160, 45)) as pilot:
        table = await loaded(pilot)
        for run_id in (*seeded.fino, *seeded.fql, *seeded.balanced):
            table.move_cursor(row=table.order.index(run_id))
            await pilot.press("space")
        plots = [app.screen.query_one(f"#plot-{i}", MetricPlot) for i in range(2)]
        await wait_for(pilot, lambda: all(len(p.curves) >= 8 for p in plots), what="curves")
        await pilot.pause(0.5)
        legends = [p.query_one(".legend", Static) for p in plots]
        assert [legend.size.height for legend in legends] == [1, 1]
        assert "…" in str(legends[0].render())
        canvases = [p.children[1].region.y for p in plots]
        assert canvases[0] == canvases[1]


async def test_the_queue_form_blames_the_override_and_takes_a_name(seeded: Seeded,
                                                                   tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, QueueFormScreen))
        form = app.screen
        form.query_one("#task", Input).value = "cube-single"
        form.query_one("#preset", Input).value = "quick"
        form.query_one("#overrides", Input).value = "agent.alpa=10"
        await pilot.press("ctrl+s")
        error = form.query_one("#error", Static)
        await wait_for(pilot, lambda: "alpa" in str(error.render()), what="the error")
        assert form.query_one("#overrides").has_class("-invalid")
        assert not form.query_one("#preset").has_class("-invalid")
        form.query_one("#overrides", Input).value = "agent.alpha=10"
        form.query_one("#name", Input).value = "alpha-ten"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="form closed")
        with Store(seeded.url).read() as session:
            assert session.scalars(select(Run.name).where(Run.id > 11)).all() == ["alpha-ten"]


async def test_a_trial_in_flight_shows_where_its_runs_are(seeded: Seeded,
                                                          tmp_path: Path) -> None:
    from tests.tune_fixtures import make_study

    make_study(tmp_path / "optuna.journal", "cube-tune")  # trial 3 runs 7 and 8
    with Store(seeded.url).write() as session:
        session.execute(update(Run).where(Run.id.in_([7, 8])).values(
            study="cube-tune", status="queued"))
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("f3")
        table = app.screen.query_one("#trials", DataTable)
        await wait_for(pilot, lambda: table.row_count == 4, what="trials")
        await wait_for(pilot, lambda: str(table.get_row_at(0)[1]) == "queued",
                       what="trial 3 queued, not running")
        with Store(seeded.url).write() as session:
            session.execute(update(Run).where(Run.id.in_([7, 8])).values(status="cancelled"))
        app.screen.wake()
        await wait_for(pilot, lambda: str(table.get_row_at(0)[1]) == "cancelled",
                       what="trial 3's runs cancelled")
