"""`fino demo`'s bars say what a run is doing before its first logged step (loading, the step-0
evaluation, compiling) and give an ETA from the logged update rate."""

from __future__ import annotations

from pathlib import Path

import pytest

from fino.cli.demo import DemoProgress
from fino.store import queue
from fino.store.db import Store
from fino.store.sink import upsert_metrics
from tests.queue_fixtures import pendulum_npz, queue_pendulum

TOTAL = 50_000


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return pendulum_npz(tmp_path_factory.mktemp("pendulum") / "pendulum.npz", n=50)


def log(store: Store, run_id: int, step: int, **values: float) -> None:
    upsert_metrics(store, [{"run_id": run_id, "step": step, "key": key.replace("__", "/"),
                            "value": value, "wall_time": 0.0} for key, value in values.items()])


def bar_fields(progress: DemoProgress, algo: str) -> tuple[str, str, float]:
    task = next(t for t in progress.bar.tasks if t.id == progress.bars[algo])
    return task.fields["phase"], task.fields["eta"], task.completed


def test_the_bars_name_the_silent_phases_then_show_an_eta_from_the_update_rate(
        store, tmp_path, dataset):
    fino, fql = queue_pendulum(store, dataset, tmp_path, range(2))
    progress = DemoProgress(store, {"fino": fino, "fql": fql}, TOTAL)
    seen = []

    def tick() -> None:
        progress.tick(force=True)
        seen.append(bar_fields(progress, "fino"))

    tick()
    queue.claim_next(store, host="h", pid=1)  # the first queued run: fino
    tick()
    queue.record_event(store, fino, "started", "fino on Pendulum-v1")
    tick()
    log(store, fino, 0, eval__score=10.0, progress__online=0.0)
    queue.record_event(store, fino, "compiling", "the update")
    tick()
    log(store, fino, 500, critic__loss=1.0, progress__online=0.0, time__updates_per_sec=50.0)
    tick()
    assert seen == [("queued", "-", 0), ("loading the task", "-", 0),
                    ("evaluating at step 0", "-", 0), ("compiling", "-", 0),
                    ("offline", "~16m30s", 500)]  # 49,500 steps left at 50 updates/s
    assert bar_fields(progress, "fql")[0] == "queued"
