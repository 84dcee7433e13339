"""A real SQLite experiment store with known numbers: three seeds of FINO and of FQL on one task,
a two-seed ablation (balanced batches), a running, a failed and a queued run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from fino.backends.base import TaskConfig
from fino.store.db import Store
from fino.store.models import Event, Metric, Run
from fino.train.config import RunConfig, TrainConfig

OFFLINE, ONLINE, EVAL = 1000, 1000, 500
EVAL_STEPS = (0, 500, 1000, 1500, 2000)
T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

# (algo, balanced, seed) -> (offline score at step 1000, final score at step 2000)
SCORES = {
    ("fino", False, 0): (20.0, 60.0), ("fino", False, 1): (22.0, 70.0),
    ("fino", False, 2): (24.0, 80.0),
    ("fql", False, 0): (20.0, 30.0), ("fql", False, 1): (21.0, 35.0),
    ("fql", False, 2): (22.0, 40.0),
    ("fino", True, 0): (25.0, 90.0), ("fino", True, 1): (25.0, 92.0),
}
FINO_SEED0_BEST = 85.0  # at step 1500, above its final score
SPIKY_POINTS = 3000  # critic/q_loss points of run 1, for downsampling


@dataclass(frozen=True)
class Seeded:
    store: Store
    url: str
    fino: list[int]
    fql: list[int]
    balanced: list[int]
    running: int
    failed: int
    queued: int


def _config(algo: str, seed: int, balanced: bool = False, task: str = "cube-single") -> dict:
    train = TrainConfig(offline_steps=OFFLINE, online_steps=ONLINE, eval_interval=EVAL,
                        eval_episodes=5, balanced=balanced)
    return RunConfig(task=TaskConfig(name=task), train=train, algo=algo, seed=seed,  # type: ignore[arg-type]
                     preset="cube:quick").to_dict()


def _run(algo: str, seed: int, status: str, *, balanced: bool = False, task: str = "cube-single",
         tags: str = "", index: int = 0) -> Run:
    started = T0 + timedelta(minutes=10 * index)
    finished = started + timedelta(minutes=5) if status in ("done", "failed") else None
    return Run(name=f"{task}-{algo}-s{seed}", task=task, backend="ogbench", algo=algo,
               preset="cube:quick", config=_config(algo, seed, balanced, task), seed=seed,
               status=status, tags=tags, created_at=T0,
               started_at=None if status == "queued" else started, finished_at=finished,
               run_dir=f"/tmp/runs/{task}-{algo}-s{seed}")


def _evaluations(run_id: int, algo: str, offline: float, final: float, steps: tuple[int, ...],
                 best: float | None = None) -> list[dict]:
    score = {0: 0.0, 500: offline / 2, 1000: offline,
             1500: best if best is not None else (offline + final) / 2, 2000: final}
    rows = []
    for step in steps:
        values = {"eval/score": score[step], "eval/return": score[step] - 100,
                  "policy/entropy": -1.0 - step / 1000,
                  "progress/env_steps": max(0, step - OFFLINE)}
        if algo == "fino":
            values["policy/beta"] = 10.0 + step / 1000
        rows += [{"run_id": run_id, "step": step, "key": k, "value": v,
                  "wall_time": 1.7e9 + step} for k, v in values.items()]
    return rows


def seed_store(tmp_path: Path) -> Seeded:
    """Writes the runs, their metrics and events into tmp_path/experiments.db."""
    url = f"sqlite:///{tmp_path / 'experiments.db'}"
    store = Store(url)
    groups: dict[str, list[int]] = {"fino": [], "fql": [], "balanced": []}
    with store.write() as session:
        index = 0
        for (algo, balanced, seed), (offline, final) in SCORES.items():
            run = _run(algo, seed, "done", balanced=balanced, index=index, tags="paper")
            session.add(run)
            session.flush()
            best = FINO_SEED0_BEST if (algo, balanced, seed) == ("fino", False, 0) else None
            session.execute(insert(Metric), _evaluations(run.id, algo, offline, final,
                                                         EVAL_STEPS, best))
            groups["balanced" if balanced else algo].append(run.id)
            index += 1
        running = _run("fino", 3, "running", index=index)
        failed = _run("fql", 3, "failed", index=index + 1)
        failed.error = "TrainingDiverged: non-finite loss at step 700"
        failed.exit_code = 1
        queued = _run("fino", 0, "queued", task="puzzle-3x3", tags="sweep,later")
        session.add_all([running, failed, queued])
        session.flush()
        # The running run is at step 1200 of 2000 (its last evaluation was at 1000).
        session.execute(insert(Metric), [
            *_evaluations(running.id, "fino", 23.0, 0.0, (0, 500, 1000)),
            {"run_id": running.id, "step": 1200, "key": "progress/env_steps", "value": 200.0,
             "wall_time": 1.7e9 + 1200}])
        session.execute(insert(Metric), [
            {"run_id": groups["fino"][0], "step": i, "key": "critic/q_loss",
             "value": 100.0 if i == 1234 else (-50.0 if i == 2345 else float(i % 7)),
             "wall_time": 1.7e9 + i} for i in range(SPIKY_POINTS)])
        for run in (*session.query(Run).order_by(Run.id),):
            session.add(Event(run_id=run.id, kind="status", new_status="queued",
                              message="queued", time=T0))
            if run.status != "queued":
                session.add(Event(run_id=run.id, kind="status", old_status="queued",
                                  new_status="running", message="claimed by host:1",
                                  time=T0 + timedelta(seconds=1)))
            if run.status in ("done", "failed"):
                session.add(Event(run_id=run.id, kind="status", old_status="running",
                                  new_status=run.status, message=f"exit code {run.exit_code or 0}",
                                  time=T0 + timedelta(seconds=2)))
    return Seeded(store, url, groups["fino"], groups["fql"], groups["balanced"], running.id,
                  failed.id, queued.id)
