"""The store's database: migrations to head, upgrades in place, and clear refusals (real SQLite
files and, where one answers, a real PostgreSQL server)."""

from __future__ import annotations

import hashlib
import multiprocessing
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, func, inspect, select, text

from fino.store.db import Store, StoreError, make_engine
from fino.store.models import Base, Event, Metric, Run
from fino.store.schema import HEAD, MIGRATIONS, alembic_config, revisions, script_directory
from tests.conftest_pg import pg_url  # noqa: F401  (the fixture, until conftest.py imports it)

FIRST = "0001_initial"


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> str:
    """A new empty PostgreSQL database (the shared `pg_url` fixture)."""
    return request.getfixturevalue("pg_url")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'experiments.db'}"


@pytest.fixture
def opened(db_url: str) -> Iterator[Store]:
    store = Store(db_url)
    yield store
    store.dispose()


def stamped(url: str) -> set[str] | None:
    engine = create_engine(url)
    with engine.connect() as connection:
        found = revisions(connection)
    engine.dispose()
    return found


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_first_schema_database(url: str) -> None:
    """A database as the first fino schema left it: 0001 only, rows written with plain SQL."""
    engine = make_engine(url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), FIRST)
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO runs (id, name, task, backend, algo, preset, config, seed, status, "
            "priority, attempts, max_attempts, created_at, cancel_requested, tags, notes) VALUES "
            "(7, 'fino-s0', 'cube-single', 'ogbench', 'fino', 'cube', :config, 0, 'done', 0, 1, "
            "1, :when, :no, 'paper', '')"), {"config": '{"lr": 0.0003}', "when": when, "no": False})
        connection.execute(
            text("INSERT INTO metrics (run_id, step, key, value, wall_time) "
                 "VALUES (7, :step, 'evaluation/success', :value, 1.5)"),
            [{"step": step, "value": step / 1000} for step in (0, 100, 200)])
        connection.execute(text(
            "INSERT INTO events (run_id, time, kind, old_status, new_status, message) "
            "VALUES (7, :when, 'status', 'running', 'done', 'exit code 0')"), {"when": when})
    engine.dispose()


def test_migration_files_are_named_after_their_revision_and_head_is_the_newest() -> None:
    script = script_directory()
    for revision in script.walk_revisions():
        assert Path(revision.path).stem == revision.revision
    assert script.get_heads() == [HEAD]
    assert HEAD == "0005_run_tags_machine"
    assert (MIGRATIONS / "env.py").is_file()


def test_fresh_sqlite_store_is_at_head_with_wal(sqlite_url: str) -> None:
    Store(sqlite_url).dispose()
    assert stamped(sqlite_url) == {HEAD}
    connection = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    connection.close()


def test_head_schema_equals_the_models(opened: Store) -> None:
    assert stamped(opened.url) == {HEAD}
    with opened.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_first_schema_database_is_upgraded_in_place_with_rows_intact(db_url: str) -> None:
    make_first_schema_database(db_url)
    assert stamped(db_url) == {FIRST}

    store = Store(db_url)
    assert stamped(db_url) == {HEAD}
    with store.read() as session:
        run = session.get(Run, 7)
        assert run is not None
        assert (run.name, run.config, run.status, run.tags) == ("fino-s0", {"lr": 0.0003}, "done",
                                                                 "paper")
        assert run.created_at.replace(tzinfo=UTC) == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
        assert (run.study, run.trial, run.pack_id) == (None, None, None)
        values = session.scalars(select(Metric.value).where(Metric.run_id == 7)
                                 .order_by(Metric.step)).all()
        assert values == [0.0, 0.1, 0.2]
        event = session.scalars(select(Event)).one()
        assert (event.run_id, event.new_status, event.message) == (7, "done", "exit code 0")
    with store.write() as session:  # the new columns are usable
        session.add(Run(name="tuned", task="cube-single", backend="ogbench", algo="fino",
                        config={}, seed=1, study="cube-lr", trial=3))
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    store.dispose()


def test_reopening_a_database_at_head_changes_nothing(db_url: str) -> None:
    Store(db_url).dispose()
    store = Store(db_url)
    assert stamped(db_url) == {HEAD}
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 0
    store.dispose()


def test_newer_schema_is_refused_with_nothing_written(sqlite_url: str) -> None:
    Store(sqlite_url).dispose()
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    connection = sqlite3.connect(path)
    connection.execute("UPDATE alembic_version SET version_num = '0099_future'")
    connection.commit()
    connection.close()  # the last connection checkpoints the WAL into the file
    before = sha256(path)

    with pytest.raises(StoreError, match=r"newer version of fino .*0099_future.*upgrade fino"):
        Store(sqlite_url)
    assert sha256(path) == before


def test_newer_schema_is_refused_on_postgresql(postgres_url: str) -> None:
    Store(postgres_url).dispose()
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
    engine.dispose()
    with pytest.raises(StoreError, match=r"newer version of fino .*0099_future"):
        Store(postgres_url)
    assert stamped(postgres_url) == {"0099_future"}


