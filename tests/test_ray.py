"""The Ray executor with a local Ray instance and the PostgreSQL store (skips with a reason
where Ray or the server is absent)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from fino.store import queue
from fino.store.db import Store
from fino.store.models import Event, Run
from fino.train.checkpoint import load_checkpoint
from tests.queue_fixtures import queue_pendulum, start_worker, tiny_sets
from tests.test_queue import metric_steps, statuses, wait_for

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ray>=2.9')")
RAY = ("--backend", "ray", "--address", "local", "--cpus-per-run", "1", "--heartbeat", "0.5")


def _processes_of(run_id: int, url: str) -> list[int]:
    """PIDs of live `fino run --run-id ID` processes of the database `url` on this machine."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--run-id" in cmd and cmd[cmd.index(b"--run-id") + 1] == str(run_id).encode():
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"FINO_DB_URL={url}".encode() in environ:
                found.append(int(pid))
    return found


@pytest.mark.slow  # 40 s; `make test-slow` (the default suite keeps one Ray test, 30 s)
def test_ten_runs_through_ray_on_postgresql_all_finish_with_metrics(pg_url, tmp_path, dataset):
    store = Store(pg_url)
    ids = queue_pendulum(store, dataset, tmp_path / "runs", range(10))
    worker = start_worker(pg_url, *RAY, "--jobs", "2", "--until-empty", cwd=tmp_path)
    output = worker.communicate(timeout=600)[0]
    assert worker.returncode == 0, output
    assert set(statuses(store).values()) == {"done"}
    for run_id in ids:
        assert metric_steps(store, run_id, "critic/loss") == [10, 20, 30, 40, 50, 60]
    store.dispose()


@pytest.mark.slow  # 80 s; `make test-slow`
def test_cancel_ends_the_ray_task_and_a_killed_task_is_lost_then_resumes(
        pg_url, tmp_path, dataset):
    store = Store(pg_url)
    sets = tiny_sets(offline=200_000, online=100, save=100, log=10)  # longer than the test
    [cancelled, killed] = queue_pendulum(store, dataset, tmp_path / "runs", range(2),
                                         sets=sets)
    worker = start_worker(pg_url, *RAY, "--jobs", "2", cwd=tmp_path)
    try:
        wait_for(lambda: all(len(metric_steps(store, i, "critic/loss")) >= 3
                             for i in (cancelled, killed)), 180, "both runs to train")
        queue.request_cancel(store, [cancelled])
        wait_for(lambda: statuses(store)[cancelled] == "cancelled", 60, "the cancellation")
        wait_for(lambda: not _processes_of(cancelled, pg_url), 30, "the cancelled run's process")

        [child] = _processes_of(killed, pg_url)
        ray_task = int(Path(f"/proc/{child}/stat").read_text().split(")")[1].split()[1])
        os.kill(ray_task, signal.SIGKILL)  # the Ray worker executing the task dies
        wait_for(lambda: statuses(store)[killed] == "lost", 120, "the run to be lost")
        wait_for(lambda: not _processes_of(killed, pg_url), 30, "the orphaned run to stop")
        assert (Path(queue.get_run(store, killed).run_dir) / "checkpoint.pt").exists()
        checkpoint = load_checkpoint(Path(queue.get_run(store, killed).run_dir)
                                     / "checkpoint.pt")["step"]
        assert queue.retry(store, [killed]) == {killed: queue.Change(queue.Outcome.REQUEUED)}
        wait_for(lambda: max(metric_steps(store, killed, "critic/loss")) > checkpoint + 100,
                 180, "the retry to train past its checkpoint")
        queue.request_cancel(store, [killed])
        wait_for(lambda: statuses(store)[killed] == "cancelled", 60, "the second cancellation")
    finally:
        worker.send_signal(signal.SIGINT)
        worker.communicate(timeout=120)
    events = (Path(queue.get_run(store, killed).run_dir) / "events.log").read_text()
    assert f"resumed: from step {checkpoint}" in events
    steps = metric_steps(store, killed, "critic/loss")
    assert steps == list(range(10, steps[-1] + 1, 10))  # no gap, no duplicate
    store.dispose()


def test_a_local_and_a_ray_worker_share_one_queue_each_run_claimed_once(
        pg_url, tmp_path, dataset):
    store = Store(pg_url)
    ids = queue_pendulum(store, dataset, tmp_path / "runs", range(8))
    workers = [start_worker(pg_url, *RAY, "--jobs", "2", "--until-empty", cwd=tmp_path),
               start_worker(pg_url, "--jobs", "1", "--until-empty", cwd=tmp_path)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    with store.read() as session:
        runs = session.execute(select(Run)).scalars().all()
        claims = session.execute(select(Event.run_id).where(
            Event.new_status == "running")).scalars().all()
    assert {r.status for r in runs} == {"done"} and sorted(claims) == ids
    assert len({r.worker_pid for r in runs}) == 2  # both workers took some
    store.dispose()


def test_unreachable_ray_cluster_is_a_clear_error(tmp_path):
    from typer.testing import CliRunner

    from fino.cli.main import app

    result = CliRunner().invoke(app, ["worker", "--backend", "ray", "--address",
                                      "127.0.0.1:1", "--db", str(tmp_path / "e.db")])
    assert result.exit_code == 1 and "Ray" in result.output, result.output


_STAND_IN_RUN = """
import signal, sys, time
log = open(sys.argv[1], "a", buffering=1)
def on_term(signum, frame):
    log.write("SIGTERM\\n")
    sys.exit(143)
signal.signal(signal.SIGTERM, on_term)
log.write("started\\n")
while True:
    time.sleep(0.1)
"""
_DRIVER = """
import sys, time
from pathlib import Path
from fino.launch.ray_executor import RayExecutor
run, log = sys.argv[1:]
executor = RayExecutor(address="local", init_kwargs={"num_cpus": 1, "include_dashboard": False})
executor.submit(1, [sys.executable, run, log], {}, Path(log).with_suffix(".out"))
time.sleep(600)
"""


@pytest.mark.slow
def test_a_killed_driver_of_a_local_ray_instance_gives_its_run_sigterm(tmp_path):
    """Ray SIGKILLs a dying worker's children unless told not to; the run must checkpoint."""
    run, log = tmp_path / "run.py", tmp_path / "run.log"
    run.write_text(_STAND_IN_RUN)
    driver = subprocess.Popen([sys.executable, "-c", _DRIVER, str(run), str(log)],
                              start_new_session=True, cwd=Path(__file__).parents[1])
    try:
        wait_for(lambda: log.exists() and "started" in log.read_text(), 180, "the run to start")
        driver.kill()
        wait_for(lambda: "SIGTERM" in log.read_text(), 30, "the run's SIGTERM")
    finally:
        driver.kill()
        driver.wait()


@pytest.mark.slow
def test_a_pack_runs_as_one_ray_task(pg_url, tmp_path, dataset):
    store = Store(pg_url)
    ids = queue_pendulum(store, dataset, tmp_path / "runs", range(3))
    worker = start_worker(pg_url, *RAY, "--pack", "3", "--until-empty", cwd=tmp_path)
    output = worker.communicate(timeout=600)[0]
    assert worker.returncode == 0, output
    assert set(statuses(store).values()) == {"done"}
    runs = [queue.get_run(store, i) for i in ids]
    assert len({r.pack_id for r in runs}) == 1 and runs[0].pack_id is not None
    assert "pack" in output and output.count("started") == 1  # one task for the three runs
    for run_id in ids:
        assert metric_steps(store, run_id, "critic/loss") == [10, 20, 30, 40, 50, 60]
    store.dispose()
