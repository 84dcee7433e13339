"""The run queue: every status change is one compare-and-set UPDATE, recorded in `events`.

queued -> running -> done | failed | cancelled, plus lost (heartbeat expired) and pruned (by the
tuner). A claim takes the oldest queued run of highest priority, and for a pack the queued runs
that fit it, in one write transaction: the selects lock their rows (PostgreSQL: FOR UPDATE SKIP
LOCKED; SQLite: the transaction's BEGIN IMMEDIATE), and the change is a compare-and-set
`UPDATE ... WHERE id IN (...) AND status = 'queued' RETURNING id`.

Every claim gets a fresh attempt token. Heartbeats, settling and the run's own writes name it: a
worker that stalled past its lease and whose run was reclaimed can no longer touch the run.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import Select, case, delete, select, update
from sqlalchemy.orm import Session

from fino.config import RunConfig
from fino.runfacts import MACHINE_MARK
from fino.store.db import Store
from fino.store.models import (
    FINISHED,
    Event,
    Metric,
    Run,
    RunStatus,
    split_tags,
    utcnow,
    write_tags,
)

RETRYABLE = (RunStatus.FAILED, RunStatus.LOST, RunStatus.CANCELLED, RunStatus.PRUNED)
# What a run back in the queue no longer has: no worker, no timers, no outcome (the last
# attempt's error moves into the event that requeues it), no pack (its next attempt may train
# in another pack or alone).
CLEARED_ON_REQUEUE = dict(started_at=None, finished_at=None, heartbeat_at=None,
                          worker_host=None, worker_pid=None, exit_code=None, error=None,
                          pack_id=None)
# A pack claim looks at most this many queued runs per member for ones that fit its head: a
# claim stays cheap (and SQLite's write lock short) however long the queue, at the price of
# missing fitting runs queued behind many that do not fit (they join a later pack).
SCAN_PER_MEMBER = 50


class QueueError(ValueError):
    """A queue operation that cannot be done as asked; the message says why."""


class Outcome(StrEnum):
    """What a queue operation did to one run."""

    CANCELLED = "cancelled"  # a queued or lost run, cancelled at once
    STOPPING = "stopping"  # a running run, flagged for its worker to stop
    REQUEUED = "queued"
    REPRIORITISED = "priority"
    RETAGGED = "tags"
    UNCHANGED = "unchanged"  # the tags asked for were the run's tags already
    UNKNOWN = "unknown id"
    REFUSED = "refused"  # the run's status does not allow the operation


@dataclass(frozen=True)
class Change:
    """The outcome for one run, with what it takes to say it: the status of a run refused,
    the new priority, the run's tags after a tag change."""

    outcome: Outcome
    status: RunStatus | None = None
    priority: int | None = None
    tags: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.outcome in (Outcome.UNKNOWN, Outcome.REFUSED)


def _refused(status: RunStatus | None) -> Change:
    return Change(Outcome.UNKNOWN) if status is None else Change(Outcome.REFUSED, status)


class HeartbeatsUnknown(RuntimeError):
    """The reaper waited too long for the database: heartbeats others wanted to write in that
    time may be missing, so nothing was reaped."""


def run_name(config: RunConfig, label: str | None = None, *, study: str | None = None,
             trial: int | None = None) -> str:
    """TASK[-PROFILE][-STUDY.TRIAL]-LABEL-sSEED with the task's short name (cube-single-t1),
    the preset's profile unless it is the paper's, the tuning study and trial; the label
    defaults to the algorithm (a study plan passes its method)."""
    from fino.backends.registry import short_task_name

    parts = [short_task_name(config.task.backend, config.task.name)]
    profile = (config.preset or "").rpartition(":")[2]
    if profile not in ("", "paper", "defaults"):
        parts.append(profile)
    if study:
        parts.append(study if trial is None else f"{study}.{trial}")
    return "-".join([*parts, label or config.algo, f"s{config.seed}"])


