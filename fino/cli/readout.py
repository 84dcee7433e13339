"""Helpers of the read-side commands (runs, report, plot, export): opening the store without
creating a database, turning expected errors into one red line, formatting numbers."""

from __future__ import annotations

import difflib
import io
import math
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from fino.cli.common import database_failure, fail, open_store

if TYPE_CHECKING:
    from fino.store.db import Store
    from fino.store.models import Run


def read_store(db: str | None) -> Store:
    """The store; a SQLite file that does not exist is an error here, not a new empty database
    (a typo in --db would otherwise show "no runs")."""
    with user_errors():  # an unreachable server or a file that is not a database
        return open_store(db, create=False)


@contextmanager
def user_errors() -> Iterator[None]:
    """Expected failures (unknown id, bad filter, unreadable database, unwritable file) as one
    red line and exit code 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from fino.analysis.groups import GroupError
    from fino.store.db import StoreError
    from fino.store.queries import QueryError

    try:
        yield
    except BrokenPipeError:
        # `fino export 1 | head`: the reader has gone; stop quietly, as Unix tools do.
        _silence_stdout()
        raise typer.Exit(141) from None
    except (QueryError, GroupError, StoreError) as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        # The driver's own message; SQLAlchemy's adds the statement and its parameters.
        fail(database_failure(exc))
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    # Not a real file (a test runner's buffer): then nothing will be flushed to a pipe.
    with suppress(OSError, ValueError, io.UnsupportedOperation):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def check_key(key: str, known: Sequence[str], what: str = "these runs") -> None:
    """Fails with the closest known keys when `key` was never logged."""
    if key in known:
        return
    if not known:
        fail(f"{what} have no metrics yet")
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(known)}"
    fail(f"no metric {key!r} in {what}{hint}")


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
    if started is None or run.status == "queued":
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
