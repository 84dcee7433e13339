"""Read-side queries for the CLI and the dashboard: filtered pages of runs, the latest value of a
few keys for many runs in one query, and metric series downsampled for plotting.

Every query is bounded by a page size, a list of ids or one (run, key) series, and uses the
indexes of `fino.store.models`; none of them writes. Rows come back detached from the session:
snapshots that stay readable after `Store.read()` ends (its rollback would expire them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from fino.store.models import STATUSES, Event, Metric, Run, RunStatus, RunTag

# Long IN lists are split: SQLite's variable limit is 32766 (older builds: 999).
CHUNK = 500
ORDER_COLUMNS = ("id", "name", "task", "algo", "seed", "status", "priority", "created_at",
                 "started_at", "finished_at")

Series = tuple[np.ndarray, np.ndarray]


class QueryError(ValueError):
    """A request the store cannot answer as asked (unknown run, bad filter); says why."""


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def _detached(session: Session, rows: Iterable[Any]) -> list[Any]:
    rows = list(rows)
    for row in rows:
        session.expunge(row)
    return rows


# ---- runs --------------------------------------------------------------------------------------


def _filtered(
    stmt: Select[Any],
    *,
    status: str | Iterable[str] | None = None,
    task: str | None = None,
    algo: str | None = None,
    tag: str | None = None,
    text: str | None = None,
    study: str | None = None,
) -> Select[Any]:
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        unknown = sorted(set(statuses) - set(STATUSES))
        if unknown:
            raise QueryError(f"unknown status {', '.join(unknown)}; known: {', '.join(STATUSES)}")
        if statuses:
            stmt = stmt.where(Run.status.in_(statuses))
    if task:
        # Substring: users type aliases (cube-single) of the stored names.
        stmt = stmt.where(Run.task.icontains(task, autoescape=True))
    if algo:
        stmt = stmt.where(Run.algo == algo.lower())
    if tag:
        stmt = stmt.where(Run.id.in_(tagged(tag)))
    if text:
        stmt = stmt.where(Run.name.icontains(text, autoescape=True)
                          | Run.task.icontains(text, autoescape=True)
                          | Run.notes.icontains(text, autoescape=True)
                          | Run.tags.icontains(text, autoescape=True))
    if study:
        stmt = stmt.where(Run.study == study)
    return stmt


def tagged(*tags: str) -> Select[Any]:
    """The ids of the runs that carry every one of `tags`, each matched whole."""
    stmt = select(RunTag.run_id).where(RunTag.tag.in_(tags)).group_by(RunTag.run_id)
    return stmt.having(func.count() == len(set(tags))) if len(tags) > 1 else stmt


def tagged_runs(session: Session, *tags: str) -> list[Run]:
    """Every run carrying all of `tags` (whole tags, never parts of one), oldest first."""
    return _detached(session, session.scalars(select(Run).where(Run.id.in_(tagged(*tags)))
                                              .order_by(Run.id)))


def run_machines(session: Session, run_ids: Sequence[int]) -> dict[int, str]:
    """The machine each run last started on (runs that never started, or started before fino
    recorded machines, are absent)."""
    found: dict[int, str] = {}
    for chunk in _chunks(list(dict.fromkeys(run_ids))):
        found.update(session.execute(select(Run.id, Run.machine).where(
            Run.id.in_(chunk), Run.machine.is_not(None))).all())
    return found


def runs_of_study(session: Session, study: str) -> list[Run]:
    """Every run a tuning study queued, oldest first."""
    return _detached(session, session.scalars(select(Run).where(Run.study == study)
                                              .order_by(Run.id)))


def study_statuses(session: Session, study: str) -> dict[int, RunStatus]:
    """{run id: status} of every run a tuning study queued."""
    return dict(session.execute(select(Run.id, Run.status).where(Run.study == study)
                                .order_by(Run.id)).all())


def statuses(session: Session, run_ids: Sequence[int]) -> dict[int, RunStatus]:
    """{run id: status} of these runs (unknown ids absent)."""
    found: dict[int, RunStatus] = {}
    for chunk in _chunks(list(dict.fromkeys(run_ids))):
        found.update(session.execute(select(Run.id, Run.status).where(Run.id.in_(chunk)))
                     .all())
    return found


def claim_order(session: Session, wanted: Sequence[RunStatus | str], limit: int) -> list[Run]:
    """Runs in the `wanted` statuses in the order workers claim them: priority, then age."""
    return _detached(session, session.scalars(
        select(Run).where(Run.status.in_(list(wanted)))
        .order_by(Run.priority.desc(), Run.id).limit(limit)))


def any_queued(session: Session, among: Sequence[int] | None = None) -> bool:
    """Whether a run waits in the queue (only among these ids when given)."""
    stmt = select(Run.id).where(Run.status == RunStatus.QUEUED)
    if among is not None:
        stmt = stmt.where(Run.id.in_(list(among)))
    return session.execute(stmt.limit(1)).first() is not None


def heartbeating(session: Session, since: datetime) -> int:
    """How many running runs heartbeat at `since` or later (their workers are alive)."""
    return int(session.scalar(select(func.count()).select_from(Run).where(
        Run.status == RunStatus.RUNNING, Run.heartbeat_at >= since)) or 0)


def newest_names(session: Session, limit: int) -> list[tuple[int, str]]:
    """(id, name) of the newest runs, newest first."""
    return list(session.execute(select(Run.id, Run.name).order_by(Run.id.desc())
                                .limit(limit)).all())


def event_kinds(session: Session, run_ids: Sequence[int], kinds: Sequence[str]
                ) -> set[tuple[int, str]]:
    """(run id, kind) for each of `kinds` these runs have an event of."""
    found: set[tuple[int, str]] = set()
    for chunk in _chunks(list(dict.fromkeys(run_ids))):
        found.update(session.execute(select(Event.run_id, Event.kind).where(
            Event.run_id.in_(chunk), Event.kind.in_(list(kinds)))).all())
    return found


def existing_runs(session: Session, run_ids: Sequence[int]) -> list[Run]:
    """The runs that exist among `run_ids`, in that order (unknown ids left out)."""
    found: dict[int, Run] = {}
    for chunk in _chunks(list(dict.fromkeys(run_ids))):
        found.update((r.id, r) for r in _detached(
            session, session.scalars(select(Run).where(Run.id.in_(chunk)))))
    return [found[i] for i in run_ids if i in found]


def runs_of_task(session: Session, task: str, algo: str, limit: int) -> list[Run]:
    """The first `limit` runs of one task and algorithm, oldest first."""
    return _detached(session, session.scalars(select(Run).where(
        Run.task == task, Run.algo == algo).order_by(Run.id).limit(limit)))


def heartbeating_workers(session: Session, since: datetime) -> frozenset[tuple[str, int]]:
    """(host, pid) of the workers whose running runs heartbeat at `since` or later."""
    rows = session.execute(select(Run.worker_host, Run.worker_pid).where(
        Run.status == RunStatus.RUNNING, Run.heartbeat_at >= since).distinct()).all()
    return frozenset((host, pid) for host, pid in rows if host and pid is not None)


def list_runs(
    session: Session,
    *,
    status: str | Iterable[str] | None = None,
    task: str | None = None,
    algo: str | None = None,
    tag: str | None = None,
    text: str | None = None,
    study: str | None = None,
    order_by: str = "id",
    descending: bool = True,
    limit: int | None = 200,
    offset: int = 0,
) -> list[Run]:
    """One page of runs matching every given filter (`task` and `text`: case-insensitive
    substrings; `tag`: one whole tag), newest first by default; `limit=None`: no limit."""
    if order_by not in ORDER_COLUMNS:
        raise QueryError(f"cannot order by {order_by!r}; allowed: {', '.join(ORDER_COLUMNS)}")
    if (limit is not None and limit < 1) or offset < 0:
        raise QueryError(f"limit must be >= 1 and offset >= 0 (got {limit}, {offset})")
    column = getattr(Run, order_by)
    stmt = _filtered(select(Run), status=status, task=task, algo=algo, tag=tag, text=text,
                     study=study)
    # The id breaks ties so that pages never overlap or skip a run.
    order = (column.desc(), Run.id.desc()) if descending else (column.asc(), Run.id.asc())
    stmt = stmt.order_by(*order).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return _detached(session, session.scalars(stmt))


def count_runs(
    session: Session,
    *,
    status: str | Iterable[str] | None = None,
    task: str | None = None,
    algo: str | None = None,
    tag: str | None = None,
    text: str | None = None,
    study: str | None = None,
) -> int:
    """How many runs `list_runs` would page through with the same filters."""
    stmt = _filtered(select(func.count(Run.id)), status=status, task=task, algo=algo, tag=tag,
                     text=text, study=study)
    return int(session.scalar(stmt) or 0)


def get_runs(session: Session, run_ids: Sequence[int]) -> list[Run]:
    """The runs with these ids, in the order given; an unknown id is a `QueryError`."""
    found: dict[int, Run] = {}
    for chunk in _chunks(list(dict.fromkeys(run_ids))):
        found.update((r.id, r) for r in _detached(
            session, session.scalars(select(Run).where(Run.id.in_(chunk)))))
    missing = [i for i in run_ids if i not in found]
    if missing:
        raise QueryError(f"no run with id {', '.join(map(str, missing))}")
    return [found[i] for i in run_ids]


_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")


def resolve_run_ids(session: Session, specs: Iterable[str]) -> list[int]:
    """Run ids from specs such as `4`, `3-7` or `3,5,9-12`, in the order given, each once.

    A single id must exist; a range yields the runs that exist in it (removed runs leave
    holes) and must match at least one.
    """
    ids: list[int] = []
    singles: list[int] = []
    for spec in specs:
        for part in (p.strip() for p in str(spec).split(",")):
            if not part:
                continue
            if part.isdigit():
                ids.append(int(part))
                singles.append(int(part))
            elif match := _RANGE.match(part):
                lo, hi = int(match[1]), int(match[2])
                if lo > hi:
                    raise QueryError(f"empty range {part!r} (write low-high)")
                found = list(session.scalars(select(Run.id).where(Run.id.between(lo, hi))
                                             .order_by(Run.id)))
                if not found:
                    raise QueryError(f"no run with an id in {lo}-{hi}")
                ids.extend(found)
            else:
                raise QueryError(f"{part!r} is not a run id or a range such as 3-7")
    if not ids:
        raise QueryError("no run ids given")
    get_runs(session, singles)  # raises for the ones that do not exist
    return list(dict.fromkeys(ids))


def run_events(session: Session, run_id: int) -> list[Event]:
    """A run's event log, oldest first."""
    return _detached(session, session.scalars(select(Event).where(Event.run_id == run_id)
                                              .order_by(Event.time, Event.id)))


