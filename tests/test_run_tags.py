"""Tags as rows, the machine as a column and statuses as an enum: 0005 upgrades a store in place
with nothing lost (SQLite and PostgreSQL), and tag filters match whole tags only."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text

from fino.store import queries, queue
from fino.store.db import Store, make_engine
from fino.store.models import Base, Event, Metric, Run, RunStatus, RunTag
from fino.store.schema import HEAD, alembic_config, revisions
from fino.study.collect import run_machines, study_runs, study_tags
from fino.study.plan import load_plan
from tests.conftest_pg import pg_url  # noqa: F401  (the fixture, until conftest.py imports it)

BEFORE = "0004_pack_id"
MARK = "; machine: "  # fino.provenance.MACHINE_MARK, as 0004-era events wrote it
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'experiments.db'}")
    yield store
    store.dispose()


def make_0004_database(url: str) -> None:
    """A store as revision 0004 left it: comma-joined tags, machines only in event text."""
    engine = make_engine(url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), BEFORE)
    with engine.begin() as connection:
        for run_id, status, tags in ((1, "done", "study:repro-cpu,budget:cpu,method:fino"),
                                     (2, "lost", "paper"), (3, "queued", "")):
            connection.execute(text(
                "INSERT INTO runs (id, name, task, backend, algo, preset, config, seed, status, "
                "priority, attempts, max_attempts, created_at, cancel_requested, tags, notes) "
                "VALUES (:id, :name, 'cube-single', 'ogbench', 'fino', 'cube', '{}', 0, "
                ":status, 0, 1, 1, :when, :no, :tags, '')"),
                {"id": run_id, "name": f"r{run_id}", "status": status, "when": WHEN, "no": False,
                 "tags": tags})
        connection.execute(
            text("INSERT INTO events (run_id, time, kind, old_status, new_status, message) "
                 "VALUES (:run, :when, :kind, :old, :new, :message)"),
            [{"run": 1, "when": WHEN, "kind": "started", "old": None, "new": None,
              "message": f"fino on cube, step 0/10, fino 0.1.0{MARK}Linux x86_64, old box"},
             {"run": 1, "when": WHEN, "kind": "started", "old": None, "new": None,
              "message": f"fino on cube, step 5/10, fino 0.1.0{MARK}Linux x86_64, new box"},
             {"run": 1, "when": WHEN, "kind": "status", "old": "running", "new": "done",
              "message": "finished"},
             {"run": 2, "when": WHEN, "kind": "status", "old": "running", "new": "lost",
              "message": "heartbeat expired"}])
        connection.execute(text("INSERT INTO metrics (run_id, step, key, value, wall_time) "
                                "VALUES (1, 0, 'eval/score', 0.5, 1.0)"))
    engine.dispose()


def test_0005_upgrades_a_store_in_place_with_tags_as_rows_and_machines_as_a_column(
        db_url: str) -> None:
    make_0004_database(db_url)
    store = Store(db_url)
    with store.engine.connect() as connection:
        assert revisions(connection) == {HEAD}
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    with store.read() as session:
        assert sorted(session.execute(select(RunTag.run_id, RunTag.tag)).all()) == [
            (1, "budget:cpu"), (1, "method:fino"), (1, "study:repro-cpu"), (2, "paper")]
        runs = {r.id: r for r in session.scalars(select(Run))}
        assert {i: (r.status, r.tags, r.machine) for i, r in runs.items()} == {
            1: (RunStatus.DONE, "study:repro-cpu,budget:cpu,method:fino",
                "Linux x86_64, new box"),
            2: (RunStatus.LOST, "paper", None),
            3: (RunStatus.QUEUED, "", None)}
        assert all(type(r.status) is RunStatus for r in runs.values())
        assert session.scalar(select(Metric.value).where(Metric.run_id == 1)) == 0.5
        assert len(session.scalars(select(Event)).all()) == 4
        assert [r.id for r in queries.list_runs(session, tag="paper")] == [2]
    store.dispose()


def test_0005_downgrades_to_0004_with_the_tags_text_intact(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'experiments.db'}"
    make_0004_database(url)
    Store(url).dispose()
    engine = create_engine(url)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), BEFORE)
    with engine.connect() as connection:
        assert not inspect(connection).has_table("run_tags")
        assert "machine" not in {c["name"] for c in inspect(connection).get_columns("runs")}
        assert connection.scalar(text("SELECT tags FROM runs WHERE id = 2")) == "paper"
    engine.dispose()


def test_run_status_round_trips_as_its_value(store: Store) -> None:
    with store.write() as session:
        session.add_all(Run(name=status.value, task="t", backend="ogbench", algo="fino",
                            config={}, seed=0, status=status) for status in RunStatus)
    with store.read() as session:
        read = session.scalars(select(Run.status).order_by(Run.id)).all()
        raw = session.execute(text("SELECT status FROM runs ORDER BY id")).scalars().all()
    assert read == list(RunStatus) and all(type(s) is RunStatus for s in read)
    assert raw == [s.value for s in RunStatus] and all(type(s) is str for s in raw)
    assert RunStatus("lost") is RunStatus.LOST and f"{RunStatus.LOST}" == "lost"


def test_a_study_picks_up_only_runs_tagged_with_its_own_name(store: Store,
                                                             tmp_path: Path) -> None:
    repro = load_plan(Path("benchmarks/studies/repro.toml"))
    longer = dataclasses.replace(repro, name="repro-cpu")
    _task, method, config = repro.configs("cpu")[0]
    theirs = queue.add_runs(store, [config], runs_dir=tmp_path,
                            tags=study_tags(longer, "cpu", method))
    assert study_runs(store, repro, "cpu") == {}
    ours = queue.add_runs(store, [config], runs_dir=tmp_path,
                          tags=study_tags(repro, "cpu", method))
    assert [r.id for r in study_runs(store, repro, "cpu").values()] == ours
    assert [r.id for r in study_runs(store, longer, "cpu").values()] == theirs
    with store.read() as session:
        assert queries.count_runs(session, tag="study:repro") == 1
        assert queries.count_runs(session, tag="study:repro-cpu") == 1


def test_tag_changes_keep_the_rows_in_step_and_removal_takes_them(store: Store,
                                                                  tmp_path: Path) -> None:
    repro = load_plan(Path("benchmarks/studies/repro.toml"))
    config = repro.configs("cpu")[0][2]
    run_id, other = queue.add_runs(store, [config, config], runs_dir=tmp_path, tags=["a", "b"])
    queue.change_tags(store, [run_id], add=["c"], remove=["a"])
    with store.read() as session:
        assert sorted(session.execute(select(RunTag.run_id, RunTag.tag)).all()) == [
            (run_id, "b"), (run_id, "c"), (other, "a"), (other, "b")]
        assert queries.get_runs(session, [run_id])[0].tag_list == ["b", "c"]
        assert [r.id for r in queries.tagged_runs(session, "a", "b")] == [other]
    queue.remove(store, [other])
    with store.read() as session:
        assert session.scalars(select(RunTag.run_id).distinct()).all() == [run_id]


def test_a_started_event_sets_the_machine_of_the_run(store: Store, tmp_path: Path) -> None:
    from fino.provenance import MACHINE_MARK
    from fino.store.sink import DatabaseSink

    repro = load_plan(Path("benchmarks/studies/repro.toml"))
    (run_id,) = queue.add_runs(store, [repro.configs("cpu")[0][2]], runs_dir=tmp_path)
    assert run_machines(store, [run_id]) == {}
    sink = DatabaseSink(store, run_id)
    sink.event("started", f"fino on cube, step 0/10, fino 0.1.0{MACHINE_MARK}Linux, a box")
    sink.close()
    assert run_machines(store, [run_id]) == {run_id: "Linux, a box"}
