"""Fenced runs: each claim's attempt token, the child's lease, and a stalled worker (SIGSTOP)
whose run is reclaimed without two writers at once."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from fino.launch.worker import Worker
from fino.store import queue
from fino.store.db import Store
from fino.store.lease import Lease, LeaseWatch
from fino.store.models import Event, Metric, Run, utcnow
from fino.store.sink import DatabaseSink
from fino.train.errors import RunDisowned
from tests.queue_fixtures import (
    alive,
    children,
    queue_pendulum,
    start_worker,
    tiny_sets,
)


def age_heartbeat(store: Store, run_id: int, seconds: float) -> None:
    with store.write() as session:
        session.execute(update(Run).where(Run.id == run_id).values(
            heartbeat_at=utcnow() - timedelta(seconds=seconds)))


def status(store: Store, run_id: int) -> str:
    return queue.get_run(store, run_id).status


def reclaim(store: Store, run_id: int) -> queue.Claim:
    """What another worker does to a stalled one's run: reap it, requeue it, claim it."""
    age_heartbeat(store, run_id, 120)
    assert queue.reap(store, expiry_seconds=60) == [run_id]
    queue.retry(store, [run_id])
    claim = queue.claim_next(store, host="b", pid=2)
    assert claim is not None and claim.run_id == run_id
    return claim


def test_a_stale_token_can_neither_heartbeat_nor_settle_a_reclaimed_run(store, tmp_path,
                                                                        dataset):
    [run_id] = queue_pendulum(store, dataset, tmp_path, range(1))
    first = queue.claim_next(store, host="a", pid=1)
    assert queue.heartbeat(store, {run_id: first.token}).still_mine == {run_id}
    second = reclaim(store, run_id)
    assert second.token != first.token
    assert queue.heartbeat(store, {run_id: first.token}).still_mine == set()
    assert not queue.transition(store, run_id, ("running",), "failed", token=first.token)
    assert status(store, run_id) == "running"
    assert queue.transition(store, run_id, ("running",), "done", token=second.token)


def test_a_worker_never_reaps_the_runs_it_holds(store, tmp_path, dataset):
    a, b = queue_pendulum(store, dataset, tmp_path, range(2))
    held = queue.claim_next(store, host="a", pid=1)
    other = queue.claim_next(store, host="b", pid=2)
    age_heartbeat(store, a, 120)
    age_heartbeat(store, b, 120)
    assert queue.reap(store, expiry_seconds=60, keep=[held.token]) == [other.run_id]
    assert status(store, held.run_id) == "running"


def test_the_workers_max_attempts_reaches_the_reaper(store, tmp_path, dataset):
    [run_id] = queue_pendulum(store, dataset, tmp_path, range(1))  # the run's own: 1 attempt
    queue.claim_next(store, host="a", pid=1, max_attempts=3)
    assert queue.get_run(store, run_id).max_attempts == 3
    age_heartbeat(store, run_id, 120)
    assert queue.reap(store, expiry_seconds=60) == [run_id]  # any worker's reaper
    assert status(store, run_id) == "queued"
    queue.claim_next(store, host="a", pid=1, max_attempts=1)  # never lowers it
    assert queue.get_run(store, run_id).max_attempts == 3


def test_the_lease_is_lost_when_reclaimed_or_when_the_heartbeat_is_older_than_it(
        store, tmp_path, dataset):
    a, b = queue_pendulum(store, dataset, tmp_path, range(2))
    claim_a = queue.claim_next(store, host="a", pid=1)
    claim_b = queue.claim_next(store, host="a", pid=1)
    stale = LeaseWatch(store, Lease(a, claim_a.token, seconds=30))
    stale.confirm()  # fresh heartbeat, own token
    age_heartbeat(store, a, 31)
    with pytest.raises(RunDisowned, match=r"heartbeat is 3[01] s old"):
        stale.confirm()
    reclaim(store, b)
    with pytest.raises(RunDisowned, match="claimed again"):
        LeaseWatch(store, Lease(b, claim_b.token, seconds=30)).confirm()