def test_untracked_tables_equal_to_head_are_stamped_with_rows_intact(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    Base.metadata.create_all(engine)  # what fino did before it had migrations
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO runs (name, task, backend, algo, config, seed, status, priority, "
            "attempts, max_attempts, created_at, cancel_requested, tags, notes) VALUES ('r', "
            "'t', 'ogbench', 'fql', '{}', 0, 'queued', 0, 0, 1, '2024-05-01', 0, '', '')"))
    engine.dispose()

    store = Store(sqlite_url)
    assert stamped(sqlite_url) == {HEAD}
    with store.read() as session:
        assert session.scalars(select(Run.algo)).all() == ["fql"]
    store.dispose()


def test_untracked_tables_of_another_schema_are_refused(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), FIRST)
        connection.execute(text("DROP TABLE alembic_version"))
    engine.dispose()
    with pytest.raises(StoreError, match=r"no schema version .*add_column runs\.study"):
        Store(sqlite_url)
    engine = create_engine(sqlite_url)
    assert "study" not in {c["name"] for c in inspect(engine).get_columns("runs")}
    engine.dispose()


def test_a_foreign_alembic_version_is_not_mistaken_for_a_newer_fino(sqlite_url: str) -> None:
    connection = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
    connection.execute("INSERT INTO alembic_version VALUES ('v3.0.0.a')")  # e.g. Optuna's
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match="another application"):
        Store(sqlite_url)


def test_downgrade_to_the_first_schema_keeps_metrics(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    with store.write() as session:
        run = Run(name="r", task="t", backend="ogbench", algo="fino", config={}, seed=0)
        session.add(run)
        session.flush()
        session.add_all(Metric(run_id=run.id, step=s, key="k", value=1.0, wall_time=0.0)
                        for s in range(3))
    with store.engine.begin() as connection:
        command.downgrade(alembic_config(connection), FIRST)
    store.dispose()
    engine = create_engine(sqlite_url)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM metrics")) == 3
        assert "study" not in {c["name"] for c in inspect(connection).get_columns("runs")}
    engine.dispose()


def test_a_file_that_is_not_a_database_is_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "experiments.db"
    path.write_text("these are my notes, not a database\n")
    before = sha256(path)
    with pytest.raises(StoreError, match="file is not a database"):
        Store(str(path))
    assert sha256(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiments.db"]


def test_opening_a_second_store_keeps_the_locks_of_the_first(tmp_path: Path) -> None:
    # Opening a Store must not open() + close() the file itself: that drops the POSIX locks of
    # this process's open connections, so another process closing its connection believes it is
    # the last one, checkpoints and deletes the WAL under them ("disk image is malformed").
    path = tmp_path / "experiments.db"
    first = Store(str(path))
    with first.write() as session:
        session.execute(text("CREATE TABLE notes (x)"))
    with first.read() as session:  # a connection of this process stays open, in WAL mode
        session.execute(text("SELECT count(*) FROM runs")).scalar()
        Store(str(path))
        code = f"import sqlite3; c = sqlite3.connect({str(path)!r}); " \
               "c.execute('SELECT count(*) FROM runs').fetchone(); c.close()"
        subprocess.run([sys.executable, "-c", code], check=True)
        assert Path(f"{path}-wal").exists()  # the other process saw it was not the last


def test_a_missing_directory_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        Store(str(tmp_path / "nowhere" / "experiments.db"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://me:secret@host:port/db", "cannot parse the database URL"),
    ("postgresql+psycopg2://me:secret@127.0.0.1/db", "driver .* is not installed"),
    ("nosuchdb://me:secret@127.0.0.1/db", "knows no database 'nosuchdb'"),
    ("postgresql+psycopg://me:secret@127.0.0.1:1/db", "127.0.0.1.*port 1"),
])
def test_unusable_urls_fail_fast_without_their_password(url: str, expected: str) -> None:
    start = time.monotonic()
    with pytest.raises(StoreError, match=expected) as error:
        Store(url)
    assert time.monotonic() - start < 10
    assert "secret" not in str(error.value)
    if "cannot parse" not in str(error.value):
        assert "me:***@" in str(error.value)


def test_unknown_postgresql_database_is_named(postgres_url: str) -> None:
    missing = postgres_url.rsplit("/", 1)[0] + "/fino_no_such_database"
    with pytest.raises(StoreError, match='database "fino_no_such_database" does not exist'):
        Store(missing)


def _open(url: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait(timeout=60)
    Store(url).dispose()


def test_concurrent_first_opens_of_a_new_sqlite_file_all_succeed(sqlite_url: str) -> None:
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(4)
    workers = [spawn.Process(target=_open, args=(sqlite_url, barrier)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    assert stamped(sqlite_url) == {HEAD}


def test_concurrent_first_opens_of_a_new_postgresql_database_all_succeed(
        postgres_url: str) -> None:
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_store() -> None:
        barrier.wait(timeout=30)
        try:
            Store(postgres_url).dispose()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert stamped(postgres_url) == {HEAD}
