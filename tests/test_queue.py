"""The queue and the worker with real processes on a real SQLite file."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from fino.cli.main import app
from fino.cli.queue import CANCEL_REFUSED, PRIORITY_REFUSED, RETRY_REFUSED, sentences
from fino.store import queue
from fino.store.db import Store
from fino.store.models import Event, Metric, Run
from fino.store.sink import DatabaseSink
from tests.queue_fixtures import queue_pendulum, start_worker, tiny_sets


def statuses(store: Store) -> dict[int, str]:
    with store.read() as session:
        return dict(session.execute(select(Run.id, Run.status)).all())


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def metric_steps(store: Store, run_id: int, key: str) -> list[int]:
    with store.read() as session:
        return list(session.execute(select(Metric.step).where(
            Metric.run_id == run_id, Metric.key == key).order_by(Metric.step)).scalars())


def test_claims_follow_priority_then_age_and_are_exactly_once(store, tmp_path, dataset):
    ids = queue_pendulum(store, dataset, tmp_path, range(3))
    high = queue_pendulum(store, dataset, tmp_path, range(3, 4), priority=5)
    claims = [queue.claim_next(store, host="h", pid=1) for _ in range(5)]
    assert [c and c.run_id for c in claims] == [high[0], *ids, None]
    assert len({c.token for c in claims if c}) == 4  # a fresh token per claim
    with store.read() as session:
        run = session.get(Run, ids[0])
        assert (run.status, run.attempts, run.worker_host) == ("running", 1, "h")
        kinds = session.execute(select(Event.new_status).where(Event.run_id == ids[0])).all()
    assert [k[0] for k in kinds] == ["queued", "running"]


def _claim_many(url: str, out: list[int]) -> None:
    local = Store(url)
    while (claim := queue.claim_next(local, host="t", pid=threading.get_ident())) is not None:
        out.append(claim.run_id)


def test_concurrent_claims_never_double_claim(store, tmp_path, dataset):
    ids = queue_pendulum(store, dataset, tmp_path, range(60))
    results: list[list[int]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=_claim_many, args=(store.url, r)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [i for r in results for i in r]
    assert sorted(claimed) == ids  # each exactly once


def _serve_with_four_workers(url: str, tmp_path: Path, dataset: Path, n_runs: int) -> None:
    store = Store(url)
    ids = queue_pendulum(store, dataset, tmp_path / "runs", range(n_runs))
    workers = [start_worker(url, "--until-empty", "--jobs", "1", cwd=tmp_path)
               for _ in range(4)]
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    assert not any("locked" in o or "Traceback" in o for o in outputs), outputs
    assert set(statuses(store).values()) == {"done"}
    with store.read() as session:
        attempts = session.execute(select(Run.attempts)).scalars().all()
        claims = session.execute(select(func.count()).where(
            Event.new_status == "running")).scalar()
    assert attempts == [1] * len(ids) and claims == len(ids)  # each claimed exactly once
    for run_id in ids:  # 60 steps logged every 10, evaluations at 0 and 60
        assert metric_steps(store, run_id, "critic/loss") == [10, 20, 30, 40, 50, 60]
        assert metric_steps(store, run_id, "eval/score") == [0, 60]
    store.dispose()


def test_four_worker_processes_on_sqlite_run_every_run_once_with_all_metrics(
        store, tmp_path, dataset):
    _serve_with_four_workers(store.url, tmp_path, dataset, n_runs=12)


def test_four_worker_processes_on_postgresql_run_every_run_once(pg_url, tmp_path, dataset):
    _serve_with_four_workers(pg_url, tmp_path, dataset, n_runs=8)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_forty_runs_four_workers(backend, tmp_path, dataset, request):
    url = (f"sqlite:///{tmp_path / 'experiments.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_url"))
    _serve_with_four_workers(url, tmp_path, dataset, n_runs=40)


def test_a_worker_killed_by_sigkill_leaves_a_lost_run_that_resumes_without_gaps(
        store, tmp_path, dataset):
    sets = tiny_sets(offline=2000, online=100, save=100, log=10)
    [run_id] = queue_pendulum(store, dataset, tmp_path / "runs", range(1), sets=sets)
    worker = start_worker(store.url, "--heartbeat", "0.5", "--expiry", "3", cwd=tmp_path)
    wait_for(lambda: len(metric_steps(store, run_id, "critic/loss")) >= 5, 120,
             "the run to log some metrics")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert statuses(store)[run_id] == "running"  # nobody said anything yet
    time.sleep(3.5)
    assert queue.reap(store, expiry_seconds=3) == [run_id]
    assert statuses(store)[run_id] == "lost"
    run_dir = Path(queue.get_run(store, run_id).run_dir)
    wait_for(lambda: (run_dir / "checkpoint.pt").exists(), 30, "a checkpoint")
    time.sleep(2)  # the orphaned child got SIGTERM (PDEATHSIG), checkpointed and stopped
    assert queue.retry(store, [run_id]) == {run_id: queue.Change(queue.Outcome.REQUEUED)}
    second = start_worker(store.url, "--until-empty", cwd=tmp_path)
    output = second.communicate(timeout=300)[0]
    assert second.returncode == 0, output
    assert statuses(store)[run_id] == "done"
    assert metric_steps(store, run_id, "critic/loss") == list(range(10, 2101, 10))
    events = (run_dir / "events.log").read_text()
    assert "interrupted: checkpointed" in events  # the orphan stopped cleanly
    resumed_at = int(events.split("resumed: from step ")[1].split()[0])
    assert 0 < resumed_at < 2000
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in lines if "critic/loss" in r]
    assert steps == list(range(10, 2101, 10))  # the folder's log has no duplicates either


def test_cancel_stops_a_running_run_and_rm_refuses_it(store, tmp_path, dataset):
    sets = tiny_sets(offline=3000, online=100, save=50, log=10)
    [running] = queue_pendulum(store, dataset, tmp_path / "runs", range(1), sets=sets)
    worker = start_worker(store.url, "--heartbeat", "0.5", cwd=tmp_path)
    try:
        wait_for(lambda: len(metric_steps(store, running, "critic/loss")) >= 3, 120,
                 "the run to train")
        [queued] = queue_pendulum(store, dataset, tmp_path / "runs", range(1, 2))
        runner = CliRunner()
        refused = runner.invoke(app, ["queue", "rm", str(running), "--db", store.url])
        assert refused.exit_code == 1 and "running" in refused.output
        # While the worker's one slot is busy the queued run stays queued: rm takes it.
        removed = runner.invoke(app, ["queue", "rm", str(queued), "--db", store.url])
        assert removed.exit_code == 0, removed.output
        assert runner.invoke(app, ["queue", "cancel", str(running),
                                   "--db", store.url]).exit_code == 0
        started = time.monotonic()
        wait_for(lambda: statuses(store)[running] == "cancelled", 30, "the cancellation")
        assert time.monotonic() - started < 15
    finally:
        worker.send_signal(signal.SIGINT)
        worker.communicate(timeout=60)
    assert queued not in statuses(store)
    run_dir = Path(queue.get_run(store, running).run_dir)
    assert (run_dir / "checkpoint.pt").exists()
    assert metric_steps(store, running, "critic/loss")  # metrics kept


def test_ctrl_c_on_the_worker_requeues_its_runs(store, tmp_path, dataset):
    sets = tiny_sets(offline=3000, online=100, save=50, log=10)
    [run_id] = queue_pendulum(store, dataset, tmp_path / "runs", range(1), sets=sets)
    worker = start_worker(store.url, "--heartbeat", "0.5", cwd=tmp_path)
    wait_for(lambda: len(metric_steps(store, run_id, "critic/loss")) >= 3, 120, "training")
    worker.send_signal(signal.SIGINT)
    output = worker.communicate(timeout=60)[0]
    assert worker.returncode == 0, output
    assert statuses(store)[run_id] == "queued"


def test_the_database_sink_buffers_while_the_database_is_locked(store, tmp_path, dataset):
    [run_id] = queue_pendulum(store, dataset, tmp_path, range(1))
    sink = DatabaseSink(store, run_id, flush_interval=0.1)
    blocker = sqlite3.connect(tmp_path / "experiments.db", timeout=0.1, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    for step in range(100):
        sink.write(step, {"a": float(step), "b": 2.0})
    assert time.monotonic() - started < 0.5  # never waits for the database
    time.sleep(0.5)
    blocker.execute("ROLLBACK")
    sink.close()
    assert metric_steps(store, run_id, "a") == list(range(100))


def test_queue_add_validates_before_writing(store, tmp_path):
    runner = CliRunner()
    for args, message in [
        (["--task", "cube-sigle"], "unknown task"),
        (["--task", "cube-single", "--set", "agent.alpah=3"], "alpah"),
        (["--task", "cube-single", "--set", "agent.alpha=-1"], "alpha"),
        (["--task", "cube-single", "--preset", "nope"], "no profile"),
        (["--task", "cube-single", "--seeds", "3-1"], "--seeds"),
    ]:
        result = runner.invoke(app, ["queue", "add", *args, "--db", store.url])
        assert result.exit_code == 1 and message in result.output, result.output
    assert statuses(store) == {}
    ok = runner.invoke(app, ["queue", "add", "--task", "cube-double", "--seeds", "0-2",
                             "--allow-missing-data",
                             "--algo", "fql", "--tag", "t1", "--db", store.url])
    assert ok.exit_code == 0, ok.output
    with store.read() as session:
        runs = session.execute(select(Run).order_by(Run.id)).scalars().all()
    assert [r.seed for r in runs] == [0, 1, 2] and {r.algo for r in runs} == {"fql"}
    assert runs[0].config["agent"]["num_candidates"] == 1 and runs[0].tags == "t1"


def test_unreachable_database_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["queue", "list", "--db",
                                      "postgresql+psycopg://u:secret@127.0.0.1:1/x"])
    assert result.exit_code == 1 and "secret" not in result.output


def test_retry_and_cancel_report_what_they_did(store, tmp_path, dataset):
    [a, b] = queue_pendulum(store, dataset, tmp_path, range(2))
    assert sentences(queue.request_cancel(store, [a, 999]), CANCEL_REFUSED) == {
        a: "cancelled", 999: "unknown id"}
    assert sentences(queue.retry(store, [a, b]), RETRY_REFUSED) == {
        a: "queued", b: "is queued: not retried"}


def test_priority_reorders_the_claims_of_queued_runs_only(store, tmp_path, dataset):
    a, b, c = queue_pendulum(store, dataset, tmp_path, range(3))
    result = CliRunner().invoke(app, ["queue", "priority", str(c), "--to", "5",
                                      "--db", store.url])
    assert result.exit_code == 0 and f"run {c}: priority 5" in result.output, result.output
    assert queue.claim_next(store, host="h", pid=1).run_id == c  # the newest, but now first
    assert sentences(queue.set_priority(store, [c, b, 999], -1), PRIORITY_REFUSED) == {
        c: "is running: only queued runs have a priority to change", b: "priority -1",
        999: "unknown id"}
    assert queue.get_run(store, c).priority == 5
    with store.read() as session:
        said = session.execute(select(Event.message).where(
            Event.run_id == b, Event.kind == "priority")).scalars().all()
    assert said == ["priority 0 -> -1"]
    assert queue.claim_next(store, host="h", pid=1).run_id == a  # b now comes last
    refused = CliRunner().invoke(app, ["queue", "priority", str(c), "--to", "1",
                                       "--db", store.url])
    assert refused.exit_code == 1 and "is running" in refused.output


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path):
    bogus = tmp_path / "experiments.db"
    bogus.write_text("these are my notes, not a database\n")
    before = bogus.read_bytes()
    for args in (["queue", "add", "--task", "cube-single", "--allow-missing-data"],
                 ["queue", "list"], ["runs", "list"]):
        result = CliRunner().invoke(app, [*args, "--db", str(bogus)])
        assert result.exit_code == 1 and "not a database" in result.output, result.output
    assert bogus.read_bytes() == before


def test_a_newer_schema_is_refused_with_a_message(store, tmp_path):
    with store.write() as session:
        session.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
    store.dispose()
    result = CliRunner().invoke(app, ["queue", "add", "--task", "cube-single",
                                      "--allow-missing-data", "--db", store.url])
    assert result.exit_code == 1 and "newer version of fino" in result.output, result.output