def test_an_unreadable_database_leaves_the_lease_unknown_then_lost(store, tmp_path, dataset,
                                                                   monkeypatch):
    [run_id] = queue_pendulum(store, dataset, tmp_path, range(1))
    claim = queue.claim_next(store, host="a", pid=1)
    watch = LeaseWatch(store, Lease(run_id, claim.token, seconds=0.3))
    from sqlalchemy.exc import OperationalError

    def broken():
        raise OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(store, "read", broken)
    watch.confirm()  # unknown, but confirmed less than a lease ago
    time.sleep(0.4)
    with pytest.raises(RunDisowned, match="could not be confirmed"):
        watch.confirm()


def test_the_sink_of_a_stale_attempt_writes_nothing_once_its_run_is_reclaimed(
        store, tmp_path, dataset):
    [run_id] = queue_pendulum(store, dataset, tmp_path, range(1))
    claim = queue.claim_next(store, host="a", pid=1)
    lost: list[str] = []
    watch = LeaseWatch(store, Lease(run_id, claim.token, seconds=30), on_lost=lost.append)
    sink = DatabaseSink(store, run_id, flush_interval=0.05, lease=watch)
    sink.write(1, {"a": 1.0})
    time.sleep(0.3)
    reclaim(store, run_id)
    sink.write(2, {"a": 2.0})
    sink.event("checkpoint", "step 2")
    sink.close()
    with store.read() as session:
        steps = session.execute(select(Metric.step).where(Metric.run_id == run_id)).scalars()
        events = session.execute(select(Event.kind).where(Event.run_id == run_id)).scalars()
        assert list(steps) == [1]
        assert "checkpoint" not in list(events)
    assert len(lost) == 1 and "claimed again" in lost[0]


def test_a_trainer_whose_lease_is_lost_stops_without_checkpointing(tmp_path, dataset):
    from fino.backends.base import TaskConfig
    from fino.train.presets import build_run_config
    from fino.train.trainer import Trainer

    class Fence:
        lost: str | None = None

        def __init__(self) -> None:
            self.checks = 0

        def confirm(self) -> None:
            self.checks += 1
            if self.checks >= 2:  # the second checkpoint finds the run reclaimed
                self.lost = "run 1 was claimed again by another attempt"
                raise RunDisowned(self.lost)

    config = build_run_config(TaskConfig("Pendulum-v1", backend="gymnasium",
                                         dataset=str(dataset)),
                              overrides=tiny_sets(offline=40, online=0, save=10, log=10))
    fence = Fence()
    trainer = Trainer(config, tmp_path / "run", fence=fence)
    with pytest.raises(RunDisowned, match="claimed again"):
        trainer.run()
    from fino.train.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 10  # the first only
    assert not list((tmp_path / "run").glob(".checkpoint.pt.*"))  # no temporary left
    assert not (tmp_path / "run" / "summary.json").exists()


def test_expiry_must_leave_the_lease_room(store):
    with pytest.raises(ValueError, match="six heartbeat intervals"):
        Worker(store, executor=None, heartbeat_interval=5, expiry=25)  # type: ignore[arg-type]


