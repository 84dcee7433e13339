"""Helpers of the read-side commands (runs, report, plot, export): opening the store without
creating a database, turning expected errors into one red line. The run facts and formats are
`fino.runfacts`' (shared with the dashboard), re-exported here."""

from __future__ import annotations

import difflib
import io
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

import typer

from fino.cli.common import database_failure, fail, open_store
from fino.runfacts import (
    as_utc,
    elapsed,
    finite_or_none,
    fmt_ci,
    fmt_duration,
    fmt_num,
    fmt_step,
    fmt_time,
    total_steps,
    train_setting,
)

if TYPE_CHECKING:
    from fino.store.db import Store

__all__ = ["as_utc", "check_key", "elapsed", "finite_or_none", "fmt_ci", "fmt_duration",
           "fmt_num", "fmt_step", "fmt_time", "read_store", "total_steps", "train_setting",
           "user_errors"]


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
