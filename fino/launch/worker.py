"""The worker: claims queued runs, runs each as a child process (`fino run --run-id ID`),
heartbeats them, and decides their final status from the exit code.

With `pack` > 1 it claims up to that many packable runs at once (equal configs but for the seed
and the packable agent settings) and runs them as one process (`fino run --run-id A --run-id B
...`); each member keeps its own attempt token, and the process's result file says per member
what its exit code would have been alone. A member cancelled or reclaimed stops alone inside the
process; a pack process that dies leaves its unsettled members lost.

Each claim carries an attempt token, passed to the child with its lease (`fino.store.lease`):
heartbeats and status changes name the token, so a worker that stalled and lost a run to another
worker can no longer touch it, and its children stop themselves once the lease runs out. A
worker never reaps the runs it holds, and after a database error it waits before reaping at all:
while the database was busy, other workers' heartbeats are unknown, not dead."""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from sqlalchemy.exc import SQLAlchemyError

from fino.exit_codes import ExitCode, MemberCode
from fino.launch.executor import LOST, Executor
from fino.launch.packs import FIT_ENV, RESULT_ENV, read_outcome
from fino.launch.threads import child_thread_env
from fino.store import queries, queue
from fino.store.db import Store
from fino.store.lease import Lease
from fino.store.models import Run, RunStatus
from fino.train.packable import packable

AUTO_PACK_CUDA = 32  # `--pack auto` on a CUDA machine: claim up to this many, fitted to memory

LOG_NAME = "worker.log"
OnInterrupt = Literal["requeue", "cancel"]


class StopReason(StrEnum):
    """Why the worker asked a child to stop (or, for a pack member, noted that it will)."""

    CANCELLED = "cancelled"  # a cancel request: the run ends cancelled
    REQUEUE = "requeue"  # the worker stops: the run goes back to the queue
    DISOWNED = "disowned"  # the run is no longer ours: its current holder settles it


class Settled(StrEnum):
    """What became of a run this worker settled."""

    DONE = "done"
    FAILED = "failed"
    LOST = "lost"
    CANCELLED = "cancelled"
    REQUEUED = "requeued"  # back in the queue: worker stopped, lease ran out, or a retry
    DISOWNED = "disowned"  # no longer ours: left to its current holder
    RELEASED = "released"  # its pack gave it back untouched, to train apart


@dataclass(frozen=True)
class Settlement:
    """A settled run: its outcome, and the line the worker logged for it."""

    outcome: Settled
    detail: str = ""

    def __str__(self) -> str:
        return self.detail or self.outcome.value


@dataclass
class Active:
    run_id: int
    token: str
    name: str
    handle: Any
    log_path: Path
    attempts: int
    max_attempts: int
    stop_reason: StopReason | None = None  # why we asked it to stop
    kill_at: float | None = None
    pack_id: str | None = None  # members of one pack share the handle and the result file
    result_path: Path | None = None


def child_command(run_ids: int | Sequence[int], sinks: Sequence[str] = ()) -> list[str]:
    """`fino run --run-id ID ... --quiet`, with the worker's extra loggers (`--sink NAME`)."""
    ids = [run_ids] if isinstance(run_ids, int) else list(run_ids)
    return [sys.executable, "-m", "fino.cli.main", "run",
            *[arg for i in ids for arg in ("--run-id", str(i))],
            *[arg for name in sinks for arg in ("--sink", name)], "--quiet"]


def resolve_pack(pack: int | str) -> tuple[int, bool]:
    """(runs to claim at once, fit them to memory) from `--pack N|auto`: auto is 1 on a CPU,
    and on CUDA up to AUTO_PACK_CUDA fitted to the device's free memory."""
    if pack == "auto":
        import torch

        return (AUTO_PACK_CUDA, True) if torch.cuda.is_available() else (1, False)
    try:
        size = int(pack)
    except (TypeError, ValueError):
        size = 0
    if size < 1:
        raise ValueError(f"--pack {pack}: expected a positive number of runs per process, or "
                         "auto")
    return size, False


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(text[-lines:])


