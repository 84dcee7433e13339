"""The dashboard's tuning view on a real Optuna journal: trials, best, history, switching
studies, and a missing storage shown (not created)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from fino_tui.screens.tuning import TuningScreen
from fino_tui.widgets.metric_plot import MetricPlot
from tests.inspect_fixtures import Seeded
from tests.tui.conftest import make_app, wait_for
from tests.tune_fixtures import make_study

pytestmark = pytest.mark.anyio


async def test_f3_shows_the_study_its_trials_and_history(seeded: Seeded, tmp_path: Path) -> None:
    journal = tmp_path / "optuna.journal"
    make_study(journal, "first")
    make_study(journal, "second")
    before = journal.read_bytes()
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("f3")
        screen = app.screen
        assert isinstance(screen, TuningScreen)
        table = screen.query_one("#trials", DataTable)
        await wait_for(pilot, lambda: table.row_count == 4, what="4 trials")
        summary = str(screen.query_one("#tune-summary", Static).render())
        assert "study second (2/2" in summary  # the newest study first
        assert "2 complete, 1 pruned, 1 running" in summary
        assert "best 55.00 (trial 1: noise_scale=0.3, num_candidates=8)" in summary
        assert [str(c.label) for c in table.columns.values()] == [
            "trial", "state", "value", "noise_scale", "num_candidates", "last report", "runs"]
        newest = [str(cell) for cell in table.get_row_at(0)]
        assert newest[:2] == ["3", "running"] and newest[-2:] == ["20.0 @ 5,000", "7,8"]
        plot = screen.query_one("#tune-history", MetricPlot)
        await wait_for(pilot, lambda: len(plot.curves) == 2, what="history curves")
        best, trials = plot.curves
        assert trials.marks == "points" and trials.values.tolist() == [40.0, 55.0]
        assert best.steps.tolist() == [0, 1, 1]  # best so far: a staircase
        assert best.values.tolist() == [40.0, 40.0, 55.0]
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: "study first (1/2" in str(
            screen.query_one("#tune-summary", Static).render()), what="the other study")
        await pilot.press("f2")
        assert app.screen.id == "runs-screen"
    assert journal.read_bytes() == before  # the view only reads


async def test_a_missing_tuning_storage_is_said_and_not_created(seeded: Seeded,
                                                                tmp_path: Path) -> None:
    app = make_app(seeded.url, tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("f3")
        summary = app.screen.query_one("#tune-summary", Static)
        await wait_for(pilot, lambda: "no tuning storage" in str(summary.render()),
                       what="the missing-storage message")
        assert "fino tune --task" in str(summary.render())
    assert not (tmp_path / "optuna.journal").exists()
