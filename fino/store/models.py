"""The experiment store's tables: runs, their metrics, and an append-only event log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    delete,
    event,
    insert,
    inspect,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column

# Re-exported: the store's users import the run states from here or from fino.status.
from fino.status import ACTIVE as ACTIVE
from fino.status import FINISHED as FINISHED
from fino.status import STATUSES as STATUSES
from fino.status import RunStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


class StatusColumn(TypeDecorator[RunStatus]):
    """A RunStatus in a String(20) column: written as its value, read back as the enum."""

    impl = String(20)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else RunStatus(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> RunStatus | None:
        return None if value is None else RunStatus(value)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True),
                                                     dict[str, Any]: JSON}


class Run(Base):
    """One training run: its resolved config, where it stands, who runs it."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(200), index=True)
    backend: Mapped[str] = mapped_column(String(50))
    algo: Mapped[str] = mapped_column(String(20), index=True)
    preset: Mapped[str | None] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    seed: Mapped[int] = mapped_column(Integer)
    status: Mapped[RunStatus] = mapped_column(StatusColumn(), default=RunStatus.QUEUED)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    worker_host: Mapped[str | None] = mapped_column(String(200))
    worker_pid: Mapped[int | None]
    heartbeat_at: Mapped[datetime | None]
    # A fresh random token per claim: only the holder of the current token may write the run's
    # rows, checkpoint or settle it (a stalled worker's attempt is fenced off once reclaimed).
    attempt_token: Mapped[str | None] = mapped_column(String(32))
    # The pack an attempt trains in, shared by its members (None: alone); cleared when the run
    # goes back to the queue.
    pack_id: Mapped[str | None] = mapped_column(String(32), index=True)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    exit_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    run_dir: Mapped[str | None] = mapped_column(String(1000))
    # The run's tags comma-separated, for display and text search; `run_tags` holds one row per
    # tag for exact matching, kept in step with this column by the store.
    tags: Mapped[str] = mapped_column(String(1000), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    study: Mapped[str | None] = mapped_column(String(200), index=True)
    trial: Mapped[int | None]
    # The machine of the run's latest start (OS, CPU, Python, torch, GPU), from its `started`
    # event; None for runs that never started.
    machine: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index("ix_runs_claim", "status", "priority", "id"),)

    @property
    def tag_list(self) -> list[str]:
        return split_tags(self.tags)


def split_tags(text: str | None) -> list[str]:
    """The tags of a comma-separated `runs.tags` value."""
    return [t for t in (text or "").split(",") if t]


class RunTag(Base):
    """One tag of one run: tag filters match whole tags here, never parts of `runs.tags`."""

    __tablename__ = "run_tags"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


def write_tags(connection: Connection | Any, run_id: int, tags: list[str]) -> None:
    """Make `run_tags` hold exactly `tags` for the run (`connection`: a Connection or Session)."""
    connection.execute(delete(RunTag).where(RunTag.run_id == run_id))
    if tags:
        connection.execute(insert(RunTag), [{"run_id": run_id, "tag": t}
                                            for t in dict.fromkeys(tags)])


# Runs written through the ORM (queued, imported, or a test's fixture) get their run_tags rows
# here; a bulk UPDATE of runs.tags bypasses these and calls write_tags itself (change_tags).
@event.listens_for(Run, "after_insert")
def _tags_of_new_run(_mapper: Mapper[Run], connection: Connection, run: Run) -> None:
    if run.tags:
        write_tags(connection, run.id, split_tags(run.tags))


@event.listens_for(Run, "after_update")
def _tags_of_changed_run(_mapper: Mapper[Run], connection: Connection, run: Run) -> None:
    if inspect(run).attrs.tags.history.has_changes():
        write_tags(connection, run.id, split_tags(run.tags))


class Metric(Base):
    """One scalar of one run at one step; (run, key, step) is unique."""

    __tablename__ = "metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(100))
    value: Mapped[float | None] = mapped_column(Float)
    wall_time: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        # "series of key K for run R" and the upsert's uniqueness in one index.
        Index("ux_metrics_run_key_step", "run_id", "key", "step", unique=True),
        # "latest value per run" (the newest rows of a run, any key).
        Index("ix_metrics_run_id", "run_id", "id"),
    )


class Event(Base):
    """Append-only: every status change and notable event of a run."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"),
                                               index=True)
    time: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(50))
    old_status: Mapped[RunStatus | None] = mapped_column(StatusColumn())
    new_status: Mapped[RunStatus | None] = mapped_column(StatusColumn())
    message: Mapped[str] = mapped_column(Text, default="")
