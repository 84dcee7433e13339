"""Snapshots of the main screens on fixed data (seeded SQLite file, fixed clock, UTC).

Update after a deliberate change of the look: pytest tests/tui --snapshot-update
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from fino_tui.widgets.metric_plot import MIN_REDRAW_S, MetricPlot
from fino_tui.widgets.run_table import RunTable
from tests.inspect_fixtures import Seeded
from tests.tui.conftest import make_app, wait_for

URL = "sqlite:///experiments.db"  # relative: the header shows it, the same on every machine


@pytest.fixture
def here(seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Seeded:
    monkeypatch.chdir(tmp_path)
    return seeded


async def settle(pilot: Pilot) -> None:
    """Let the last redraw land and stop the cursors blinking."""
    await pilot.pause(MIN_REDRAW_S + 0.2)
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()


async def on_run(pilot: Pilot, run_id: int) -> RunTable:
    table = pilot.app.screen.query_one(RunTable)
    await wait_for(pilot, lambda: len(table.order) == 11, what="rows")
    table.move_cursor(row=table.order.index(run_id))
    plot = pilot.app.screen.query_one("#plot-0", MetricPlot)
    await wait_for(pilot, lambda: plot.curves and f"#{run_id}" in plot.curves[0].label,
                   what="its curve")
    return table


def test_runs_screen_80x24(here: Seeded, tmp_path: Path, snap_compare) -> None:
    async def run_before(pilot: Pilot) -> None:
        await on_run(pilot, here.running)
        await settle(pilot)

    assert snap_compare(make_app(URL, tmp_path), terminal_size=(80, 24), run_before=run_before)


def test_runs_screen_large_with_seed_groups(here: Seeded, tmp_path: Path,
                                            snap_compare) -> None:
    async def run_before(pilot: Pilot) -> None:
        table = await on_run(pilot, here.fino[0])
        screen = pilot.app.screen
        for run_id in (*here.fino, *here.fql):
            table.move_cursor(row=table.order.index(run_id))
            await pilot.press("space")
        await pilot.press("g")
        plots = [screen.query_one(f"#plot-{i}", MetricPlot) for i in range(4)]
        await wait_for(pilot, lambda: all(p.curves or p.note for p in plots)
                       and "(n=3)" in plots[0].curves[0].label, what="group curves")
        await settle(pilot)

    assert snap_compare(make_app(URL, tmp_path), terminal_size=(160, 48),
                        run_before=run_before)


def test_runs_screen_light_theme(here: Seeded, tmp_path: Path, snap_compare) -> None:
    async def run_before(pilot: Pilot) -> None:
        await on_run(pilot, here.fino[0])
        await pilot.press("ctrl+t")
        await settle(pilot)

    assert snap_compare(make_app(URL, tmp_path), terminal_size=(100, 30), run_before=run_before)


def test_run_detail_screen(here: Seeded, tmp_path: Path, snap_compare) -> None:
    async def run_before(pilot: Pilot) -> None:
        table = pilot.app.screen.query_one(RunTable)
        await wait_for(pilot, lambda: len(table.order) == 11, what="rows")
        table.move_cursor(row=table.order.index(here.failed))
        await pilot.press("enter")
        await wait_for(pilot, lambda: getattr(pilot.app.screen, "detail", None) is not None,
                       what="the detail")
        await settle(pilot)

    assert snap_compare(make_app(URL, tmp_path), terminal_size=(100, 30), run_before=run_before)


def test_queue_form_with_an_error(here: Seeded, tmp_path: Path, snap_compare) -> None:
    async def run_before(pilot: Pilot) -> None:
        await on_run(pilot, here.running)
        await pilot.press("n", *"no-such-task", "ctrl+s")
        error = pilot.app.screen.query_one("#error")
        await wait_for(pilot, lambda: "unknown task" in str(error.render()), what="the error")
        await settle(pilot)

    assert snap_compare(make_app(URL, tmp_path), terminal_size=(80, 24), run_before=run_before)


def test_help_screen(here: Seeded, tmp_path: Path, snap_compare) -> None:
    async def run_before(pilot: Pilot) -> None:
        await on_run(pilot, here.running)
        await pilot.press("question_mark")
        await settle(pilot)

    assert snap_compare(make_app(URL, tmp_path), terminal_size=(80, 24), run_before=run_before)


def test_tuning_screen(here: Seeded, tmp_path: Path, snap_compare) -> None:
    from textual.widgets import DataTable

    from tests.tune_fixtures import make_study

    make_study(tmp_path / "optuna.journal", "cube-double-quick")

    async def run_before(pilot: Pilot) -> None:
        await pilot.press("f3")
        table = pilot.app.screen.query_one("#trials", DataTable)
        await wait_for(pilot, lambda: table.row_count == 4, what="trials")
        plot = pilot.app.screen.query_one("#tune-history", MetricPlot)
        await wait_for(pilot, lambda: len(plot.curves) == 2, what="history")
        await settle(pilot)

    assert snap_compare(make_app(URL, tmp_path), terminal_size=(110, 30), run_before=run_before)
