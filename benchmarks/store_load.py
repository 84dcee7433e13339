"""The queue and the store under load, and the dashboard's refresh on a big store.

Part 1 (`queue`): N worker processes (default 8) drain M short runs (default 1,000) from one
store. Each "run" does what a worker and its training process do to the database, without the
training: claim (one compare-and-set statement), heartbeat, log metrics every 100 steps through
the product's `DatabaseSink` (12 keys, default 5,000 steps: 600 rows), record the end. Printed:
claims/s, runs/s, metric rows/s and the latency of a claim (median, p95), and a check that no run
was claimed twice and every row landed.

Part 2 (`tui`): a store of 10,000 runs and a million metric points; the dashboard (`fino-tui`,
headless) shows its first page, then the timed figure is its periodic refresh: the runs screen's
`read()` (one page, the plotted runs' series) and `show()` (table and plots redrawn).

    python benchmarks/store_load.py [queue|tui|all] [--db URL] [--workers 8] [--runs 1000]

The default store is a fresh SQLite file in a temporary folder; `--db postgresql+psycopg://...`
measures a server (use a throwaway database: the benchmark adds runs to it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

KEYS = ("critic/loss", "critic/q_mean", "actor/loss", "actor/bc_flow_loss",
        "actor/distill_loss", "actor/q_loss", "actor/noise_scale", "policy/entropy",
        "policy/beta", "progress/online", "progress/env_steps", "time/updates_per_second")


def _worker(url: str, steps: int, log_interval: int, start_at: float, out: multiprocessing.Queue
            ) -> None:
    from fino.store.db import Store
    from fino.store.queue import claim_next, heartbeat, transition
    from fino.store.sink import DatabaseSink

    store = Store(url)
    pid = os.getpid()
    claims, latencies, rows = [], [], 0
    while time.time() < start_at:  # every process starts draining at the same moment
        time.sleep(0.005)
    while True:
        started = time.perf_counter()
        claim = claim_next(store, host="bench", pid=pid)
        latencies.append(time.perf_counter() - started)
        if claim is None:
            break
        run_id = claim.run_id
        claims.append(run_id)
        heartbeat(store, {run_id: claim.token})
        sink = DatabaseSink(store, run_id)
        for step in range(log_interval, steps + 1, log_interval):
            sink.write(step, {key: step / (i + 1) for i, key in enumerate(KEYS)})
            rows += len(KEYS)
        sink.close()
        transition(store, run_id, ("running",), "done", message="bench run finished")
    out.put({"pid": pid, "claims": claims, "latencies": latencies, "rows": rows,
             "finished": time.time()})
    store.dispose()


def bench_queue(url: str, workers: int, runs: int, steps: int, log_interval: int) -> dict:
    from sqlalchemy import func, select

    from fino.backends.base import TaskConfig
    from fino.store.db import Store
    from fino.store.models import Metric, Run
    from fino.store.queue import add_runs
    from fino.train.config import RunConfig, TrainConfig

    store = Store(url)
    config = RunConfig(task=TaskConfig("cube-single"),
                       train=TrainConfig(offline_steps=steps // 2, online_steps=steps // 2))
    started = time.perf_counter()
    ids = add_runs(store, [config] * runs, tags=["bench:store-load"])
    queue_seconds = time.perf_counter() - started
    context = multiprocessing.get_context("spawn")  # never fork a process holding connections
    results: multiprocessing.Queue = context.Queue()
    start_at = time.time() + 3.0 + 0.3 * workers  # after every process has imported and opened
    procs = [context.Process(target=_worker, args=(url, steps, log_interval, start_at, results))
             for _ in range(workers)]
    for p in procs:
        p.start()
    reports = [results.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
    elapsed = max(r["finished"] for r in reports) - start_at
    claimed = [c for r in reports for c in r["claims"]]
    latencies = sorted(x for r in reports for x in r["latencies"])
    rows = sum(r["rows"] for r in reports)
    with store.read() as session:
        stored = session.scalar(select(func.count()).select_from(Metric)
                                .where(Metric.run_id.in_(ids)))
        done = session.scalar(select(func.count()).select_from(Run)
                              .where(Run.id.in_(ids), Run.status == "done"))
    store.dispose()
    return {"figure": "queue_load", "backend": url.split(":", 1)[0], "workers": workers,
            "runs": runs, "steps_per_run": steps, "log_interval": log_interval,
            "keys": len(KEYS), "queue_seconds": round(queue_seconds, 2),
            "drain_seconds": round(elapsed, 2),
            "claims_per_second": round(len(claimed) / elapsed, 1),
            "metric_rows_per_second": round(rows / elapsed, 0),
            "claim_ms_median": round(1e3 * statistics.median(latencies), 2),
            "claim_ms_p95": round(1e3 * latencies[int(0.95 * (len(latencies) - 1))], 2),
            "claimed_twice": len(claimed) - len(set(claimed)),
            "runs_done": done, "rows_written": rows, "rows_stored": stored}


async def _drive_tui(url: str, folder: Path, refreshes: int) -> dict:
    from fino.store.db import Store
    from fino_tui.app import FinoApp
    from fino_tui.screens.runs import RunsScreen
    from fino_tui.widgets.metric_plot import MetricPlot
    from fino_tui.widgets.run_table import RunTable

    app = FinoApp(Store(url), refresh_interval=3600.0, runs_dir=folder)
    start = time.perf_counter()
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.screen.query_one(RunTable)
        while len(table.order) == 0:
            await pilot.pause(0.01)
        first_page = time.perf_counter() - start
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        screen.set_plot_key("critic/loss")
        plot = screen.query_one("#plot-0", MetricPlot)
        while not (plot.key == "critic/loss" and plot.curves):
            await pilot.pause(0.01)
        first_plot = time.perf_counter() - start - first_page
        reads, shows = [], []
        for _ in range(refreshes):
            t0 = time.perf_counter()
            data = await asyncio.to_thread(screen.read)
            t1 = time.perf_counter()
            screen.show(data)
            await pilot.pause()  # let the redraw happen
            shows.append(time.perf_counter() - t1)
            reads.append(t1 - t0)
        points = sum(len(c.steps) for c in plot.curves)
    return {"first_page_seconds": round(first_page, 3), "first_plot_seconds": round(first_plot, 3),
            "refresh_read_ms_median": round(1e3 * statistics.median(reads), 1),
            "refresh_show_ms_median": round(1e3 * statistics.median(shows), 1),
            "refresh_ms_median": round(1e3 * statistics.median(
                [a + b for a, b in zip(reads, shows, strict=True)]), 1),
            "plotted_points": points}


def bench_tui(folder: Path, refreshes: int) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.tui.perf_fixtures import HEAVY_RUNS, RUNS, big_store

    started = time.perf_counter()
    url = big_store(folder / "big.db")
    build = time.perf_counter() - started
    import sqlite3

    with sqlite3.connect(folder / "big.db") as db:
        points = db.execute("SELECT count(*) FROM metrics").fetchone()[0]
    figures = asyncio.run(_drive_tui(url, folder, refreshes))
    return {"figure": "tui_refresh", "runs": RUNS, "metric_points": points,
            "heavy_runs": HEAVY_RUNS, "build_seconds": round(build, 1), **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", nargs="?", choices=("queue", "tui", "all"), default="all")
    parser.add_argument("--db", help="store URL for the queue part (default: a temp SQLite file)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=5000, help="steps per short run")
    parser.add_argument("--log-interval", type=int, default=100)
    parser.add_argument("--refreshes", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also append the JSON lines here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = []
        if args.part in ("queue", "all"):
            url = args.db or f"sqlite:///{tmp}/experiments.db"
            figures.append(bench_queue(url, args.workers, args.runs, args.steps,
                                       args.log_interval))
            print(json.dumps(figures[-1]), flush=True)
        if args.part in ("tui", "all"):
            figures.append(bench_tui(Path(tmp), args.refreshes))
            print(json.dumps(figures[-1]), flush=True)
    if args.json:
        with args.json.open("a") as f:
            f.writelines(json.dumps(fig) + "\n" for fig in figures)


if __name__ == "__main__":
    main()