def given_names(name: str, configs: Sequence[RunConfig]) -> list[str]:
    """A user's name for a run, NAME-sSEED for each of several; RunNameError for a name that
    cannot be stored."""
    from fino.store.text import check_run_name

    names = [name] if len(configs) == 1 else [f"{name}-s{c.seed}" for c in configs]
    return [check_run_name(n) for n in names]


def add_runs(
    store: Store,
    configs: Sequence[RunConfig],
    *,
    runs_dir: Path = Path("runs"),
    priority: int = 0,
    tags: Iterable[str] = (),
    max_attempts: int = 1,
    study: str | None = None,
    trial: int | None = None,
    names: Sequence[str] | None = None,
) -> list[int]:
    """Queue one run per config (all in one transaction); returns their ids. `names` (one per
    config) replaces the default names (`run_name`)."""
    if names is not None and len(names) != len(configs):
        raise ValueError(f"{len(names)} names for {len(configs)} configs")
    tag_text = ",".join(sorted({t.strip() for t in tags if t.strip()}))
    runs_dir = Path(runs_dir).expanduser().resolve()
    with store.write() as session:
        rows = []
        for index, config in enumerate(configs):
            name = names[index] if names is not None else run_name(config, study=study,
                                                                   trial=trial)
            row = Run(name=name, task=config.task.name, backend=config.task.backend,
                      algo=config.algo, preset=config.preset, config=config.to_dict(),
                      seed=config.seed, status=RunStatus.QUEUED, priority=priority, attempts=0,
                      max_attempts=max_attempts, tags=tag_text, notes="", study=study,
                      trial=trial, cancel_requested=False)
            session.add(row)
            rows.append(row)
        session.flush()
        for row in rows:
            row.run_dir = str(runs_dir / f"{row.id:06d}-{row.name}")
            session.add(Event(run_id=row.id, kind="status", old_status=None,
                              new_status=RunStatus.QUEUED, message=f"queued ({row.preset})"))
        return [row.id for row in rows]


def import_done_run(store: Store, fields: Mapping[str, Any], metrics: Mapping[str, Any], *,
                    started_at: datetime | None, finished_at: datetime | None,
                    machine: str | None, source: str) -> int | None:
    """Add a run made elsewhere as done, with its metric series ({key: [[step, value], ...]}),
    unless a done run of the same task and seed already carries all its tags; its id, or None
    when it was there already. `source` names where it came from in its event."""
    tags = set(split_tags(fields.get("tags")))
    with store.write() as session:
        same = session.scalars(select(Run.tags).where(
            Run.task == fields["task"], Run.seed == fields["seed"],
            Run.status == RunStatus.DONE))
        if any(set(split_tags(text)) >= tags for text in same):
            return None
        run = Run(**fields, status=RunStatus.DONE, attempts=1, max_attempts=1,
                  cancel_requested=False, started_at=started_at, finished_at=finished_at,
                  machine=machine)
        session.add(run)
        session.flush()
        session.add(Event(run_id=run.id, kind="status", old_status=None,
                          new_status=RunStatus.DONE, message=f"imported from {source}" + (
                              f"{MACHINE_MARK}{machine}" if machine else "")))
        session.add_all(Metric(run_id=run.id, step=step, key=key, value=value, wall_time=0.0)
                        for key, points in metrics.items() for step, value in points)
        return run.id


@dataclass(frozen=True)
class Claim:
    """A claimed run, the token of this attempt (what fences it) and the pack it trains in
    (None: alone)."""

    run_id: int
    token: str
    pack_id: str | None = None


def new_token() -> str:
    return secrets.token_hex(16)


def new_pack_id() -> str:
    return secrets.token_hex(6)


def claim_next(store: Store, *, host: str, pid: int, among: Sequence[int] | None = None,
               max_attempts: int = 1) -> Claim | None:
    """Atomically take the queued run of highest priority, oldest first (only from `among`
    when given); None when there is none. `max_attempts` raises the run's own allowance (the
    worker's --max-attempts), so the reaper of any worker honours it too."""
    claims = claim_pack(store, host=host, pid=pid, size=1, fits=lambda _head, _other: False,
                        among=among, max_attempts=max_attempts)
    return claims[0] if claims else None


