"""The trainer's database sink: metrics reach the `metrics` table within about a second,
written in batches by a background thread; a busy or unreachable database only delays them.
With a lease, each write first confirms in its own transaction that the attempt still holds the
run: a stale attempt never writes a row once its run was reclaimed."""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from fino.runfacts import machine_of
from fino.store.db import Store
from fino.store.models import Event, Metric, Run
from fino.train.sinks import warn

if TYPE_CHECKING:
    from fino.store.lease import LeaseWatch


def upsert_metrics(store: Store, rows: list[dict[str, Any]],
                   session: Session | None = None) -> None:
    """Insert metric rows; a (run, key, step) already stored is overwritten, never duplicated
    (a resumed run re-logs the steps after its checkpoint). In `session` when given."""
    if store.is_sqlite:
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    stmt = insert(Metric).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=["run_id", "key", "step"],
        set_={"value": stmt.excluded.value, "wall_time": stmt.excluded.wall_time})
    if session is not None:
        session.execute(stmt)
        return
    with store.write() as own:
        own.execute(stmt)


class _Fenced(Exception):
    """The attempt no longer holds the run: nothing more may be written."""


class DatabaseSink:
    """A `fino.train.sinks.Sink` writing one run's metrics and events to the store."""

    def __init__(self, store: Store, run_id: int, *, flush_interval: float = 1.0,
                 batch_size: int = 5_000, lease: LeaseWatch | None = None) -> None:
        """`lease`: fence every write with this attempt's lease (what a worker's child does)."""
        self.store, self.run_id, self.lease = store, run_id, lease
        self.flush_interval, self.batch_size = flush_interval, batch_size
        # ("metrics", rows) | ("event", (kind, message)) | ("truncate", step), in order
        self._ops: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._failures = 0
        self._thread = threading.Thread(target=self._loop, name=f"db-sink-{run_id}", daemon=True)
        self._thread.start()

    # ---- Sink interface (called from the training loop: never blocks on the database) ----

    @property
    def fenced(self) -> bool:
        return self.lease is not None and self.lease.lost is not None

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if self.fenced:
            return
        now = time.time()
        rows = [{"run_id": self.run_id, "step": step, "key": key,
                 "value": float(value) if math.isfinite(value) else None, "wall_time": now}
                for key, value in metrics.items()]
        with self._lock:
            self._ops.append(("metrics", rows))

    def event(self, kind: str, message: str) -> None:
        if self.fenced:
            return
        with self._lock:
            self._ops.append(("event", (kind, message)))

    def truncate_after(self, step: int) -> None:
        if self.fenced:
            return
        with self._lock:
            self._ops.append(("truncate", step))
        self._wake.set()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait (up to `timeout` seconds) until what was written so far is stored; whether it
        is. Called before a checkpoint, so that no checkpoint is ahead of the stored metrics."""
        deadline = time.monotonic() + timeout
        while self._ops and not self.fenced and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.005)
        return not self._ops

    def close(self, timeout: float = 60.0) -> None:
        """Flush what is buffered (retrying up to `timeout` seconds) and stop the thread."""
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        if self._ops:
            warn(f"warning: {sum(len(o[1]) for o in self._ops if o[0] == 'metrics')} metric "
                 f"rows of run {self.run_id} could not be written to {self.store}")

    # ---- background flushing ----

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._backoff())
            self._wake.clear()
            self._flush()
            if self._closing and (not self._ops or self._failures > 30):
                return

    def _backoff(self) -> float:
        return min(self.flush_interval * (2 ** min(self._failures, 5)), 30.0)

    def _flush(self) -> None:
        while True:
            with self._lock:
                if not self._ops:
                    return
                kind, payload = self._ops[0]
                if kind == "metrics":  # merge consecutive metric batches into one insert
                    rows, n = [], 0
                    while n < len(self._ops) and self._ops[n][0] == "metrics" \
                            and len(rows) < self.batch_size:
                        rows += self._ops[n][1]
                        n += 1
                    payload = rows
                else:
                    n = 1
            try:
                self._apply(kind, payload)
            except _Fenced:
                with self._lock:
                    self._ops.clear()  # not ours to write any more
                return
            except SQLAlchemyError as exc:
                self._failures += 1
                if self._failures in (1, 10):
                    warn(f"warning: database busy or unreachable, metrics buffered "
                         f"({type(exc).__name__}); retrying")
                return
            self._failures = 0
            with self._lock:
                del self._ops[:n]

    def _apply(self, kind: str, payload: Any) -> None:
        with self.store.write() as session:
            if self.lease is not None:
                if self.lease.lost:
                    raise _Fenced
                reason = self.lease.lease.lost_reason(session, lock=True)
                if reason:
                    self.lease.mark_lost(reason)
                    raise _Fenced
            if kind == "metrics":
                upsert_metrics(self.store, _dedupe(payload), session)
            elif kind == "event":
                session.add(Event(run_id=self.run_id, kind=payload[0], message=payload[1]))
                # A `started` event names the machine: the run's machine from now on.
                if name := machine_of(payload[1]):
                    session.execute(update(Run).where(Run.id == self.run_id)
                                    .values(machine=name[:500])
                                    .execution_options(synchronize_session=False))
            else:
                session.execute(delete(Metric).where(Metric.run_id == self.run_id,
                                                     Metric.step > payload))


def _dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the last row per (key, step): one INSERT may not touch a row twice."""
    return list({(r["key"], r["step"]): r for r in rows}.values())