# ---- metrics -----------------------------------------------------------------------------------


def latest_metrics(
    session: Session, run_ids: Sequence[int], keys: Sequence[str]
) -> dict[int, dict[str, tuple[int, float | None]]]:
    """{run: {key: (step, value)}}: each key's value at its largest step, for many runs at once.

    One query per 500 runs: max(step) per (run, key) — a seek per pair in the (run_id, key,
    step) index — joined back to the rows. Runs or keys with no data are absent.
    """
    result: dict[int, dict[str, tuple[int, float | None]]] = {}
    if not keys:
        return result
    for chunk in _chunks(list(dict.fromkeys(run_ids))):
        latest = (select(Metric.run_id, Metric.key, func.max(Metric.step).label("step"))
                  .where(Metric.run_id.in_(chunk), Metric.key.in_(list(keys)))
                  .group_by(Metric.run_id, Metric.key).subquery())
        stmt = select(Metric.run_id, Metric.key, Metric.step, Metric.value).join(
            latest, and_(Metric.run_id == latest.c.run_id, Metric.key == latest.c.key,
                         Metric.step == latest.c.step))
        for run_id, key, step, value in session.execute(stmt):
            result.setdefault(run_id, {})[key] = (step, value)
    return result


def recent_values(session: Session, run_ids: Sequence[int], key: str, count: int
                  ) -> dict[int, list[float]]:
    """The last `count` finite values of `key` per run (one indexed query per run)."""
    out = {}
    for run_id in run_ids:
        values = session.scalars(select(Metric.value).where(
            Metric.run_id == run_id, Metric.key == key).order_by(Metric.step.desc())
            .limit(count)).all()
        out[run_id] = [v for v in values if v is not None and math.isfinite(v)]
    return out


