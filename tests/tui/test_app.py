"""The dashboard driven with Pilot on a real SQLite file: what it lists, what it plots while
another process writes, and what its actions change in the database."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from fino.store import queue
from fino.store.db import Store
from fino.store.models import Run
from fino_tui.screens.detail import RunDetailScreen
from fino_tui.screens.queue_form import QueueFormScreen
from fino_tui.screens.runs import RunsScreen
from fino_tui.widgets.metric_plot import MIN_REDRAW_S, MetricPlot
from fino_tui.widgets.run_table import RunTable
from tests.inspect_fixtures import Seeded
from tests.tui.conftest import REFRESH_S, make_app, on_screen, wait_for

pytestmark = pytest.mark.anyio

# Run by a separate Python process: one evaluation of a run, as a worker's sink writes it.
INSERT_METRIC = """
import sys
from sqlalchemy import insert
from fino.store.db import Store
from fino.store.models import Metric
url, run_id, step, value = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
with Store(url).write() as session:
    session.execute(insert(Metric), [{"run_id": run_id, "step": step, "key": "eval/score",
                                      "value": value, "wall_time": 1.7e9 + step}])
"""


def status_of(url: str, run_id: int) -> tuple[str, bool] | None:
    with Store(url).read() as session:
        row = session.execute(select(Run.status, Run.cancel_requested)
                              .where(Run.id == run_id)).first()
    return None if row is None else (row[0], row[1])


async def loaded(pilot, count: int = 11) -> RunTable:
    table = pilot.app.screen.query_one(RunTable)
    await wait_for(pilot, lambda: len(table.order) == count, what=f"{count} rows")
    return table


async def test_table_lists_the_runs_of_a_sqlite_file(seeded: Seeded, tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        table = await loaded(pilot)
        assert table.order == list(range(11, 0, -1))  # newest first
        assert str(table.get_cell(str(seeded.failed), "status")) == "failed"
        assert str(table.get_cell(str(seeded.running), "progress")) == "on 60%"
        assert str(table.get_cell(str(seeded.fino[1]), "score")) == "70.0"
        assert str(table.get_cell(str(seeded.fino[0]), "beta")) == "12.00"
        assert str(table.get_cell(str(seeded.fql[0]), "beta")) == "-"  # FQL has no β
        assert str(table.get_cell(str(seeded.running), "elapsed")) == "35m55s"  # fixed clock


async def test_a_pack_column_shows_while_packed_runs_are_listed(seeded: Seeded,
                                                               tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)

    def pack(run_ids: list[int], pack_id: str | None) -> None:
        with seeded.store.write() as session:
            session.execute(update(Run).where(Run.id.in_(run_ids)).values(pack_id=pack_id))

    async with app.run_test(size=(160, 40)) as pilot:
        table = await loaded(pilot)
        assert "pack" not in table.columns
        table.move_cursor(row=table.order.index(seeded.fino[1]))
        pack([seeded.running, seeded.fino[0]], "a1b2c3d4e5f6")
        await wait_for(pilot, lambda: "pack" in table.columns, what="the pack column")
        assert str(table.get_cell(str(seeded.running), "pack")) == "a1b2c3d4e5f6"
        assert str(table.get_cell(str(seeded.failed), "pack")) == "-"
        assert table.cursor_run == seeded.fino[1]  # laid out again, the cursor where it was
        table.move_cursor(row=table.order.index(seeded.running))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        detail = app.screen
        await wait_for(pilot, lambda: detail.detail is not None, what="the detail")
        await pilot.pause()
        assert "pack a1b2c3d4e5f6" in " ".join(on_screen(detail.query_one("#summary")).split())
        await pilot.press("escape")
        pack([seeded.running, seeded.fino[0]], None)  # back in the queue, say
        await wait_for(pilot, lambda: "pack" not in table.columns, what="no pack column")
        assert table.cursor_run == seeded.running


async def test_filters_sort_and_pages_are_read_from_the_store(seeded: Seeded,
                                                              tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await loaded(pilot)
        await pilot.press("slash", *"fql")
        await wait_for(pilot, lambda: len(table.order) == 4, what="fql rows")
        assert set(table.order) == {*seeded.fql, seeded.failed}
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        screen.query_one("#text").value = ""
        await wait_for(pilot, lambda: len(table.order) == 11, what="all rows again")
        screen.query_one("#status").value = "active"
        await wait_for(pilot, lambda: set(table.order) == {seeded.running, seeded.queued},
                       what="active rows")
        screen.query_one("#status").clear()
        screen.query_one("#tag").value = "sweep"
        await wait_for(pilot, lambda: table.order == [seeded.queued], what="tagged rows")
        screen.query_one("#tag").value = ""
        await wait_for(pilot, lambda: len(table.order) == 11, what="all rows again")
        await pilot.press("escape")  # out of the filters, back to the table
        assert app.focused is table
        await pilot.press("S")  # oldest first
        await wait_for(pilot, lambda: table.order[:1] == [1], what="ascending order")
        await pilot.click(RunTable, offset=(12, 0))  # the name column's header
        await wait_for(pilot, lambda: screen.request.order_by == "name" and table.order[0]
                       == seeded.fino[0], what="sorted by name")
        screen.request = screen.request.__class__(limit=4)  # small pages to page through
        screen.action_page(1)
        await wait_for(pilot, lambda: table.order == [7, 6, 5, 4], what="second page")


async def test_a_metric_written_by_another_process_is_plotted_within_the_refresh_interval(
        seeded: Seeded, tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        table = await loaded(pilot)
        table.move_cursor(row=table.order.index(seeded.running))
        plot = app.screen.query_one("#plot-0", MetricPlot)

        def steps() -> list[int]:
            return [int(s) for c in plot.curves for s in c.steps]

        await wait_for(pilot, lambda: steps() == [0, 500, 1000], what="the run's curve")
        subprocess.run([sys.executable, "-c", INSERT_METRIC, seeded.url, str(seeded.running),
                        "1500", "42.5"], check=True)
        waited = await wait_for(pilot, lambda: 1500 in steps(), timeout=REFRESH_S + 2,
                                what="the new point")
        assert waited <= REFRESH_S + MIN_REDRAW_S + 0.5
        assert plot.curves[0].values[-1] == 42.5


async def test_cancel_from_the_ui_changes_the_status_in_the_database(seeded: Seeded,
                                                                     tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        table = await loaded(pilot)
        table.move_cursor(row=table.order.index(seeded.queued))
        await pilot.press("c")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmScreen")
        await pilot.press("y")
        await wait_for(pilot, lambda: status_of(seeded.url, seeded.queued) == ("cancelled",
                                                                                 False))
        # A running run is flagged for its worker and shows as stopping.
        table.move_cursor(row=table.order.index(seeded.running))
        await pilot.press("c", "y")
        await wait_for(pilot, lambda: status_of(seeded.url, seeded.running) == ("running", True))
        await wait_for(pilot, lambda: str(table.get_cell(str(seeded.running), "status"))
                       == "stopping", what="the stopping row")
        assert str(table.get_cell(str(seeded.queued), "status")) == "cancelled"


async def test_retry_tag_and_remove_act_on_the_selected_runs(seeded: Seeded,
                                                             tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        table = await loaded(pilot)
        table.move_cursor(row=table.order.index(seeded.failed))
        await pilot.press("r")
        await wait_for(pilot, lambda: status_of(seeded.url, seeded.failed) == ("queued", False))
        table.move_cursor(row=table.order.index(seeded.fql[2]))
        await pilot.press("space", "space")  # selects fql seeds 2 and 1 (the cursor moves on)
        assert app.screen.selected == {seeded.fql[2], seeded.fql[1]}
        await pilot.press("t", *"+best", "enter")
        with Store(seeded.url).read() as session:
            def tags() -> list[str]:
                return list(session.scalars(select(Run.tags).where(
                    Run.id.in_(seeded.fql[1:])).order_by(Run.id)))
        await wait_for(pilot, lambda: tags() == ["best,paper", "best,paper"], what="tags")
        await pilot.press("x", "y")
        await wait_for(pilot, lambda: status_of(seeded.url, seeded.fql[1]) is None,
                       what="removed")
        await wait_for(pilot, lambda: len(table.order) == 9, what="rows after remove")
        assert not app.screen.selected


async def test_queue_form_rejects_a_bad_task_and_queues_a_good_one(seeded: Seeded,
                                                                   tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, QueueFormScreen))
        form = app.screen
        await pilot.press(*"no-such-task", "ctrl+s")
        error = form.query_one("#error")
        await wait_for(pilot, lambda: "unknown task" in str(error.render()), what="an error")
        assert form.query_one("#task").has_class("-invalid")
        with Store(seeded.url).read() as session:
            assert session.scalar(select(func.count(Run.id))) == 11  # nothing written
        form.query_one("#task").value = "cube-single"
        form.query_one("#seeds").value = "0-1"
        form.query_one("#tags").value = "tui"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="form closed")
        with Store(seeded.url).read() as session:
            new = session.scalars(select(Run).where(Run.id > 11)).all()
        assert [(r.task, r.seed, r.status, r.tags) for r in new] == [
            ("cube-single-play-singletask-task1-v0", 0, "queued", "tui"),
            ("cube-single-play-singletask-task1-v0", 1, "queued", "tui")]
        assert new[0].run_dir.startswith(str(tmp_path / "runs"))


async def test_seed_groups_plot_as_a_mean_with_a_band(seeded: Seeded, tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        table = await loaded(pilot)
        table.move_cursor(row=table.order.index(seeded.fino[0]))
        await pilot.press("G")
        # The running run differs only by its seed too; leave it out of the mean.
        await wait_for(pilot, lambda: app.screen.selected == {*seeded.fino, seeded.running},
                       what="seeds")
        table.move_cursor(row=table.order.index(seeded.running))
        await pilot.press("space", "g")
        plot = app.screen.query_one("#plot-0", MetricPlot)
        await wait_for(pilot, lambda: len(plot.curves) == 1 and "(n=3)" in plot.curves[0].label,
                       what="one group curve")
        curve = plot.curves[0]
        assert curve.values[-1] == pytest.approx(70.0)  # final scores 60, 70, 80
        assert curve.lower is not None and curve.upper is not None
        assert curve.lower[-1] < 70.0 < curve.upper[-1]


async def test_a_busy_database_keeps_the_last_data_and_says_so(
        seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite answers 'database is locked' only after its 30 s busy timeout, so the error is
    raised at the screen's read instead, as the driver would raise it."""
    import fino_tui.screens.runs as runs_module

    real = runs_module.read_page
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        table = await loaded(pilot)

        def locked(*args, **kwargs):
            raise OperationalError("SELECT ...", {}, Exception("database is locked"))

        monkeypatch.setattr(runs_module, "read_page", locked)
        status = app.screen.query_one("#status-line")
        await wait_for(pilot, lambda: "database is locked" in str(status.render()),
                       what="the notice")
        assert len(table.order) == 11  # the last data stays
        monkeypatch.setattr(runs_module, "read_page", real)
        await wait_for(pilot, lambda: "not readable" not in str(status.render()),
                       what="the notice gone")