def test_a_stalled_workers_run_has_one_writer_at_any_time(store, tmp_path, dataset):
    """SIGSTOP worker A past its expiry: A's child stops itself within the lease, before worker
    B reaps and reclaims the run; B resumes from A's last checkpoint and finishes; A, continued,
    finds the run is no longer its own and leaves it alone."""
    # Long enough that the run is still training when A's child stops itself: the child trains
    # on for up to a lease (8 s) after A stops, at ~300 tiny updates a second on this machine.
    sets = tiny_sets(offline=12000, online=50, save=100, log=10)
    [run_id] = queue_pendulum(store, dataset, tmp_path / "runs", range(1), sets=sets)
    a = start_worker(store.url, "--heartbeat", "0.5", "--expiry", "10", "--max-attempts", "2",
                     cwd=tmp_path)
    b = None
    try:
        deadline = time.monotonic() + 120
        while not (kids := children(a.pid)) or not queue.get_run(store, run_id).heartbeat_at:
            assert time.monotonic() < deadline, "worker A never started its child"
            time.sleep(0.2)
        [child] = kids
        while len(_metric_steps(store, run_id)) < 5:
            assert time.monotonic() < deadline, "the run never logged"
            time.sleep(0.2)
        os.kill(a.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        b = start_worker(store.url, "--heartbeat", "0.5", "--expiry", "10", cwd=tmp_path)
        while alive(child):
            assert time.monotonic() - stopped_at < 30, "A's child outlived its lease"
            time.sleep(0.05)
        child_gone = time.time()  # no earlier than its end (polled)
        claimed = _claim_time(store, run_id, b.pid, timeout=60)
        assert child_gone < claimed, "A's child was alive when B claimed the run"
        deadline = time.monotonic() + 300
        while status(store, run_id) != "done":
            assert time.monotonic() < deadline, "B never finished the run"
            time.sleep(0.5)
        b.send_signal(signal.SIGINT)
        output = b.communicate(timeout=60)[0]
        assert b.returncode == 0, output
        steps = _metric_steps(store, run_id)
        assert steps == list(range(10, 12051, 10))
        log = (Path(queue.get_run(store, run_id).run_dir) / "worker.log").read_text()
        assert "stopped without writing" in log and "heartbeat is" in log
    finally:
        os.kill(a.pid, signal.SIGCONT)
        a.send_signal(signal.SIGINT)
        out_a = a.communicate(timeout=60)[0]
        if b is not None and b.poll() is None:
            b.kill()
    assert "no longer ours" in out_a
    assert status(store, run_id) == "done"  # A, continued, changed nothing


def _metric_steps(store: Store, run_id: int) -> list[int]:
    with store.read() as session:
        return list(session.execute(select(Metric.step).where(
            Metric.run_id == run_id, Metric.key == "critic/loss").order_by(Metric.step))
            .scalars())


def _claim_time(store: Store, run_id: int, pid: int, timeout: float) -> float:
    """When worker `pid` claimed the run (Unix time of its claim event)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with store.read() as session:
            when = session.execute(select(Event.time).where(
                Event.run_id == run_id, Event.message.like(f"claimed by %:{pid}"))).scalar()
        if when is not None:
            return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
        time.sleep(0.2)
    raise AssertionError(f"worker {pid} never claimed run {run_id}")


def test_a_write_lock_longer_than_the_expiry_loses_no_run(store, tmp_path, dataset):
    """A lock held past the expiry delays every heartbeat: neither the worker holding the run
    nor an idle one reaps it, and its child, finding the database held, keeps training."""
    sets = tiny_sets(offline=2000, online=50, save=100, log=10)
    [run_id] = queue_pendulum(store, dataset, tmp_path / "runs", range(1), sets=sets)
    workers = [start_worker(store.url, "--heartbeat", "1", "--expiry", "8", cwd=tmp_path)
               for _ in range(2)]
    try:
        deadline = time.monotonic() + 120
        while len(_metric_steps(store, run_id)) < 5:
            assert time.monotonic() < deadline, "the run never logged"
            time.sleep(0.2)
        blocker = sqlite3.connect(tmp_path / "experiments.db", timeout=10, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        time.sleep(16)  # twice the expiry (8 s), four times the child's lease (4 s)
        blocker.execute("ROLLBACK")
        blocker.close()
        deadline = time.monotonic() + 300
        while status(store, run_id) == "running":
            assert time.monotonic() < deadline, "the run never finished"
            time.sleep(0.5)
    finally:
        outputs = []
        for worker in workers:
            worker.send_signal(signal.SIGINT)
            outputs.append(worker.communicate(timeout=60)[0])
    run = queue.get_run(store, run_id)
    assert (run.status, run.attempts) == ("done", 1), outputs
    with store.read() as session:
        kinds = session.execute(select(Event.new_status).where(Event.run_id == run_id)).all()
    assert "lost" not in [k[0] for k in kinds]
    assert _metric_steps(store, run_id) == list(range(10, 2051, 10))


def test_a_failure_reason_is_stored_only_while_the_attempt_holds_the_run(store, tmp_path,
                                                                         dataset):
    [run_id] = queue_pendulum(store, dataset, tmp_path, range(1))
    claim = queue.claim_next(store, host="a", pid=1)
    watch = LeaseWatch(store, Lease(run_id, claim.token, seconds=30))
    watch.record_error("cannot write checkpoint x: no space left on device")
    assert queue.get_run(store, run_id).error.endswith("no space left on device")
    reclaim(store, run_id)
    watch.record_error("a stale attempt's reason")
    assert queue.get_run(store, run_id).error is None  # the new attempt's, cleared at claim