def failure_reason(tail: str) -> str | None:
    """The child's one-line reason in its log tail: its last `error: ...` line (what `fino run`
    prints for every error it knows), else the last line of a traceback."""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    if lines and re.match(r"^[\w.]+(Error|Exception|Interrupt|Exit)\b", lines[-1]):
        return lines[-1]
    return None


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
        pack: int | str = 1,
        only: Sequence[int] | None = None,
        on_tick: Callable[[], None] | None = None,
        log: Callable[[str], None] = print,
        sinks: Sequence[str] = (),
    ) -> None:
        """`jobs`: processes at a time; `pack`: runs per process (N or "auto"); `only`: serve
        just these runs and return once they are all settled; `on_tick`: called every loop (a
        progress display); `sinks`: loggers for every run besides those its config names."""
        if jobs < 1:
            raise ValueError(f"jobs={jobs}: must be >= 1")
        self.pack_size, self.fit_pack = resolve_pack(pack)
        if expiry < 6 * heartbeat_interval:
            raise ValueError(f"--expiry {expiry:g} must be at least six heartbeat intervals "
                             f"({6 * heartbeat_interval:g} s): a run's lease is the expiry less "
                             "four intervals")
        self.store, self.executor = store, executor
        self.jobs, self.until_empty, self.max_attempts = jobs, until_empty, max_attempts
        self.heartbeat_interval, self.expiry = heartbeat_interval, expiry
        self.poll_interval, self.grace = poll_interval, grace
        self.on_interrupt: OnInterrupt = on_interrupt
        self.log = log
        self.only = list(only) if only is not None else None
        self.on_tick = on_tick
        self.sinks = tuple(sinks)
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.active: dict[int, Active] = {}
        self.finished: dict[int, Settlement] = {}
        self._stopping = False
        self.refused: str | None = None  # a pack too large for memory: the worker stops
        self._handles: dict[int, Any] = {}  # id -> handle of every child process running
        self._db_error_at = -float("inf")  # monotonic time of the last failed database call

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

    def run(self) -> dict[int, Settlement]:
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
                # Heartbeat first: after a pause (a long lock, a slow disk) our own runs are
                # refreshed before anything is judged by its age.
                if now >= next_beat and self.active:
                    self._beat()
                    next_beat = now + self.heartbeat_interval
                self._note_wait(now)
                if now >= next_reap and self._heartbeats_known(time.monotonic()):
                    self._reap()
                    next_reap = now + max(self.heartbeat_interval, 5.0)
                if not self._stopping:
                    self._fill()
            except SQLAlchemyError as exc:  # busy or unreachable: the children keep running
                self._db_error_at = time.monotonic()
                self.log(f"database error ({type(exc).__name__}); retrying")
            self._note_wait(now)
            self._reap_children()
            if self._stopping and not stop_sent:
                reason = (StopReason.CANCELLED if self.on_interrupt == "cancel"
                          else StopReason.REQUEUE)
                for a in self.active.values():
                    self._stop_child(a, reason)
                stop_sent = True
            if self.on_tick:
                self.on_tick()
            if not self.active and (self._stopping or (self.until_empty and self._empty())):
                return
            time.sleep(self.poll_interval)

    # ---- steps ----

    def lease(self, run_id: int, token: str) -> Lease:
        """What a child is told: it trusts its last heartbeat for the expiry less four
        intervals and checks every half interval, so even with a lock's grace (two intervals)
        it has stopped writing, with time to exit, before any reaper can count the run lost."""
        return Lease(run_id, token, self.expiry - 4 * self.heartbeat_interval,
                     self.heartbeat_interval / 2)

    def _note_wait(self, since: float) -> None:
        """A loop that waited longer than a heartbeat interval waited for the database, and so
        did other workers' heartbeats: count it as a database error."""
        if time.monotonic() - since > self.heartbeat_interval:
            self._db_error_at = time.monotonic()

    def _heartbeats_known(self, now: float) -> bool:
        """Whether other workers have had time to heartbeat since our last database error."""
        return now - self._db_error_at > 2 * self.heartbeat_interval

    def _reap(self) -> None:
        held = [a.token for a in self.active.values()]
        try:
            reaped = queue.reap(self.store, expiry_seconds=self.expiry, keep=held,
                                patience=self.heartbeat_interval)
        except queue.HeartbeatsUnknown as exc:
            self._db_error_at = time.monotonic()  # judge again once heartbeats caught up
            self.log(str(exc))
            return
        for run_id in reaped:
            self.log(f"run {run_id}: heartbeat expired, marked lost")

    def _processes(self) -> int:
        """Processes running: a pack's counts until it exits, even once its members settled."""
        return len(self._handles)

    def _fill(self) -> None:
        while self._processes() < self.jobs:
            claims = queue.claim_pack(self.store, host=self.host, pid=self.pid,
                                      size=self.pack_size, fits=packable, among=self.only,
                                      max_attempts=self.max_attempts, exclude=list(self.active))
            if not claims:
                return
            runs = [queue.get_run(self.store, c.run_id) for c in claims]
            self._start(runs, [c.token for c in claims], claims[0].pack_id)

    def _start(self, runs: list[Run], tokens: list[str], pack_id: str | None = None) -> None:
        first = runs[0]
        folder = Path(first.run_dir or f"runs/{first.id:06d}")
        leases = [self.lease(run.id, token) for run, token in zip(runs, tokens, strict=True)]
        env = {"FINO_DB_URL": self.store.url, **child_thread_env(self.jobs)}
        result_path = None
        if len(runs) == 1:
            log_path = folder / LOG_NAME
            env.update(leases[0].env())
        else:  # one log and one result file for the pack, beside its members' folders
            log_path = folder.parent / "packs" / f"{pack_id}.log"
            result_path = log_path.with_suffix(".json")
            env.update({**Lease.pack_env(leases), RESULT_ENV: str(result_path)})
            if self.fit_pack:
                env[FIT_ENV] = "1"
        try:
            handle = self.executor.submit(
                first.id, child_command([r.id for r in runs], self.sinks), env, log_path)
        except Exception as exc:
            for run, token in zip(runs, tokens, strict=True):
                queue.transition(self.store, run.id, (RunStatus.RUNNING,), RunStatus.FAILED,
                                 token=token,
                                 message="could not start",
                                 error=f"{type(exc).__name__}: {exc}")
            self.log(f"run(s) {' '.join(str(r.id) for r in runs)}: could not start: {exc}")
            return
        self._handles[id(handle)] = handle
        for run, token in zip(runs, tokens, strict=True):
            self.active[run.id] = Active(run.id, token, run.name, handle, log_path, run.attempts,
                                         run.max_attempts, pack_id=pack_id,
                                         result_path=result_path)
        if len(runs) == 1:
            self.log(f"run {first.id} ({first.name}) started, attempt {first.attempts}")
        else:
            self.log(f"pack {pack_id} started: runs {' '.join(str(r.id) for r in runs)} "
                     f"({', '.join(r.name for r in runs)}); log {log_path}")

    def _beat(self) -> None:
        beat = queue.heartbeat(self.store, {i: a.token for i, a in self.active.items()})
        for run_id, a in list(self.active.items()):
            if a.stop_reason:
                continue
            packed = a.result_path is not None
            if run_id not in beat.still_mine:
                if packed:  # the pack stops the member itself (its lease) and says so
                    a.stop_reason = StopReason.DISOWNED
                    self.log(f"run {run_id}: no longer ours (released by its pack, reaped or "
                             "removed); its pack leaves it alone")
                    continue
                self._stop_child(a, StopReason.DISOWNED)
                self.log(f"run {run_id}: no longer ours (reaped or removed); stopping it")
            elif run_id in beat.cancel_requested:
                if packed:  # its lease sees the request: the member checkpoints and stops alone
                    a.stop_reason = StopReason.CANCELLED
                else:
                    self._stop_child(a, StopReason.CANCELLED)
                self.log(f"run {run_id}: cancel requested; stopping it")

    def _stop_child(self, a: Active, reason: StopReason) -> None:
        a.stop_reason = a.stop_reason or reason
        self.executor.cancel(a.handle)
        a.kill_at = time.monotonic() + self.grace

    def _reap_children(self) -> None:
        """Settle the runs of ended processes, and the pack members whose pack says what became
        of them while it goes on (diverged, cancelled, disowned)."""
        for key, handle in list(self._handles.items()):
            members = [a for a in self.active.values() if a.handle is handle]
            code = self.executor.poll(handle)
            if code is None:
                if any(a.kill_at is not None and time.monotonic() > a.kill_at for a in members):
                    self.executor.cancel(handle, force=True)
                members = [a for a in members
                           if read_outcome(a.result_path, a.run_id) is not None]
            for a in members:
                try:
                    self.finished[a.run_id] = self._settle(a, LOST if code is None else code)
                except SQLAlchemyError as exc:
                    self.log(f"run {a.run_id}: could not record its end "
                             f"({type(exc).__name__}); retrying")
                    continue
                del self.active[a.run_id]
            if code is not None and not any(a.handle is handle for a in self.active.values()):
                del self._handles[key]

    def _settle(self, a: Active, code: int) -> Settlement:
        """The final status, decided here from the exit code and why we stopped the child;
        every change names the attempt's token, so a run reclaimed meanwhile is left alone. A
        pack member's code is what the pack's result file says, and a member it says nothing
        of, in a pack process that died, is lost."""
        run_id = a.run_id
        found = read_outcome(a.result_path, run_id)
        reason: str | None = None  # a pack member's own one-line error
        if found is not None and found["code"] in (MemberCode.RELEASED, MemberCode.REFUSED):
            if found["code"] == MemberCode.REFUSED and self.refused is None:
                self.refused = str(found.get("error"))
                self.log(f"pack refused: {self.refused}; the worker stops")
                self.request_stop()
            return Settlement(Settled.RELEASED)
        if a.stop_reason == StopReason.DISOWNED:
            return Settlement(Settled.DISOWNED)
        if a.result_path is not None:
            if found is None:  # killed by a signal: lost; a pack-wide error: its exit code
                code = LOST if code < 0 else code
            else:
                code, reason = found["code"], found.get("error")
                if code == ExitCode.INTERRUPTED and a.stop_reason is None and \
                        queue.get_run(self.store, run_id).cancel_requested:
                    # its lease saw the request before our heartbeat
                    a.stop_reason = StopReason.CANCELLED
                if code != ExitCode.INTERRUPTED:  # ended on its own: a stop request changes nothing
                    a.stop_reason = None

        def move(expected: tuple[RunStatus, ...], new: RunStatus, **values: Any) -> bool:
            return queue.transition(self.store, run_id, expected, new, token=a.token, **values)

        if a.stop_reason == StopReason.CANCELLED:
            ok = move((RunStatus.RUNNING,), RunStatus.CANCELLED, exit_code=code,
                      message=f"stopped on request (exit code {code})")
            status = Settlement(Settled.CANCELLED)
        elif a.stop_reason == StopReason.REQUEUE or code == ExitCode.DISOWNED:
            why = ("worker stopped" if a.stop_reason == StopReason.REQUEUE
                   else "the run's lease ran out before its heartbeat was renewed")
            ok = move((RunStatus.RUNNING,), RunStatus.QUEUED,
                      message=f"{why} (exit code {code}); requeued (resumes from its checkpoint)")
            status = Settlement(Settled.REQUEUED, "queued")
        elif code == LOST:
            lost = ("its pack's process died before the member finished" if a.pack_id
                    else "the executor lost the run (its task or node died)")
            ok = move((RunStatus.RUNNING,), RunStatus.LOST, message=lost, error=lost)
            status = Settlement(Settled.LOST)
            if ok and a.attempts < a.max_attempts:
                move((RunStatus.LOST,), RunStatus.QUEUED,
                     message=f"retry {a.attempts + 1}/{a.max_attempts} after lost")
                status = Settlement(Settled.REQUEUED, "lost, requeued")
        elif code == ExitCode.DONE:
            ok = move((RunStatus.RUNNING,), RunStatus.DONE, exit_code=int(ExitCode.DONE),
                      message="finished")
            status = Settlement(Settled.DONE)
        else:
            tail = log_tail(a.log_path)
            reason = reason or failure_reason(tail) or self._recorded_error(run_id)
            error = reason or tail or f"exit code {code}"
            ok = move((RunStatus.RUNNING,), RunStatus.FAILED, exit_code=code, error=error,
                      message=f"exit code {code}")
            failed = f"failed: {reason or f'exit code {code}'}"
            status = Settlement(Settled.FAILED, failed)
            if ok and a.attempts < a.max_attempts:
                move((RunStatus.FAILED,), RunStatus.QUEUED,
                     message=f"retry {a.attempts + 1}/{a.max_attempts}")
                status = Settlement(Settled.REQUEUED, f"{failed}; requeued")
        if not ok:
            self.log(f"run {run_id} ({a.name}): no longer ours (reclaimed or removed); its "
                     "status is left to its current holder")
            return Settlement(Settled.DISOWNED)
        self.log(f"run {run_id} ({a.name}): {status}")
        return status

    def failures(self) -> list[int]:
        """The runs this worker settled as failed or lost (and did not requeue)."""
        return sorted(i for i, s in self.finished.items()
                      if s.outcome in (Settled.FAILED, Settled.LOST))

    def _recorded_error(self, run_id: int) -> str | None:
        """The reason the run's process stored itself (its log may be unwritable: full disk)."""
        return queue.get_run(self.store, run_id).error

    def _empty(self) -> bool:
        if self.only is not None:
            with self.store.read() as session:
                return not queries.any_queued(session, self.only)
        return queue.count_by_status(self.store).get(RunStatus.QUEUED, 0) == 0
