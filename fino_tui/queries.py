"""What the dashboard reads, as plain snapshots (no Textual here): a page of runs with their
latest numbers, metric series grown by reading only new steps, and one run's detail.

Everything goes through `Store.read()` (never a write lock) and is bounded: one page of runs,
the plotted runs' series (capped in memory), one run's logs by their tail.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from fino.metric_keys import (
    ACTOR_NOISE_SCALE,
    EVAL_SCORE,
    EVAL_SECONDS,
    POLICY_BETA,
    POLICY_ENTROPY,
    PROGRESS_ENV_STEPS,
    PROGRESS_ONLINE,
    UPDATES_PER_SEC,
)
from fino.runfacts import elapsed, total_steps, train_setting
from fino.store.db import Store
from fino.store.models import Event, Run, RunStatus
from fino.store.queries import (
    Series,
    count_runs,
    downsample,
    existing_runs,
    heartbeating_workers,
    latest_metrics,
    list_runs,
    metric_keys,
    recent_values,
    run_events,
    runs_of_task,
    series,
)

# The latest value of these keys fills the table's columns.
TABLE_KEYS = (PROGRESS_ENV_STEPS, PROGRESS_ONLINE, EVAL_SCORE, POLICY_ENTROPY,
              POLICY_BETA, ACTOR_NOISE_SCALE, EVAL_SECONDS)
RATE_KEY = UPDATES_PER_SEC  # updates per second over each log interval
RATE_WINDOWS = 9  # the ETA's rate: the median of a running run's last intervals
HEARTBEAT_FRESH_S = 60.0  # a worker whose runs heartbeat within this is at work (the expiry)
SERIES_POINTS = 4_000  # held per plotted series: two points per column of a very wide plot
LOG_BYTES = 64_000  # read from the end of a log file: enough for its last few hundred lines
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


@dataclass(frozen=True)
class Filters:
    """What the table shows: `status` any of these (empty: all), substrings of task and text,
    one algorithm, one whole tag."""

    status: tuple[str, ...] = ()
    task: str = ""
    algo: str = ""
    tag: str = ""
    text: str = ""

    def as_kwargs(self) -> dict[str, object]:
        return {"status": list(self.status) or None, "task": self.task or None,
                "algo": self.algo or None, "tag": self.tag or None, "text": self.text or None}


@dataclass(frozen=True)
class PageRequest:
    filters: Filters = Filters()
    order_by: str = "id"
    descending: bool = True
    offset: int = 0
    limit: int = 100


@dataclass(frozen=True)
class Progress:
    step: int | None
    total: int | None
    online: bool

    @property
    def fraction(self) -> float | None:
        if self.step is None or not self.total:
            return None
        return min(1.0, self.step / self.total)


@dataclass(frozen=True)
class RunRow:
    """One line of the runs table."""

    id: int
    name: str
    task: str
    algo: str
    seed: int
    status: str
    tags: str
    cancel_requested: bool
    pack_id: str | None  # the pack its attempt trains in; None alone (or never claimed)
    progress: Progress
    score: float | None
    entropy: float | None
    beta: float | None
    noise_scale: float | None
    elapsed_s: float | None
    eta_s: float | None


@dataclass(frozen=True)
class Page:
    request: PageRequest
    rows: tuple[RunRow, ...]
    total: int
    workers: frozenset[tuple[str, int]] = frozenset()  # (host, pid) with fresh heartbeats


def read_page(store: Store, request: PageRequest, now: datetime) -> Page:
    """One page of runs and their latest numbers, and the workers at work: a few bounded
    queries."""
    with store.read() as session:
        filters = request.filters.as_kwargs()
        runs = list_runs(session, **filters, order_by=request.order_by,  # type: ignore[arg-type]
                         descending=request.descending, limit=request.limit,
                         offset=request.offset)
        total = count_runs(session, **filters)  # type: ignore[arg-type]
        latest = latest_metrics(session, [r.id for r in runs], TABLE_KEYS)
        rates = recent_values(session, [r.id for r in runs if r.status == RunStatus.RUNNING],
                              RATE_KEY, RATE_WINDOWS)
        workers = busy_workers(session, now)
    rows = tuple(run_row(r, latest.get(r.id, {}), now, rates.get(r.id, ())) for r in runs)
    return Page(request, rows, total, workers)


def busy_workers(session: Session, now: datetime,
                 fresh_s: float = HEARTBEAT_FRESH_S) -> frozenset[tuple[str, int]]:
    """(host, pid) of the workers whose running runs heartbeat recently, wherever they run."""
    since = now - timedelta(seconds=fresh_s)  # aware, as the reaper compares them
    return heartbeating_workers(session, since)


def run_row(run: Run, latest: dict[str, tuple[int, float | None]], now: datetime,
            rates: Sequence[float] = ()) -> RunRow:
    def value(key: str) -> float | None:
        found = latest.get(key, (0, None))[1]
        return found if found is not None and math.isfinite(found) else None

    total = total_steps(run)
    step = max((s for s, _ in latest.values()), default=None)
    if run.status == RunStatus.DONE and total:
        step = total
    online = bool(value(PROGRESS_ONLINE)) or (
        step is not None and step > (train_setting(run, "offline_steps") or math.inf))
    progress = Progress(step, total, online)
    spent = elapsed(run, now)
    return RunRow(
        id=run.id, name=run.name, task=run.task, algo=run.algo, seed=run.seed,
        status=run.status, tags=run.tags or "", cancel_requested=bool(run.cancel_requested),
        pack_id=run.pack_id, progress=progress, score=value(EVAL_SCORE),
        entropy=value(POLICY_ENTROPY), beta=value(POLICY_BETA),
        noise_scale=value(ACTOR_NOISE_SCALE), elapsed_s=spent,
        eta_s=eta(run.status, progress, rates, value(EVAL_SECONDS),
                  train_setting(run, "eval_interval")))


def eta(status: RunStatus | str, progress: Progress, rates: Sequence[float],
        eval_seconds: float | None = None, eval_interval: int | None = None) -> float | None:
    """Seconds left of a running run: the steps left at its recent update rate (the median
    of its last log intervals, so that one interval slowed by compiling or evaluating does
    not swing it), plus the evaluations left at the last one's duration. None until a rate
    is logged: the time since the start counts setup and compilation, not progress."""
    if status != RunStatus.RUNNING or progress.step is None or not progress.total:
        return None
    positive = [r for r in rates if r > 0]
    if not positive:
        return None
    left = max(0, progress.total - progress.step) / float(np.median(positive))
    if eval_seconds and eval_interval:
        left += eval_seconds * (progress.total // eval_interval - progress.step // eval_interval)
    return left


# ---- series of the plotted runs ----------------------------------------------------------------


@dataclass
class _Held:
    attempts: int
    steps: np.ndarray
    values: np.ndarray


class SeriesCache:
    """The plotted runs' series, grown by reading only the steps after the last one held.

    Owned by one polling thread. A run that started again (a retry resumes from its
    checkpoint and rewrites the steps after it) is read afresh: its `attempts` changed.
    """

    def __init__(self, max_points: int = SERIES_POINTS) -> None:
        self.max_points = max_points
        self._held: dict[tuple[int, str], _Held] = {}

    def update(self, store: Store, runs: Sequence[Run], keys: Iterable[str]
               ) -> dict[tuple[int, str], Series]:
        """{(run, key): (steps, values)} of every run and key asked for (empty where none);
        pairs no longer asked for are dropped."""
        wanted = [(run, key) for run in runs for key in dict.fromkeys(keys)]
        with store.read() as session:
            for run, key in wanted:
                held = self._held.get((run.id, key))
                if held is None or held.attempts != run.attempts:
                    steps, values = series(session, run.id, key, max_points=self.max_points)
                    self._held[(run.id, key)] = _Held(run.attempts, steps, values)
                    continue
                after = int(held.steps[-1]) if len(held.steps) else None
                steps, values = series(session, run.id, key, after_step=after)
                if len(steps):
                    held.steps = np.concatenate([held.steps, steps])
                    held.values = np.concatenate([held.values, values])
                    if len(held.steps) > 2 * self.max_points:
                        held.steps, held.values = downsample(held.steps, held.values,
                                                             self.max_points)
        keep = {(run.id, key) for run, key in wanted}
        self._held = {k: v for k, v in self._held.items() if k in keep}
        # Copies: the UI thread reads them while this thread keeps growing its own.
        return {k: (v.steps.copy(), v.values.copy()) for k, v in self._held.items()}


def runs_by_id(store: Store, run_ids: Sequence[int]) -> list[Run]:
    """The runs that still exist among `run_ids`, in that order (removed ones are left out)."""
    if not run_ids:
        return []
    with store.read() as session:
        return existing_runs(session, run_ids)


def keys_of(store: Store, run_ids: Sequence[int]) -> list[str]:
    with store.read() as session:
        return metric_keys(session, run_ids)


# ---- one run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    size: int
    modified: datetime


@dataclass(frozen=True)
class RunDetail:
    """Everything the detail screen shows of one run."""

    run: Run
    events: list[Event]
    latest: dict[str, tuple[int, float | None]]
    checkpoints: list[Checkpoint] = field(default_factory=list)
    worker_log: str = ""
    events_log: str = ""


def read_detail(store: Store, run_id: int) -> RunDetail | None:
    """The run, its events, latest metrics, checkpoints and log tails; None if it is gone."""
    with store.read() as session:
        found = existing_runs(session, [run_id])
        if not found:
            return None
        run = found[0]
        events = run_events(session, run_id)
        latest = latest_metrics(session, [run_id], metric_keys(session, [run_id])
                                ).get(run_id, {})
    folder = Path(run.run_dir) if run.run_dir else None
    return RunDetail(run=run, events=events, latest=latest,
                     checkpoints=checkpoints(folder) if folder else [],
                     worker_log=tail(folder / "worker.log") if folder else "",
                     events_log=tail(folder / "events.log") if folder else "")


def tail(path: Path, max_bytes: int = LOG_BYTES) -> str:
    """The end of a text file (whole lines), '' when it does not exist."""
    try:
        with path.open("rb") as file:
            size = file.seek(0, 2)
            file.seek(max(0, size - max_bytes))
            data = file.read()
    except OSError:
        return ""
    text = data.decode(errors="replace")
    if len(data) == max_bytes and "\n" in text:
        text = text.split("\n", 1)[1]  # the first line is cut
    return text


def checkpoints(folder: Path) -> list[Checkpoint]:
    """Checkpoint files in a run folder and its subfolders, newest first."""
    found = []
    try:
        paths = [p for p in folder.rglob("*") if p.suffix in CHECKPOINT_SUFFIXES]
    except OSError:
        return []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue  # deleted while we looked
        found.append(Checkpoint(path, stat.st_size,
                                datetime.fromtimestamp(stat.st_mtime, UTC)))
    return sorted(found, key=lambda c: c.modified, reverse=True)


def seed_group(store: Store, run_id: int, limit: int = 1_000) -> list[int]:
    """The runs that differ from this one only by seed (and execution settings), itself
    included: the same task and algorithm, at most `limit` of them looked at."""
    from fino.analysis.groups import experiment_fields

    with store.read() as session:
        found = existing_runs(session, [run_id])
        if not found:
            return []
        mine = experiment_fields(found[0])
        candidates = runs_of_task(session, found[0].task, found[0].algo, limit)
    return [c.id for c in candidates if experiment_fields(c) == mine]