def metric_keys(session: Session, run_ids: Sequence[int]) -> list[str]:
    """The metric keys these runs have logged, sorted."""
    keys: set[str] = set()
    for chunk in _chunks(list(dict.fromkeys(run_ids))):
        keys.update(session.scalars(select(Metric.key).where(Metric.run_id.in_(chunk))
                                    .distinct()))
    return sorted(keys)


def _as_arrays(rows: Iterable[tuple[int, float | None]]) -> Series:
    pairs = list(rows)
    steps = np.fromiter((s for s, _ in pairs), dtype=np.int64, count=len(pairs))
    values = np.fromiter((np.nan if v is None else v for _, v in pairs), dtype=np.float64,
                         count=len(pairs))
    return steps, values


def series(
    session: Session,
    run_id: int,
    key: str,
    *,
    max_points: int | None = None,
    after_step: int | None = None,
) -> Series:
    """(steps, values) of one key of one run in step order (NaN where nothing finite was logged),
    only steps > `after_step` if given (a poller's increment), at most `max_points` points."""
    stmt = select(Metric.step, Metric.value).where(Metric.run_id == run_id, Metric.key == key)
    if after_step is not None:
        stmt = stmt.where(Metric.step > after_step)
    steps, values = _as_arrays(session.execute(stmt.order_by(Metric.step)))
    if max_points is not None:
        steps, values = downsample(steps, values, max_points)
    return steps, values


