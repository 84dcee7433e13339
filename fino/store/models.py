"""The experiment store's tables: runs, their metrics, and an append-only event log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

STATUSES = ("queued", "running", "done", "failed", "cancelled", "lost", "pruned")
ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled", "lost", "pruned")


def utcnow() -> datetime:
    return datetime.now(UTC)


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
    status: Mapped[str] = mapped_column(String(20), default="queued")
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
    tags: Mapped[str] = mapped_column(String(1000), default="")  # comma-separated
    notes: Mapped[str] = mapped_column(Text, default="")
    study: Mapped[str | None] = mapped_column(String(200), index=True)
    trial: Mapped[int | None]

    __table_args__ = (Index("ix_runs_claim", "status", "priority", "id"),)

    @property
    def tag_list(self) -> list[str]:
        return [t for t in self.tags.split(",") if t]


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
    old_status: Mapped[str | None] = mapped_column(String(20))
    new_status: Mapped[str | None] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text, default="")
