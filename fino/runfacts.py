"""Facts about a stored run (its settings, steps, elapsed time) and the plain-text formats the
CLI and the dashboard show them in. UI-free: no Typer, no Rich, no Textual."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fino.status import RunStatus

if TYPE_CHECKING:
    from fino.store.models import Run

REFRESH_S = 2.0  # seconds between the dashboard's reads of the store (`fino tui --refresh`)
# A run's `started` event ends with this, then `fino.provenance.machine()`; the study report
# groups runs by it and the store keeps it as the run's machine.
MACHINE_MARK = "; machine: "
# The style each status is shown in: Rich markup (CLI) and Textual styles (dashboard) alike.
STATUS_STYLE: dict[str, str] = {
    RunStatus.QUEUED: "cyan", RunStatus.RUNNING: "bold yellow", RunStatus.DONE: "green",
    RunStatus.FAILED: "red", RunStatus.CANCELLED: "magenta", RunStatus.LOST: "bold red",
    RunStatus.PRUNED: "dim"}


def train_setting(run: Run, name: str) -> Any:
    """A `train.*` value of the run's config (None when absent)."""
    return (run.config or {}).get("train", {}).get(name)


def total_steps(run: Run) -> int | None:
    offline, online = train_setting(run, "offline_steps"), train_setting(run, "online_steps")
    return None if offline is None or online is None else offline + online


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything stored is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def machine_of(message: str) -> str | None:
    """The machine a `started` (or imported) event's message names, if it names one."""
    return message.split(MACHINE_MARK, 1)[1].strip() if MACHINE_MARK in message else None


def fmt_time(moment: datetime | None) -> str:
    moment = as_utc(moment)
    return "-" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def elapsed(run: Run, now: datetime | None = None) -> float | None:
    """Seconds the current attempt has run (to its end); None for a queued run."""
    started = as_utc(run.started_at)
    if started is None or run.status == RunStatus.QUEUED:
        return None
    end = as_utc(run.finished_at) or now or datetime.now(UTC)
    return (end - started).total_seconds()


def fmt_num(value: float | None, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.{digits}f}"


def fmt_ci(mean: float, half: float, n: int, digits: int = 1) -> str:
    """'45.2 ± 3.1'; one seed: '45.2 (n=1)'; none: '-'."""
    if n == 0 or not math.isfinite(mean):
        return "-"
    if not math.isfinite(half):
        return f"{mean:.{digits}f} (n=1)"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def fmt_step(step: int | None) -> str:
    if step is None:
        return "-"
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if step >= size:
            return f"{step / size:.4g}{suffix}"
    return str(step)


def finite_or_none(value: float | None) -> float | None:
    """JSON output: NaN is not JSON."""
    return None if value is None or not math.isfinite(value) else value