def series_many(session: Session, run_ids: Sequence[int], key: str) -> dict[int, Series]:
    """Full series of one key for many runs (one query per 500 runs); runs without it absent."""
    rows: dict[int, list[tuple[int, float | None]]] = {}
    for chunk in _chunks(list(dict.fromkeys(run_ids))):
        stmt = (select(Metric.run_id, Metric.step, Metric.value)
                .where(Metric.run_id.in_(chunk), Metric.key == key)
                .order_by(Metric.run_id, Metric.step))
        for run_id, step, value in session.execute(stmt):
            rows.setdefault(run_id, []).append((step, value))
    return {run_id: _as_arrays(pairs) for run_id, pairs in rows.items()}


def iter_metric_rows(
    session: Session, run_ids: Sequence[int], keys: Sequence[str] | None = None
) -> Iterator[tuple[int, int, str, float | None, float]]:
    """(run_id, step, key, value, wall_time) for these runs, by run, key and step, streamed in
    batches so that an export of millions of rows holds only one batch in memory."""
    for run_id in dict.fromkeys(run_ids):
        stmt = select(Metric.run_id, Metric.step, Metric.key, Metric.value, Metric.wall_time
                      ).where(Metric.run_id == run_id)
        if keys:
            stmt = stmt.where(Metric.key.in_(list(keys)))
        stmt = stmt.order_by(Metric.key, Metric.step).execution_options(yield_per=10_000)
        yield from session.execute(stmt)


def downsample(steps: np.ndarray, values: np.ndarray, max_points: int) -> Series:
    """At most `max_points` points: both end points, plus the minimum and the maximum of each
    of (max_points - 2) // 2 equal step-width buckets of the rest, so that spikes survive."""
    if max_points < 2:
        raise QueryError(f"max_points must be >= 2 (got {max_points})")
    n = len(steps)
    if n <= max_points:
        return steps, values
    buckets = (max_points - 2) // 2
    keep = [np.array([0, n - 1])]
    if buckets:
        inner = np.arange(1, n - 1)
        lo, hi = float(steps[1]), float(steps[n - 2])
        width = (hi - lo) / buckets or 1.0
        bucket = np.minimum(((steps[inner] - lo) / width).astype(np.int64), buckets - 1)
        starts = np.flatnonzero(np.r_[True, np.diff(bucket) != 0])
        # Sorting by (bucket, value) puts each bucket's minimum first and, on the negated
        # values, its maximum first; NaNs sort last either way, so they never win.
        low_first = np.lexsort((values[inner], bucket))
        high_first = np.lexsort((-values[inner], bucket))
        keep += [inner[low_first[starts]], inner[high_first[starts]]]
    index = np.unique(np.concatenate(keep))
    return steps[index], values[index]