def claim_pack(store: Store, *, host: str, pid: int, size: int,
               fits: Callable[[dict[str, Any], dict[str, Any]], bool],
               among: Sequence[int] | None = None, max_attempts: int = 1,
               exclude: Sequence[int] = ()) -> list[Claim]:
    """Atomically take the run `claim_next` would take and up to `size - 1` more queued runs,
    in the same order, whose configs `fits(head_config, config)` accepts, each claimed as
    `claim_next` claims one (own token, same allowance) and, when several, with one shared
    pack id. Their claims head first; [] when nothing is queued. `exclude`: runs the caller
    still holds an earlier attempt of (a pack member it released is not claimed again until
    that pack's process ends)."""
    if size < 1:
        raise ValueError(f"a pack claim needs size >= 1, got {size}")
    queued = select(Run.id, Run.config).where(Run.status == RunStatus.QUEUED)
    if among is not None:
        queued = queued.where(Run.id.in_(list(among)))
    if exclude:
        queued = queued.where(Run.id.not_in(list(exclude)))
    queued = queued.order_by(Run.priority.desc(), Run.id)
    with store.write() as session:
        head = session.execute(_locked(store, queued.limit(1))).first()
        if head is None:
            return []
        chosen = [head.id]
        scan = queued.where(Run.id != head.id).limit(size * SCAN_PER_MEMBER)
        # Read without locks, then lock as many fitting runs as are missing, the next ones in
        # order where another claim holds some: locking the whole scan would hide it from other
        # workers for this transaction, and they could find the queue empty.
        candidates = session.execute(scan).all() if size > 1 else []
        fitting = (row.id for row in candidates if fits(head.config, row.config))
        while len(chosen) < size and (batch := list(islice(fitting, size - len(chosen)))):
            free = set(session.execute(_locked(store, select(Run.id).where(
                Run.id.in_(batch), Run.status == RunStatus.QUEUED))).scalars())
            chosen += [run_id for run_id in batch if run_id in free]
        return _claim(session, chosen, host=host, pid=pid, max_attempts=max_attempts)


def _locked(store: Store, stmt: Select[Any]) -> Select[Any]:
    """`stmt` locking the rows it returns and skipping those others hold (PostgreSQL; SQLite's
    write transaction already excludes every other writer)."""
    return stmt if store.is_sqlite else stmt.with_for_update(skip_locked=True)


def _claim(session: Session, run_ids: list[int], *, host: str, pid: int,
           max_attempts: int) -> list[Claim]:
    """Set the runs `run_ids` (locked, queued) running for one worker, as one pack when several,
    with an event each; their claims in the order given."""
    now = utcnow()
    tokens = {run_id: new_token() for run_id in run_ids}
    pack_id = new_pack_id() if len(run_ids) > 1 else None
    allowance = case((Run.max_attempts < max_attempts, max_attempts), else_=Run.max_attempts)
    claimed = set(session.execute(
        update(Run).where(Run.id.in_(run_ids), Run.status == RunStatus.QUEUED)
        .values(status=RunStatus.RUNNING, attempts=Run.attempts + 1, started_at=now,
                heartbeat_at=now, finished_at=None, worker_host=host, worker_pid=pid,
                cancel_requested=False, exit_code=None, error=None,
                attempt_token=case(tokens, value=Run.id),
                pack_id=pack_id, max_attempts=allowance)
        .returning(Run.id).execution_options(synchronize_session=False)).scalars())
    if claimed != set(run_ids):
        # The selects locked these rows: a run that is not queued any more is a bug, and the
        # whole claim is rolled back rather than leave a pack short of members it names.
        raise RuntimeError(f"runs {sorted(set(run_ids) - claimed)} left the queue while this "
                           "claim held them locked")
    where = f" in pack {pack_id} ({len(run_ids)} runs)" if pack_id else ""
    for run_id in run_ids:
        session.add(Event(run_id=run_id, kind="status", old_status=RunStatus.QUEUED,
                          new_status=RunStatus.RUNNING, message=f"claimed by {host}:{pid}{where}"))
    return [Claim(run_id, tokens[run_id], pack_id) for run_id in run_ids]


