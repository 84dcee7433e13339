"""The worker: claims queued runs, runs each as a child process (`fino run --run-id ID`),
heartbeats them, and decides their final status from the exit code."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from fino.launch.executor import LOST, Executor
from fino.launch.threads import child_thread_env
from fino.store import queue
from fino.store.db import Store
from fino.store.models import Run

LOG_NAME = "worker.log"
OnInterrupt = Literal["requeue", "cancel"]


@dataclass
class Active:
    run_id: int
    name: str
    handle: Any
    log_path: Path
    attempts: int
    max_attempts: int
    stop_reason: str | None = None  # why we asked it to stop: cancelled | requeue | disowned
    kill_at: float | None = None


def child_command(run_id: int) -> list[str]:
    return [sys.executable, "-m", "fino.cli.main", "run", "--run-id", str(run_id), "--quiet"]


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(text[-lines:])


class Worker:
    """One supervisor process running up to `jobs` runs at a time."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        *,
        jobs: int = 1,
        until_empty: bool = False,
        max_attempts: int = 1,
        heartbeat_interval: float = 5.0,
        expiry: float = 60.0,
        poll_interval: float = 0.5,
        grace: float = 30.0,
        on_interrupt: OnInterrupt = "requeue",
        only: Sequence[int] | None = None,
        on_tick: Callable[[], None] | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        """`only`: serve just these runs and return once they are all settled; `on_tick`:
        called every loop (a progress display)."""
        if jobs < 1:
            raise ValueError(f"jobs={jobs}: must be >= 1")
        if expiry <= 2 * heartbeat_interval:
            raise ValueError("expiry must exceed two heartbeat intervals")
        self.store, self.executor = store, executor
        self.jobs, self.until_empty, self.max_attempts = jobs, until_empty, max_attempts
        self.heartbeat_interval, self.expiry = heartbeat_interval, expiry
        self.poll_interval, self.grace = poll_interval, grace
        self.on_interrupt: OnInterrupt = on_interrupt
        self.log = log
        self.only = list(only) if only is not None else None
        self.on_tick = on_tick
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.active: dict[int, Active] = {}
        self.finished: dict[int, str] = {}
        self._stopping = False

    # ---- control ----

    def request_stop(self, on_interrupt: OnInterrupt | None = None) -> None:
        """Stop claiming, stop the children (SIGTERM: they checkpoint), then return."""
        if on_interrupt:
            self.on_interrupt = on_interrupt
        self._stopping = True

    def _signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stopping:  # a second Ctrl-C: no more patience
            for a in self.active.values():
                self.executor.cancel(a.handle, force=True)
        self.request_stop()

    def run(self) -> dict[int, str]:
        """Serve the queue until stopped (or, with `until_empty`, until nothing is left)."""
        previous = {s: signal.signal(s, self._signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._loop()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        return self.finished

    def _loop(self) -> None:
        next_reap = next_beat = 0.0
        stop_sent = False
        while True:
            now = time.monotonic()
            try:
                if now >= next_reap:
                    for run_id in queue.reap(self.store, expiry_seconds=self.expiry):
                        self.log(f"run {run_id}: heartbeat expired, marked lost")
                    next_reap = now + max(self.heartbeat_interval, 5.0)
                if not self._stopping:
                    self._fill()
                if now >= next_beat and self.active:
                    self._beat()
                    next_beat = now + self.heartbeat_interval
            except SQLAlchemyError as exc:  # busy or unreachable: the children keep running
                self.log(f"database error ({type(exc).__name__}); retrying")
            self._reap_children()
            if self._stopping and not stop_sent:
                reason = "cancelled" if self.on_interrupt == "cancel" else "requeue"
                for a in self.active.values():
                    self._stop_child(a, reason)
                stop_sent = True
            if self.on_tick:
                self.on_tick()
            if not self.active and (self._stopping or (self.until_empty and self._empty())):
                return
            time.sleep(self.poll_interval)

    # ---- steps ----

    def _fill(self) -> None:
        while len(self.active) < self.jobs:
            run_id = queue.claim_next(self.store, host=self.host, pid=self.pid,
                                      among=self.only)
            if run_id is None:
                return
            run = queue.get_run(self.store, run_id)
            self._start(run)

    def _start(self, run: Run) -> None:
        log_path = Path(run.run_dir or f"runs/{run.id:06d}") / LOG_NAME
        try:
            env = {"FINO_DB_URL": self.store.url, **child_thread_env(self.jobs)}
            handle = self.executor.submit(run.id, child_command(run.id), env, log_path)
        except Exception as exc:
            queue.transition(self.store, run.id, ("running",), "failed",
                             message="could not start", error=f"{type(exc).__name__}: {exc}")
            self.log(f"run {run.id}: could not start: {exc}")
            return
        self.active[run.id] = Active(run.id, run.name, handle, log_path, run.attempts,
                                     max(run.max_attempts, self.max_attempts))
        self.log(f"run {run.id} ({run.name}) started, attempt {run.attempts}")

    def _beat(self) -> None:
        beat = queue.heartbeat(self.store, list(self.active), host=self.host, pid=self.pid)
        for run_id, a in self.active.items():
            if a.stop_reason:
                continue
            if run_id not in beat.still_mine:
                self._stop_child(a, "disowned")
                self.log(f"run {run_id}: no longer ours (reaped or removed); stopping it")
            elif run_id in beat.cancel_requested:
                self._stop_child(a, "cancelled")
                self.log(f"run {run_id}: cancel requested; stopping it")

    def _stop_child(self, a: Active, reason: str) -> None:
        a.stop_reason = a.stop_reason or reason
        self.executor.cancel(a.handle)
        a.kill_at = time.monotonic() + self.grace

    def _reap_children(self) -> None:
        for run_id, a in list(self.active.items()):
            code = self.executor.poll(a.handle)
            if code is None:
                if a.kill_at is not None and time.monotonic() > a.kill_at:
                    self.executor.cancel(a.handle, force=True)
                continue
            try:
                self.finished[run_id] = self._settle(a, code)
            except SQLAlchemyError as exc:
                self.log(f"run {run_id}: could not record its end ({type(exc).__name__}); "
                         "retrying")
                continue
            del self.active[run_id]

    def _settle(self, a: Active, code: int) -> str:
        """The final status, decided here from the exit code and why we stopped the child."""
        store, run_id = self.store, a.run_id
        if a.stop_reason == "disowned":
            return "disowned"
        if a.stop_reason == "cancelled":
            queue.transition(store, run_id, ("running",), "cancelled", exit_code=code,
                             message=f"stopped on request (exit code {code})")
            status = "cancelled"
        elif a.stop_reason == "requeue":
            queue.transition(store, run_id, ("running",), "queued", exit_code=code,
                             started_at=None, message="worker stopped; requeued (resumes from "
                             "its checkpoint)")
            status = "queued"
        elif code == LOST:
            queue.transition(store, run_id, ("running",), "lost", message="the executor lost "
                             "the run (its task or node died)", error="task or node died")
            status = "lost"
            if a.attempts < a.max_attempts:
                queue.transition(store, run_id, ("lost",), "queued", finished_at=None,
                                 message=f"retry {a.attempts + 1}/{a.max_attempts} after lost")
                status = "lost, requeued"
        elif code == 0:
            queue.transition(store, run_id, ("running",), "done", exit_code=0,
                             message="finished")
            status = "done"
        else:
            error = log_tail(a.log_path) or f"exit code {code}"
            queue.transition(store, run_id, ("running",), "failed", exit_code=code,
                             error=error, message=f"exit code {code}")
            status = "failed"
            if a.attempts < a.max_attempts:
                queue.transition(store, run_id, ("failed",), "queued", finished_at=None,
                                 message=f"retry {a.attempts + 1}/{a.max_attempts}")
                status = "failed, requeued"
        self.log(f"run {run_id} ({a.name}): {status}")
        return status

    def _empty(self) -> bool:
        if self.only is not None:
            with self.store.read() as session:
                return not session.execute(select(Run.id).where(
                    Run.id.in_(self.only), Run.status == "queued")).first()
        return queue.count_by_status(self.store).get("queued", 0) == 0
