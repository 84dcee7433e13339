"""A run's lease, seen from the process that trains it.

The worker claims a run with a fresh attempt token and passes it to the child (environment
variables below). The child confirms, before each checkpoint and inside each metric write, that
its token still holds the run, the run is still running and its worker's heartbeat is younger
than the lease (a late heartbeat while another writer holds the database is no news: the worker
may be waiting for the same lock); otherwise it stops without writing. So a worker that stalls
(SIGSTOP, a frozen VM) loses its runs cleanly: its children stop within a lease, and once
another worker reclaims a run, the stale attempt can no longer write its rows or its folder.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC

from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from fino.store.db import Store
from fino.store.models import Run, RunStatus, utcnow
from fino.train.errors import RunDisowned

TOKEN_ENV = "FINO_ATTEMPT_TOKEN"
TOKENS_ENV = "FINO_ATTEMPT_TOKENS"  # a pack's: RUN_ID:TOKEN,RUN_ID:TOKEN,...
LEASE_ENV = "FINO_LEASE_SECONDS"
CHECK_ENV = "FINO_LEASE_CHECK_SECONDS"


@dataclass(frozen=True)
class Lease:
    """Attempt `token` of run `run_id`, held while its worker's heartbeat is younger than
    `seconds`; the holder confirms it every `check_every` seconds."""

    run_id: int
    token: str
    seconds: float
    check_every: float = 2.0

    @classmethod
    def from_env(cls, run_id: int) -> Lease | None:
        """The lease the worker passed to this process, or None (a run started by hand)."""
        tokens = dict(pair.split(":", 1) for pair in os.environ.get(TOKENS_ENV, "").split(",")
                      if ":" in pair)
        token = tokens.get(str(run_id)) if tokens else os.environ.get(TOKEN_ENV)
        if not token:
            return None
        return cls(run_id, token, float(os.environ.get(LEASE_ENV, "50")),
                   float(os.environ.get(CHECK_ENV, "2")))

    def env(self) -> dict[str, str]:
        return {TOKEN_ENV: self.token, LEASE_ENV: f"{self.seconds:g}",
                CHECK_ENV: f"{self.check_every:g}"}

    @staticmethod
    def pack_env(leases: list[Lease]) -> dict[str, str]:
        """What a pack's process is told: each member's token, one lease and check period."""
        return {TOKENS_ENV: ",".join(f"{lease.run_id}:{lease.token}" for lease in leases),
                LEASE_ENV: f"{leases[0].seconds:g}", CHECK_ENV: f"{leases[0].check_every:g}"}

    def lost_reason(self, session: Session, *, lock: bool = False) -> str | None:
        """None while this attempt holds the run (its token, status running), else why not.
        `lock` (in a write transaction, PostgreSQL) keeps the row from being reclaimed until
        the transaction ends; SQLite's write transactions are exclusive already."""
        query = select(Run.status, Run.attempt_token).where(Run.id == self.run_id)
        if lock and session.get_bind().dialect.name != "sqlite":
            query = query.with_for_update(read=True)
        row = session.execute(query).one_or_none()
        if row is None:
            return f"run {self.run_id} was removed from the queue"
        if row.attempt_token != self.token:
            return f"run {self.run_id} was claimed again by another attempt"
        if row.status != RunStatus.RUNNING:
            return f"run {self.run_id} is {row.status}"
        return None

    def heartbeat_age(self, session: Session) -> float | None:
        """Seconds since the worker last heartbeat the run (None if it never did)."""
        beat = session.execute(select(Run.heartbeat_at).where(Run.id == self.run_id)).scalar()
        if beat is None:
            return None
        return (utcnow() - (beat if beat.tzinfo else beat.replace(tzinfo=UTC))).total_seconds()