def transition(store: Store, run_id: int, expected: Sequence[RunStatus], new: RunStatus, *,
               message: str = "", token: str | None = None, **values: Any) -> bool:
    """Compare-and-set the status of one run (from one of `expected` to `new`) and record it;
    with `token`, only while that attempt still holds the run. Back to `queued`, the run
    drops its worker, timers and outcome (CLEARED_ON_REQUEUE)."""
    with store.write() as session:
        row = session.execute(select(Run.status, Run.error).where(Run.id == run_id)).first()
        if row is None or row.status not in expected:
            return False
        old = row.status
        if new in FINISHED:
            values.setdefault("finished_at", utcnow())
        if new == RunStatus.QUEUED:
            values.update(CLEARED_ON_REQUEUE)
            if row.error:
                message = "; ".join(filter(None, (message, f"last attempt: {row.error}")))
        fence = [Run.attempt_token == token] if token is not None else []
        stmt = (update(Run).where(Run.id == run_id, Run.status == old, *fence)
                .values(status=new, **values).returning(Run.id)
                .execution_options(synchronize_session=False))
        if session.execute(stmt).scalar_one_or_none() is None:
            return False
        session.add(Event(run_id=run_id, kind="status", old_status=old, new_status=new,
                          message=message))
        return True


def record_event(store: Store, run_id: int | None, kind: str, message: str) -> None:
    with store.write() as session:
        session.add(Event(run_id=run_id, kind=kind, message=message))


@dataclass
class HeartbeatResult:
    still_mine: set[int]  # runs whose current attempt is still this worker's (status running)
    cancel_requested: set[int]


def heartbeat(store: Store, tokens: Mapping[int, str]) -> HeartbeatResult:
    """Refresh the heartbeat of the worker's running runs (run id -> attempt token); report
    which it still holds and which a user asked to cancel."""
    if not tokens:
        return HeartbeatResult(set(), set())
    mine = (Run.id.in_(list(tokens)), Run.status == RunStatus.RUNNING,
            Run.attempt_token.in_(list(tokens.values())))
    with store.write() as session:
        owned = session.execute(
            update(Run).where(*mine).values(heartbeat_at=utcnow())
            .returning(Run.id, Run.attempt_token, Run.cancel_requested)
            .execution_options(synchronize_session=False)).all()
    held = {r.id for r in owned if tokens.get(r.id) == r.attempt_token}
    return HeartbeatResult(held, {r.id for r in owned if r.id in held and r.cancel_requested})


def reap(store: Store, *, expiry_seconds: float, requeue: bool = True,
         keep: Iterable[str] = (), patience: float | None = None) -> list[int]:
    """Mark running runs whose heartbeat is older than `expiry_seconds` as lost, except the
    attempts in `keep` (the caller's own: a worker never reaps what it holds); those with
    attempts left (`attempts < max_attempts`) go back to the queue when `requeue`. With
    `patience`, a reap that waited longer than that for the database is undone and raises
    HeartbeatsUnknown: the heartbeats that waited alongside it are late, not dead."""
    cutoff = utcnow() - timedelta(seconds=expiry_seconds)
    kept = list(keep)
    spare = [Run.attempt_token.is_(None) | Run.attempt_token.not_in(kept)] if kept else []
    started = time.monotonic()
    with store.write() as session:
        lost = session.execute(
            update(Run).where(Run.status == RunStatus.RUNNING, Run.heartbeat_at < cutoff,
                              *spare)
            .values(status=RunStatus.LOST, finished_at=utcnow(),
                    error=f"heartbeat older than {expiry_seconds:.0f} s: the worker or its "
                          "machine stopped without a word")
            .returning(Run.id, Run.attempts, Run.max_attempts, Run.worker_host,
                       Run.worker_pid)
            .execution_options(synchronize_session=False)).all()
        waited = time.monotonic() - started
        if lost and patience is not None and waited > patience:
            raise HeartbeatsUnknown(f"waited {waited:.1f} s for the database; not reaping "
                                    f"{len(lost)} run(s) whose heartbeats may be late")
        for row in lost:
            session.add(Event(run_id=row.id, kind="status", old_status=RunStatus.RUNNING,
                              new_status=RunStatus.LOST, message=f"heartbeat expired (worker "
                              f"{row.worker_host}:{row.worker_pid})"))
    if requeue:
        for row in lost:
            if row.attempts < row.max_attempts:
                transition(store, row.id, (RunStatus.LOST,), RunStatus.QUEUED,
                           message=f"retry {row.attempts + 1}/{row.max_attempts} after lost")
    return [row.id for row in lost]


