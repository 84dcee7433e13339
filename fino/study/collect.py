"""Collecting a study's results: its runs in the store, and per (task, method) a cell of the
seeds' offline and final values and curves; what the runs cost and where they ran."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fino.analysis.stats import mean_ci, offline_and_final
from fino.metric_keys import EVAL_SCORE
from fino.store import queries
from fino.store.db import Store
from fino.store.models import Run
from fino.store.queries import series_many
from fino.study.plan import Plan


def study_tags(plan: Plan, budget: str, method: str) -> list[str]:
    return [f"study:{plan.name}", f"budget:{budget}", f"method:{method}"]


def study_runs(store: Store, plan: Plan, budget: str) -> dict[tuple[str, str, int], Run]:
    """The plan's runs in the store by (canonical task, method, seed)."""
    with store.read() as session:
        rows = queries.tagged_runs(session, f"study:{plan.name}", f"budget:{budget}")
    out = {}
    for run in rows:
        method = next((t.split(":", 1)[1] for t in run.tag_list if t.startswith("method:")),
                      None)
        if method:
            out[(run.task, method, run.seed)] = run
    return out


@dataclass
class Cell:
    """One (task, method): mean ± 95% CI of its seeds' offline and final values, their
    curves, and each seed's (offline, final)."""

    offline: tuple[float, float, int]
    online: tuple[float, float, int]
    curves: list
    per_seed: dict[int, tuple[float | None, float | None]]  # seed -> (offline, final)


def summarise(store: Store, plan: Plan, budget: str,
              key: str = EVAL_SCORE) -> dict[tuple[str, str], Cell]:
    """(task, method) -> one evaluation metric (the score by default) over the seeds whose runs
    are done: offline = its last value of the offline phase, online = its last value."""
    runs = study_runs(store, plan, budget)
    done = {k: r for k, r in runs.items() if r.status == "done"}
    with store.read() as session:
        series = series_many(session, [r.id for r in done.values()], key)
    cells = {}
    with_results = {r.task for r in done.values()}
    tasks = [t for t in dict.fromkeys(c.task.name for _, _, c in plan.configs(budget))
             if t in with_results]  # in the plan's order
    for task in tasks:
        for method in plan.methods:
            picked = sorted((r for (t, m, _), r in done.items() if t == task and m == method.name),
                            key=lambda r: r.seed)
            scores = {r.seed: offline_and_final(
                zip(*(a.tolist() for a in series[r.id]), strict=True),
                r.config["train"]["offline_steps"]) for r in picked if r.id in series}
            cells[(task, method.name)] = Cell(
                offline=mean_ci([s.offline for s in scores.values() if s.offline is not None]),
                online=mean_ci([s.final for s in scores.values() if s.final is not None]),
                curves=[series[r.id] for r in picked if r.id in series],
                per_seed={seed: (s.offline, s.final) for seed, s in scores.items()})
    return cells


def run_machines(store: Store, run_ids: list[int]) -> dict[int, str]:
    """The machine each run last started on (runs that never started have none)."""
    with store.read() as session:
        return queries.run_machines(session, run_ids)


def _minutes(run: Run) -> float | None:
    if run.started_at is None or run.finished_at is None:
        return None
    return (run.finished_at - run.started_at).total_seconds() / 60


def minutes_by_task(runs: list[Run]) -> dict[str, list[float]]:
    """Wall-clock minutes of each finished run, by task."""
    by_task: dict[str, list[float]] = {}
    for run in runs:
        if (minutes := _minutes(run)) is not None:
            by_task.setdefault(run.task, []).append(minutes)
    return by_task


def remaining_cost(tasks: list[str], minutes: dict[str, list[float]]) -> tuple[float, int]:
    """Minutes the runs still to do (one task each) would take at the median cost of their
    task's finished runs, and how many of them have no finished run to estimate from."""
    medians = {task: float(np.median(m)) for task, m in minutes.items() if m}
    return (sum(medians.get(task, 0.0) for task in tasks),
            sum(task not in medians for task in tasks))


def shared_offline_methods(runs: dict[tuple[str, str, int], Run]) -> Counter[tuple[str, str]]:
    """(method, method whose offline phase it started from) -> number of runs."""
    method_of = {str(Path(run.run_dir)): key[1] for key, run in runs.items() if run.run_dir}
    shared: Counter[tuple[str, str]] = Counter()
    for (_, method, _), run in runs.items():
        path = (run.config or {}).get("from_offline")
        if path:
            shared[method, method_of.get(str(Path(path).parent), "a run outside the study")] += 1
    return shared


def dataset_rows(task: str, dataset_dir: str | None) -> str:
    """What the task's offline dataset holds, read from its file on this machine."""
    from fino.backends.base import NPZ_READ_ERRORS, error_text
    from fino.backends.ogbench import dataset_files, parse_name

    try:
        env, dtype, _ = parse_name(task)
        train, _ = dataset_files(f"{env}-{dtype}-v0", dataset_dir)
        if not train.exists():
            return "dataset not found on this machine"
        with np.load(train, allow_pickle=False) as data:
            rows, episodes = len(data["terminals"]), int(data["terminals"].sum())
        return f"{rows - episodes:,} transitions ({episodes} episodes) in {train.name}"
    except (KeyError, *NPZ_READ_ERRORS) as exc:
        return f"dataset unreadable on this machine ({error_text(exc)})"
