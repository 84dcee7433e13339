"""Fixtures of the dashboard tests: a real seeded SQLite store, the app on it with a fixed clock,
and a way to wait for the polling thread."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget

from fino.store.db import Store
from fino_tui.app import FinoApp
from tests.inspect_fixtures import Seeded, seed_store

NOW = datetime(2025, 1, 2, 5, 0, 0, tzinfo=UTC)  # the running run started at 04:24:05
REFRESH_S = 0.5


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Times are shown in local time: make it UTC so that screens do not depend on the host."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def seeded(tmp_path: Path) -> Seeded:
    return seed_store(tmp_path)


def make_app(url: str, tmp_path: Path, refresh: float = REFRESH_S) -> FinoApp:
    return FinoApp(Store(url), refresh_interval=refresh, clock=lambda: NOW,
                   runs_dir=tmp_path / "runs", optuna_storage=str(tmp_path / "optuna.journal"))


def on_screen(widget: Widget) -> str:
    """The text the widget draws, as Textual renders it."""
    width, height = widget.outer_size
    return "\n".join(strip.text for strip in widget.render_lines(Region(0, 0, width, height)))


async def wait_for(pilot: Pilot, condition: Callable[[], object], timeout: float = 5.0,
                   what: str = "condition") -> float:
    """Seconds until `condition()` holds (checked while the app runs); fails after `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what} not met within {timeout} s")
        await pilot.pause(0.02)
    return time.monotonic() - start