def writes_blocked(store: Store, run_id: int) -> bool:
    """Whether a writer is holding the database (SQLite) or the run's row (PostgreSQL) right
    now: then a late heartbeat says nothing about the worker (it may be waiting to write)."""
    try:
        if store.is_sqlite:
            database = make_url(store.url).database
            probe = sqlite3.connect(database, timeout=0.2, isolation_level=None)
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
            finally:
                probe.close()
        else:
            with store.write() as session:
                session.execute(select(Run.id).where(Run.id == run_id)
                                .with_for_update(nowait=True))
    except (sqlite3.OperationalError, SQLAlchemyError):
        return True
    return False


class LeaseWatch:
    """Confirms a lease every `lease.check_every` seconds in a background thread and calls
    `on_lost` once it is lost; `confirm()` checks afresh (before a checkpoint). A database that
    cannot be read leaves the lease unknown, and lost only once it has gone unconfirmed for a
    lease."""

    def __init__(self, store: Store, lease: Lease, *,
                 on_lost: Callable[[str], None] = lambda reason: None) -> None:
        self.store, self.lease, self.on_lost = store, lease, on_lost
        self.lost: str | None = None
        self.cancel_requested = False  # a user asked to cancel the run (a pack stops it alone)
        self._confirmed = time.monotonic()
        self._blocked_at = -float("inf")  # when the database was last seen held by a writer
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{lease.run_id}",
                                        daemon=True)

    def start(self) -> LeaseWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()

    def confirm(self) -> None:
        """Raise RunDisowned unless the lease is confirmed now (or was within a lease while the
        database cannot be read)."""
        reason = self._check()
        if reason:
            raise RunDisowned(reason)

    def record_error(self, message: str) -> None:
        """Store this attempt's one-line failure reason on its run (while it still holds it),
        for the worker to settle the run with; a database error only loses the message."""
        try:
            with self.store.write() as session:
                session.execute(update(Run).where(
                    Run.id == self.lease.run_id, Run.attempt_token == self.lease.token,
                    Run.status == RunStatus.RUNNING).values(error=message))
        except SQLAlchemyError:
            pass

    def mark_lost(self, reason: str) -> None:
        """Record a loss found elsewhere (the metric sink's fenced write)."""
        with self._lock:
            first = self.lost is None
            self.lost = self.lost or reason
        if first:
            self.on_lost(reason)

    def _check(self) -> str | None:
        if self.lost:
            return self.lost
        try:
            with self.store.read() as session:
                reason = self.lease.lost_reason(session)
                age = self.lease.heartbeat_age(session)
                self.cancel_requested = self.cancel_requested or bool(session.execute(
                    select(Run.cancel_requested).where(Run.id == self.lease.run_id)).scalar())
            if not reason and age is not None and age > self.lease.seconds:
                reason = self._stale(age)
        except SQLAlchemyError as exc:
            unconfirmed = time.monotonic() - self._confirmed
            if unconfirmed <= self.lease.seconds:
                return None
            reason = (f"the lease of run {self.lease.run_id} could not be confirmed for "
                      f"{unconfirmed:.0f} s (database error: {type(exc).__name__})")
        if reason:
            self.mark_lost(reason)
            return reason
        self._confirmed = time.monotonic()
        return None

    def _stale(self, age: float) -> str | None:
        """Why a late heartbeat means the worker is gone, or None while it may only be waiting
        for the database: another writer holds it now, or did within four checks (time for the
        worker to write its next heartbeat once the lock is gone)."""
        now = time.monotonic()
        if writes_blocked(self.store, self.lease.run_id):
            self._blocked_at = now
        if now - self._blocked_at <= 4 * self.lease.check_every:
            return None
        return (f"its worker's last heartbeat is {age:.0f} s old (lease {self.lease.seconds:g}"
                " s): the worker stalled or died")

    def _loop(self) -> None:
        while not self._done.wait(self.lease.check_every):
            if self._check():
                return


def watch_from_env(store: Store, run_id: int) -> LeaseWatch | None:
    """The lease its worker passed this process for run `run_id`, confirmed (RunDisowned if
    it no longer holds) and then watched in the background; None for a run started by hand."""
    lease = Lease.from_env(run_id)
    if lease is None:
        return None
    watch = LeaseWatch(store, lease)
    watch.confirm()  # a stale attempt stops before it reads or writes the folder
    return watch.start()