def _update_if(session: Any, run_id: int, status: RunStatus, **values: Any) -> bool:
    """Set columns of one run if it is in `status` (one compare-and-set UPDATE); whether it
    was."""
    return session.execute(
        update(Run).where(Run.id == run_id, Run.status == status).values(**values)
        .returning(Run.id).execution_options(synchronize_session=False)
    ).scalar_one_or_none() is not None


def request_cancel(store: Store, run_ids: Iterable[int]) -> dict[int, Change]:
    """Queued (or lost) runs are cancelled at once; running ones are flagged for their worker,
    which stops the process (SIGTERM, then SIGKILL). Returns what happened to each id."""
    outcome = {}
    for run_id in run_ids:
        if transition(store, run_id, (RunStatus.QUEUED, RunStatus.LOST), RunStatus.CANCELLED,
                      message="cancelled"):
            outcome[run_id] = Change(Outcome.CANCELLED)
            continue
        with store.write() as session:
            if _update_if(session, run_id, RunStatus.RUNNING, cancel_requested=True):
                session.add(Event(run_id=run_id, kind="cancel_requested",
                                  message="cancel requested; the worker stops the process"))
                outcome[run_id] = Change(Outcome.STOPPING)
                continue
            outcome[run_id] = _refused(
                session.execute(select(Run.status).where(Run.id == run_id)).scalar())
    return outcome


def retry(store: Store, run_ids: Iterable[int]) -> dict[int, Change]:
    """Put failed, lost, cancelled or pruned runs back in the queue (they resume from their
    last checkpoint); each is granted one more attempt when it has used them all."""
    one_more = case((Run.max_attempts <= Run.attempts, Run.attempts + 1),
                    else_=Run.max_attempts)
    outcome = {}
    for run_id in run_ids:
        if transition(store, run_id, RETRYABLE, RunStatus.QUEUED, message="retry requested",
                      cancel_requested=False, max_attempts=one_more):
            outcome[run_id] = Change(Outcome.REQUEUED)
        else:
            with store.read() as session:
                outcome[run_id] = _refused(
                    session.execute(select(Run.status).where(Run.id == run_id)).scalar())
    return outcome


def set_priority(store: Store, run_ids: Iterable[int], priority: int) -> dict[int, Change]:
    """Change the priority of queued runs (it orders claims: higher first, then oldest);
    runs in other states keep theirs. Returns what happened to each id."""
    outcome = {}
    for run_id in run_ids:
        with store.write() as session:
            old = session.execute(
                select(Run.priority).where(Run.id == run_id, Run.status == RunStatus.QUEUED)
            ).scalar_one_or_none()
            if _update_if(session, run_id, RunStatus.QUEUED, priority=priority):
                session.add(Event(run_id=run_id, kind="priority",
                                  message=f"priority {old} -> {priority}"))
                outcome[run_id] = Change(Outcome.REPRIORITISED, priority=priority)
                continue
            outcome[run_id] = _refused(
                session.execute(select(Run.status).where(Run.id == run_id)).scalar())
    return outcome


def remove(store: Store, run_ids: Sequence[int]) -> list[int]:
    """Delete runs with their metrics and events; refuses (and deletes nothing) if any is
    running. The run folders on disk are left alone."""
    with store.write() as session:
        rows = session.execute(select(Run.id, Run.status, Run.name)
                               .where(Run.id.in_(run_ids))).all()
        unknown = sorted(set(run_ids) - {r.id for r in rows})
        if unknown:
            raise QueueError(f"no run with id {', '.join(map(str, unknown))}")
        running = [r.id for r in rows if r.status == RunStatus.RUNNING]
        if running:
            raise QueueError(f"run(s) {', '.join(map(str, running))} are running: cancel "
                             "them first (fino queue cancel ID)")
        session.execute(delete(Run).where(Run.id.in_(run_ids))
                        .execution_options(synchronize_session=False))
        for r in rows:
            session.add(Event(run_id=None, kind="removed", message=f"run {r.id} ({r.name}, "
                              f"{r.status}) removed"))
        return [r.id for r in rows]