async def test_a_run_that_vanishes_leaves_its_detail_screen_standing(seeded: Seeded,
                                                                    tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        table = await loaded(pilot)
        table.move_cursor(row=table.order.index(seeded.failed))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        detail = app.screen
        await wait_for(pilot, lambda: detail.detail is not None, what="the detail")
        assert "TrainingDiverged" in str(detail.query_one("#error-text").render())
        queue.remove(Store(seeded.url), [seeded.failed])
        notice = detail.query_one("#vanished")
        await wait_for(pilot, lambda: notice.display and "no longer exists" in
                       str(notice.render()), what="the vanished notice")
        assert "TrainingDiverged" in str(detail.query_one("#error-text").render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: seeded.failed not in table.order, what="row gone")


async def test_the_key_list_switches_the_plotted_key(seeded: Seeded, tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        table = await loaded(pilot)
        table.move_cursor(row=table.order.index(seeded.fino[0]))
        plot = app.screen.query_one("#plot-0", MetricPlot)
        await wait_for(pilot, lambda: plot.curves and f"#{seeded.fino[0]}" in
                       plot.curves[0].label, what="the run's scores")
        await pilot.press("k", *"critic/q", "enter")
        await wait_for(pilot, lambda: plot.key == "critic/q_loss" and plot.curves,
                       what="the q loss")
        # 3,000 points are held; the spikes survive the thinning to the plot's width.
        assert len(plot.curves[0].steps) == 3000
        assert plot.curves[0].values.max() == 100.0


async def test_help_theme_and_command_palette(seeded: Seeded, tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "HelpScreen")
        await pilot.press("escape")
        await pilot.press("ctrl+t")
        assert app.theme == "textual-light"
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Queue new runs", "Cancel runs", "Export metrics", "Write PNG plot",
                      "Start or stop a local worker", "Plot policy/entropy"):
            assert title in titles


async def test_a_local_worker_starts_and_stops_from_the_ui(seeded: Seeded,
                                                           tmp_path: Path) -> None:
    queue.request_cancel(Store(seeded.url), [seeded.queued])  # nothing for it to run
    app = make_app(seeded.url, tmp_path)
    app.local_worker.log_path = tmp_path / "worker.log"
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot)
        await pilot.press("w", "enter")  # one job
        await wait_for(pilot, lambda: app.local_worker.running, what="a worker")
        await wait_for(pilot, lambda: "serving" in app.local_worker.log_path.read_text(),
                       timeout=20, what="the worker's log line")
        await pilot.press("w", "y")
        deadline = time.monotonic() + 20
        while app.local_worker.running and time.monotonic() < deadline:
            await pilot.pause(0.1)
        assert app.local_worker.state() == "off"


async def test_export_and_png_plot_write_files(seeded: Seeded, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DISPLAY", raising=False)
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        table = await loaded(pilot)
        table.move_cursor(row=table.order.index(seeded.fino[0]))
        await pilot.press("e")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ExportScreen")
        await pilot.press("enter")
        csv = tmp_path / "exports" / f"runs-{seeded.fino[0]}.csv"
        await wait_for(pilot, lambda: csv.exists() and csv.stat().st_size > 0, timeout=30,
                       what="the csv")
        await pilot.press("p")
        png = tmp_path / "plots" / f"runs-{seeded.fino[0]}-eval-score.png"
        await wait_for(pilot, lambda: png.exists() and not [
            w for w in app.workers if w.group == "actions" and not w.is_finished],
            timeout=30, what="the png")
    assert csv.read_text().splitlines()[0].startswith("run_id,name,task")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_fino_tui_refuses_a_missing_database_file(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from fino.cli.tui import main

    with pytest.raises(SystemExit) as exit_:
        main(["--db", str(tmp_path / "typo.db")])
    assert exit_.value.code == 1
    assert "error: no database at" in capsys.readouterr().err
    assert not (tmp_path / "typo.db").exists()
