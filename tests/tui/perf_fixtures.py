"""A large real SQLite store: 10,000 runs and a million metric points, written with the sqlite3
module directly (the ORM would take minutes) into a schema made by `Store`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from fino.backends.base import TaskConfig
from fino.store.db import Store
from fino.train.config import RunConfig, TrainConfig

RUNS = 10_000
HEAVY_RUNS = 50  # runs with 10,000 points per key of two keys: half of the million points
LIGHT_POINTS = 50  # points of each other run (five keys at ten steps)
STATUSES = ("done", "done", "done", "failed", "running", "queued", "cancelled")


def big_store(path: Path) -> str:
    """Writes the store at `path` and returns its URL."""
    url = f"sqlite:///{path}"
    Store(url).dispose()  # the schema, by the product's own migrations
    config = json.dumps(RunConfig(task=TaskConfig(name="cube-single"),
                                  train=TrainConfig(offline_steps=10_000, online_steps=10_000),
                                  algo="fino", seed=0).to_dict())  # type: ignore[arg-type]
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    runs = [(i, f"cube-single-{'fino' if i % 2 else 'fql'}-s{i % 5}", "cube-single", "ogbench",
             "fino" if i % 2 else "fql", config, i % 5, STATUSES[i % len(STATUSES)],
             "2025-01-02 03:04:05", "2025-01-02 03:04:05", "sweep" if i % 3 == 0 else "")
            for i in range(1, RUNS + 1)]
    db.executemany("INSERT INTO runs (id, name, task, backend, algo, config, seed, status, "
                   "created_at, started_at, tags, priority, attempts, max_attempts, "
                   "cancel_requested, notes) VALUES (?,?,?,?,?,?,?,?,?,?,?,0,1,1,0,'')", runs)

    def rows():
        for run_id in range(1, RUNS + 1):
            if run_id > RUNS - HEAVY_RUNS:
                for key in ("critic/loss", "progress/env_steps"):
                    for step in range(0, 20_000, 2):
                        yield run_id, step, key, float(step % 97), 1.7e9 + step
            else:
                for key in ("eval/score", "eval/return", "policy/entropy", "policy/beta",
                            "progress/env_steps"):
                    for step in range(0, 20_000, 2_000):
                        yield run_id, step, key, float(step) / 200, 1.7e9 + step

    db.executemany("INSERT INTO metrics (run_id, step, key, value, wall_time) "
                   "VALUES (?,?,?,?,?)", rows())
    db.commit()
    db.close()
    return url