def get_run(store: Store, run_id: int) -> Run:
    with store.read() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise QueueError(f"no run with id {run_id}")
        session.expunge(run)
        return run


def count_by_status(store: Store) -> dict[RunStatus, int]:
    from sqlalchemy import func

    with store.read() as session:
        rows = session.execute(select(Run.status, func.count()).group_by(Run.status)).all()
    return {status: n for status, n in rows}


# ---- what people write about runs: tags, names, notes --------------------------------------

TAGS_MAX = 1000  # runs.tags, the comma-separated display of a run's tags
NOTES_MAX = 10_000


def change_tags(store: Store, run_ids: Iterable[int], add: Iterable[str] = (),
                remove: Iterable[str] = ()) -> dict[int, Change]:
    """Add and remove tags (checked by `check_tag`) of runs in one transaction, each change
    recorded; what happened to each id (RETAGGED, UNCHANGED: with its tags; UNKNOWN)."""
    from fino.store.text import check_tags

    add, remove = set(check_tags(add)), set(check_tags(remove))
    ids = list(dict.fromkeys(run_ids))
    outcome = {}
    with store.write() as session:
        found = {run_id: tags for run_id, tags in
                 session.execute(select(Run.id, Run.tags).where(Run.id.in_(ids)))}
        for run_id in ids:
            if run_id not in found:
                outcome[run_id] = Change(Outcome.UNKNOWN)
                continue
            old = split_tags(found[run_id])
            new = sorted((set(old) | add) - remove)
            if new == sorted(old):
                outcome[run_id] = Change(Outcome.UNCHANGED, tags=tuple(old))
                continue
            text = ",".join(new)
            if len(text) > TAGS_MAX:
                raise QueueError(f"run {run_id}: its tags would take {len(text)} characters, "
                                 f"more than {TAGS_MAX}")
            session.execute(update(Run).where(Run.id == run_id).values(tags=text)
                            .execution_options(synchronize_session=False))
            write_tags(session, run_id, new)
            session.add(Event(run_id=run_id, kind="tags",
                              message=f"tags: {','.join(old) or '-'} -> {text or '-'}"))
            outcome[run_id] = Change(Outcome.RETAGGED, tags=tuple(new))
    return outcome


def rename(store: Store, run_id: int, name: str) -> str:
    """Give a run a new name (checked by `check_run_name`; its folder keeps its path); the
    old name."""
    from fino.store.text import check_run_name

    check_run_name(name)
    with store.write() as session:
        old = session.execute(select(Run.name).where(Run.id == run_id)).scalar_one_or_none()
        if old is None:
            raise QueueError(f"no run with id {run_id}")
        session.execute(update(Run).where(Run.id == run_id).values(name=name)
                        .execution_options(synchronize_session=False))
        session.add(Event(run_id=run_id, kind="renamed", message=f"renamed: {old} -> {name}"))
    return old


def set_note(store: Store, run_id: int, text: str) -> None:
    """Replace a run's notes ('' clears them); the change is recorded in its events."""
    if len(text) > NOTES_MAX:
        raise QueueError(f"a note of {len(text)} characters: at most {NOTES_MAX}")
    with store.write() as session:
        if not _exists(session, run_id):
            raise QueueError(f"no run with id {run_id}")
        session.execute(update(Run).where(Run.id == run_id).values(notes=text)
                        .execution_options(synchronize_session=False))
        session.add(Event(run_id=run_id, kind="note",
                          message="note cleared" if not text else f"note: {text[:80]}"))


def _exists(session: Any, run_id: int) -> bool:
    return session.execute(select(Run.id).where(Run.id == run_id)).first() is not None
