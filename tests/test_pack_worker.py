"""Packs through the worker: claimed together, trained in one process, settled per run."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import pytest
import torch
from sqlalchemy import func, select
from typer.testing import CliRunner

from fino.cli.main import app
from fino.launch.local import LocalExecutor
from fino.launch.worker import AUTO_PACK_CUDA, Worker, resolve_pack
from fino.store import queue
from fino.store.db import Store
from fino.store.models import Event, Run
from fino.train.config import RunConfig
from fino.train.pack_trainer import resume_step
from fino.train.trainer import Trainer
from tests.queue_fixtures import queue_pendulum, start_worker, tiny_sets
from tests.test_queue import metric_steps, statuses

TOL = {"rtol": 1e-5, "atol": 1e-5}


def _worker(store: Store, **kwargs) -> Worker:
    kwargs = {"until_empty": True, "heartbeat_interval": 1.0, "expiry": 10.0,
              "log": lambda message: None, **kwargs}
    return Worker(store, LocalExecutor(), **kwargs)


def _records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items()
             if k != "time" and not k.startswith(("time/", "system/")) and k != "eval/seconds"}
            for line in lines]


def test_a_pack_through_the_worker_gives_each_seed_its_single_runs_numbers(
        store, tmp_path, dataset):
    ids = queue_pendulum(store, dataset, tmp_path / "runs", range(3))
    worker = _worker(store, pack=4)
    worker.run()
    assert set(statuses(store).values()) == {"done"}
    runs = [queue.get_run(store, i) for i in ids]
    assert len({r.pack_id for r in runs}) == 1 and runs[0].pack_id is not None
    assert [r.attempts for r in runs] == [1, 1, 1]
    for run in runs:
        single = tmp_path / f"single-{run.seed}"
        Trainer(RunConfig.from_dict(run.config), single).run()
        got, want = _records(Path(run.run_dir)), _records(single)
        assert [sorted(r) for r in got] == [sorted(r) for r in want]
        for a, b in zip(got, want, strict=True):
            for key, value in b.items():
                if isinstance(value, float):
                    torch.testing.assert_close(a[key], value, **TOL, msg=key)
                else:
                    assert a[key] == value, key
        scores = [row["score"] for row in csv.DictReader(
            (Path(run.run_dir) / "eval.csv").read_text().splitlines())]
        assert scores == [row["score"] for row in csv.DictReader(
            (single / "eval.csv").read_text().splitlines())]
        # The store holds what the folder holds.
        assert metric_steps(store, run.id, "critic/loss") == [10, 20, 30, 40, 50, 60]
        assert (Path(run.run_dir) / "curves.png").exists()


def test_a_killed_pack_leaves_each_member_lost_and_each_resumes_from_its_checkpoint(
        store, tmp_path, dataset):
    sets = tiny_sets(offline=60, online=40, save=10)
    ids = queue_pendulum(store, dataset, tmp_path / "runs", range(3), sets=sets)
    dirs = [Path(queue.get_run(store, i).run_dir) for i in ids]
    killed: list[int] = []

    def kill_once_checkpointed() -> None:
        if killed or not worker.active:
            return
        if all((d / "checkpoint.pt").exists() for d in dirs) and \
                min(resume_step(d) for d in dirs) >= 30:
            handle = next(iter(worker.active.values())).handle
            os.kill(handle.pid, signal.SIGKILL)
            killed.append(handle.pid)

    worker = _worker(store, pack=3, max_attempts=2, on_tick=kill_once_checkpointed)
    worker.run()
    assert killed
    assert set(statuses(store).values()) == {"done"}
    with store.read() as session:
        for run_id, folder in zip(ids, dirs, strict=True):
            assert session.get(Run, run_id).attempts == 2
            lost = session.execute(select(Event.message).where(
                Event.run_id == run_id, Event.new_status == "lost")).scalars().all()
            assert lost == ["its pack's process died before the member finished"]
            events = (folder / "events.log").read_text()
            assert "resumed" in events and "from step" in events
            # every logged step once, none missing, in the store and in the folder
            assert metric_steps(store, run_id, "critic/loss") == list(range(10, 101, 10))
            steps = [r["step"] for r in _records(folder) if "critic/loss" in r]
            assert steps == list(range(10, 101, 10))


def _two_pack_workers(url: str, tmp_path: Path, dataset: Path) -> None:
    store = Store(url)
    ids = queue_pendulum(store, dataset, tmp_path / "runs", range(12),
                         sets=tiny_sets(offline=20, online=20, save=20))
    workers = [start_worker(url, "--until-empty", "--pack", "4", "--heartbeat", "1",
                            "--expiry", "10", cwd=tmp_path) for _ in range(2)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    assert set(statuses(store).values()) == {"done"}
    with store.read() as session:
        attempts = session.execute(select(Run.attempts)).scalars().all()
        claims = session.execute(select(func.count()).where(
            Event.new_status == "running")).scalar()
        packs = session.execute(select(Run.pack_id)).scalars().all()
    assert attempts == [1] * len(ids) and claims == len(ids)  # each claimed exactly once
    assert any(p is not None for p in packs)
    for run_id in ids:
        assert metric_steps(store, run_id, "critic/loss") == [10, 20, 30, 40]
    store.dispose()


def test_two_pack_workers_on_sqlite_run_every_run_once(store, tmp_path, dataset):
    _two_pack_workers(store.url, tmp_path, dataset)


def test_two_pack_workers_on_postgresql_run_every_run_once(pg_url, tmp_path, dataset):
    _two_pack_workers(pg_url, tmp_path, dataset)


@pytest.mark.parametrize("pack", ["0", "-2", "many"])
def test_a_bad_pack_size_is_refused_before_anything_is_claimed(store, tmp_path, dataset, pack):
    queue_pendulum(store, dataset, tmp_path / "runs", range(2))
    result = CliRunner().invoke(app, ["worker", "--pack", pack, "--db", store.url])
    assert result.exit_code == 1
    assert "--pack" in result.output and "positive number" in result.output
    assert set(statuses(store).values()) == {"queued"}


def test_cancelling_one_run_of_a_pack_stops_that_member_only(store, tmp_path, dataset):
    sets = tiny_sets(offline=300, online=20, save=10)
    ids = queue_pendulum(store, dataset, tmp_path / "runs", range(3), sets=sets)
    asked: list[int] = []

    def cancel_the_second() -> None:
        if not asked and len(metric_steps(store, ids[1], "critic/loss")) >= 3:
            queue.request_cancel(store, [ids[1]])
            asked.append(ids[1])

    worker = _worker(store, pack=3, on_tick=cancel_the_second)
    worker.run()
    assert asked
    assert statuses(store) == {ids[0]: "done", ids[1]: "cancelled", ids[2]: "done"}
    cancelled = queue.get_run(store, ids[1])
    stopped_at = resume_step(Path(cancelled.run_dir))
    assert 30 <= stopped_at < 320  # it checkpointed where it stopped; the others went on
    assert metric_steps(store, ids[1], "critic/loss")[-1] <= stopped_at
    assert metric_steps(store, ids[0], "critic/loss")[-1] == 320
    # Settled while its pack went on, not when the pack ended.
    assert cancelled.finished_at < queue.get_run(store, ids[0]).finished_at


def test_pack_auto_is_one_run_on_a_cpu_and_a_fitted_pack_on_cuda():
    expected = (AUTO_PACK_CUDA, True) if torch.cuda.is_available() else (1, False)
    assert resolve_pack("auto") == expected
    assert resolve_pack("16") == (16, False)


def test_a_fitted_pack_holds_what_the_memory_holds(monkeypatch, dataset):
    from fino.algo import packing
    from fino.backends.base import TaskConfig
    from fino.cli.run_pack import _fitted_size
    from fino.train.presets import build_run_config

    configs = [build_run_config(TaskConfig("Pendulum-v1", backend="gymnasium",
                                           dataset=str(dataset)), seed=s) for s in range(8)]
    one = packing.estimate_pack_bytes(3, 1, configs[0].agent.resolved(1), 1)
    monkeypatch.setattr(packing, "_available_ram", lambda: int(3.5 * one))
    assert _fitted_size(3, 1, configs) == 3
    monkeypatch.setattr(packing, "_available_ram", lambda: one // 2)
    assert _fitted_size(3, 1, configs) == 1  # a single run is never refused here


def test_a_pack_refused_for_memory_stops_the_worker_and_leaves_its_runs_queued(
        store, tmp_path, dataset):
    from fino.exit_codes import MemberCode
    from fino.launch.packs import write_outcomes
    from fino.launch.worker import Active, Settled

    ids = queue_pendulum(store, dataset, tmp_path / "runs", range(2))
    claims = queue.claim_pack(store, host="h", pid=1, size=2, fits=lambda a, b: True)
    result = tmp_path / "packs" / "p.json"
    message = "a pack of 2 members needs about 9.0 GiB ... but the available RAM is 1.0 GiB"
    for claim in claims:  # what the pack process does before it exits
        queue.transition(store, claim.run_id, ("running",), "queued", token=claim.token,
                         message=f"released by its pack: {message}")
    write_outcomes(result, {c.run_id: {"code": MemberCode.REFUSED, "error": message}
                            for c in claims})
    worker = _worker(store, pack=2)
    for claim in claims:
        a = Active(claim.run_id, claim.token, "r", None, tmp_path / "p.log", 1, 1,
                   pack_id=claims[0].pack_id, result_path=result)
        assert worker._settle(a, 1).outcome == Settled.RELEASED
    assert worker.refused == message and worker._stopping
    assert set(statuses(store).values()) == {"queued"} and sorted(statuses(store)) == ids
