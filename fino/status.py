"""Where a run stands (stored in the runs table as its value) and the groups of states the
CLI, the dashboard and the tuner filter by. A leaf: no database, no UI."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """Where a run stands; stored as its value, and equal to it ("queued" == QUEUED)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"
    PRUNED = "pruned"


STATUSES = tuple(RunStatus)
ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
FINISHED = (RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.LOST,
            RunStatus.PRUNED)
