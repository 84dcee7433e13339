"""10,000 runs and a million and a half metric points: every read of the dashboard stays bounded
(`make test-slow`; building the store takes a few seconds)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fino.store.db import Store
from fino_tui.queries import Filters, PageRequest, SeriesCache, read_page, runs_by_id
from fino_tui.screens.runs import RunsScreen
from fino_tui.widgets.metric_plot import MetricPlot
from fino_tui.widgets.run_table import RunTable
from tests.tui.conftest import NOW, make_app, wait_for
from tests.tui.perf_fixtures import RUNS, big_store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def big_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return big_store(tmp_path_factory.mktemp("big") / "experiments.db")


def best_of(runs: int, read) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        read()
        times.append(time.perf_counter() - start)
    return min(times)


def test_a_page_and_a_heavy_series_read_fast(big_url: str) -> None:
    store = Store(big_url)
    page = best_of(3, lambda: read_page(store, PageRequest(), NOW))  # 50 heavy runs on it
    text = best_of(3, lambda: read_page(store, PageRequest(
        filters=Filters(text="fino-s3", status=("done",))), NOW))
    heavy = runs_by_id(store, [RUNS])
    cache = SeriesCache()
    first = best_of(1, lambda: cache.update(store, heavy, ["critic/loss"]))
    again = best_of(3, lambda: cache.update(store, heavy, ["critic/loss"]))
    print(f"page {page * 1e3:.0f} ms, filtered page {text * 1e3:.0f} ms, 10k-point series "
          f"{first * 1e3:.0f} ms, its next poll {again * 1e3:.1f} ms")
    assert page < 0.5 and text < 0.5 and first < 0.5 and again < 0.05


@pytest.mark.anyio
async def test_the_app_shows_a_page_of_a_big_store_quickly(big_url: str, tmp_path: Path) -> None:
    app = make_app(big_url, tmp_path)
    start = time.monotonic()
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.screen.query_one(RunTable)
        await wait_for(pilot, lambda: len(table.order) == 100, timeout=10)
        waited = time.monotonic() - start
        assert table.order[0] == RUNS
        screen = app.screen
        assert isinstance(screen, RunsScreen) and screen.total == RUNS
        plot = screen.query_one("#plot-0", MetricPlot)
        screen.set_plot_key("critic/loss")
        plotted = await wait_for(pilot, lambda: plot.key == "critic/loss" and plot.curves,
                                 timeout=10)
        print(f"first page in {waited:.2f} s, 10k-point plot in {plotted:.2f} s")
        assert waited < 5 and plotted < 5
