"""A run back in the queue shows no stale worker or timers, a manual retry grants one more
attempt, and a worker that settled a failed run says so in its exit code."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from typer.testing import CliRunner

from fino.cli.main import app
from fino.cli.readout import elapsed
from fino.store import queue
from fino.store.db import Store
from fino.store.models import Event, Run, utcnow
from tests.queue_fixtures import queue_pendulum

STALE = ("started_at", "finished_at", "heartbeat_at", "worker_host", "worker_pid", "exit_code",
         "error")


def last_message(store: Store, run_id: int) -> str:
    with store.read() as session:
        return session.execute(select(Event.message).where(Event.run_id == run_id)
                               .order_by(Event.id.desc()).limit(1)).scalar_one()


def fail_attempt(store: Store, run_id: int, error: str) -> None:
    claim = queue.claim_next(store, host="h", pid=7)
    assert claim is not None and claim.run_id == run_id
    assert queue.transition(store, run_id, ("running",), "failed", token=claim.token,
                            exit_code=1, error=error)


def assert_fresh_in_queue(store: Store, run_id: int) -> None:
    run = queue.get_run(store, run_id)
    assert run.status == "queued"
    assert {k: getattr(run, k) for k in STALE} == dict.fromkeys(STALE)
    assert elapsed(run) is None


def test_a_retried_run_drops_its_worker_and_timers_and_keeps_the_error_in_its_events(
        store, tmp_path, dataset):
    [run_id] = queue_pendulum(store, dataset, tmp_path, range(1))
    fail_attempt(store, run_id, "ValueError: bad value")
    assert elapsed(queue.get_run(store, run_id)) is not None
    assert queue.retry(store, [run_id]) == {run_id: queue.Change(queue.Outcome.REQUEUED)}
    assert_fresh_in_queue(store, run_id)
    assert last_message(store, run_id) == "retry requested; last attempt: ValueError: bad value"


def test_a_run_the_worker_requeues_drops_its_worker_and_timers(store, tmp_path, dataset):
    [run_id] = queue_pendulum(store, dataset, tmp_path, range(1))
    claim = queue.claim_next(store, host="h", pid=7)
    assert queue.transition(store, run_id, ("running",), "queued", token=claim.token,
                            message="worker stopped")
    assert_fresh_in_queue(store, run_id)


def test_a_run_the_reaper_requeues_drops_its_worker_and_timers(store, tmp_path, dataset):
    [run_id] = queue_pendulum(store, dataset, tmp_path, range(1), max_attempts=2)
    queue.claim_next(store, host="h", pid=7)
    with store.write() as session:
        session.execute(update(Run).where(Run.id == run_id).values(
            heartbeat_at=utcnow() - timedelta(seconds=120)))
    assert queue.reap(store, expiry_seconds=60) == [run_id]
    assert_fresh_in_queue(store, run_id)
    assert "last attempt: heartbeat older than 60 s" in last_message(store, run_id)


def test_a_queued_run_with_an_old_start_time_shows_no_elapsed_time(store, tmp_path, dataset):
    [run_id] = queue_pendulum(store, dataset, tmp_path, range(1))
    with store.write() as session:  # a database written before requeues cleared the timers
        session.execute(update(Run).where(Run.id == run_id).values(started_at=utcnow()))
    assert elapsed(queue.get_run(store, run_id)) is None


def test_a_manual_retry_grants_one_more_attempt_only_when_all_are_used(store, tmp_path,
                                                                       dataset):
    spent, spare = queue_pendulum(store, dataset, tmp_path, range(1)) + queue_pendulum(
        store, dataset, tmp_path, range(1, 2), max_attempts=3)
    for run_id in (spent, spare):
        fail_attempt(store, run_id, "boom")
    queue.retry(store, [spent, spare])
    assert [(r.attempts, r.max_attempts) for r in map(
        lambda i: queue.get_run(store, i), (spent, spare))] == [(1, 2), (1, 3)]
    shown = CliRunner().invoke(app, ["runs", "show", str(spent), "--db", store.url])
    assert shown.exit_code == 0 and "1 of 2" in shown.output, shown.output


def test_the_worker_exits_1_and_names_the_runs_that_failed(store, tmp_path, dataset):
    [good] = queue_pendulum(store, dataset, tmp_path / "runs", range(1))
    [bad] = queue_pendulum(store, tmp_path / "gone.npz", tmp_path / "runs", range(1, 2))
    result = CliRunner().invoke(app, ["worker", "--until-empty", "--jobs", "2", "--heartbeat",
                                      "0.5", "--expiry", "5", "--db", store.url])
    assert result.exit_code == 1, result.output
    assert "2 run(s) settled: " in result.output and "1 done" in result.output
    assert f"1 run(s) failed or were lost: {bad} " in result.output
    assert f"run {bad} " in result.output and "gone.npz does not exist" in result.output
    assert queue.get_run(store, good).status == "done"
