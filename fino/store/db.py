"""Engine and sessions: SQLite (WAL, busy timeout, BEGIN IMMEDIATE writes) or PostgreSQL."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, quote_plus

from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from fino.store.schema import SchemaError, ensure_schema

DEFAULT_URL = "sqlite:///experiments.db"
ENV_VAR = "FINO_DB_URL"
BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 5  # an unreachable server fails in seconds, not after the OS's TCP timeout
# Query parameters whose values are hidden in messages (?password=..., ?sslpassword=...,
# ?token=..., ?api_key=...): drivers take credentials there as well as in the userinfo.
SECRET_PARAM = re.compile(r"pass|pwd|secret|token|api_?key|access_?key|private_?key|credential"
                          r"|auth", re.IGNORECASE)


class StoreError(RuntimeError):
    """The database cannot be used; the message says why and never contains a password."""


def resolve_url(url: str | None = None) -> str:
    """--db, else $FINO_DB_URL, else ./experiments.db; a bare path means a SQLite file."""
    url = url or os.environ.get(ENV_VAR) or DEFAULT_URL
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser()}"
    return url


def masked(url: str) -> str:
    """The URL with its password and its secret-like query parameters hidden, for messages."""
    try:
        parsed = make_url(url)
        base = parsed.set(query={}).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"
    pairs = [f"{quote_plus(key)}={'***' if SECRET_PARAM.search(key) else quote_plus(value)}"
             for key, values in parsed.query.items()
             for value in ((values,) if isinstance(values, str) else values)]
    return base + ("?" + "&".join(pairs) if pairs else "")


def secrets_of(parsed: URL) -> list[str]:
    """The password and the values of secret-like query parameters, as they may appear in a
    driver's message (plain and URL-quoted), longest first."""
    found = [str(parsed.password)] if parsed.password else []
    for key, values in parsed.query.items():
        if SECRET_PARAM.search(key):
            found += [values] if isinstance(values, str) else list(values)
    variants = {form for secret in found if secret
                for form in (secret, quote(secret, safe=""), quote_plus(secret))}
    return sorted(variants, key=len, reverse=True)


def make_engine(url: str, *, pool_size: int = 5, begin: str = "IMMEDIATE") -> Engine:
    """An engine configured for many processes sharing one database (`begin`: how SQLite
    transactions start: IMMEDIATE for writers, DEFERRED for readers that must never lock)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # SQLAlchemy's documented recipe: let pysqlite not manage transactions, emit BEGIN
        # ourselves, IMMEDIATE so that a writer takes the lock up front instead of failing
        # half-way with "database is locked" when it upgrades from a read.
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000,
                                                  "isolation_level": None})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection) -> None:
            connection.exec_driver_sql(f"BEGIN {begin}")

        return engine
    connect_args = {}
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in (
            "psycopg", "psycopg2") and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                         connect_args=connect_args)


class Store:
    """A database of runs: engine plus session factories for writes and reads."""

    def __init__(self, url: str | None = None, *, create: bool = True) -> None:
        """Open the database and bring its schema to head (see fino.store.schema); StoreError,
        with nothing written, where it cannot be used. `create=False` (commands that only read
        or change existing runs): a SQLite file that does not exist is an error, not created."""
        self.url = resolve_url(url)
        label = masked(self.url)
        parsed = _parse(self.url)
        if parsed.get_backend_name() == "sqlite":
            _check_sqlite_file(parsed, label, create)
        try:
            self.engine = make_engine(self.url)
        except NoSuchModuleError:
            raise StoreError(f"cannot open the database {label}: SQLAlchemy knows no database "
                             f"'{parsed.drivername}'") from None
        except ImportError as e:
            raise StoreError(f"cannot open the database {label}: the driver for "
                             f"'{parsed.drivername}' is not installed ({e}); for PostgreSQL, "
                             "postgresql+psycopg:// uses psycopg 3, which fino installs") from None
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.read_engine = make_engine(self.url, begin="DEFERRED") if self.is_sqlite \
            else self.engine
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)
        try:
            ensure_schema(self.engine, self.read_engine, label)
        except SchemaError as e:
            self.dispose()
            raise StoreError(str(e)) from None
        except (SQLAlchemyError, OSError) as e:
            self.dispose()
            raise StoreError(f"cannot open the database {label}: {_reason(e, parsed)}") from e

    def __repr__(self) -> str:
        return f"Store({masked(self.url)})"

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction (SQLite: BEGIN IMMEDIATE), committed on success."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (SQLite: a deferred BEGIN, never a write lock)."""
        # Closing ends the transaction without expiring loaded objects (a rollback would),
        # so rows read here stay usable after the block.
        with self._read_sessions() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        # Only the scheme is shown: the rest of an unparseable URL may hold a password.
        scheme = url.split("://", 1)[0]
        shown = f" (scheme '{scheme}')" if re.fullmatch(r"[\w+.-]+", scheme) else ""
        raise StoreError(f"cannot parse the database URL{shown}: expected a SQLite file path "
                         "or dialect+driver://user:password@host:port/database") from None


def _check_sqlite_file(parsed: URL, label: str, create: bool) -> None:
    """Refuse a SQLite path before sqlite3 sees it: sqlite3 would create a missing file, and its
    own errors ("unable to open database file") do not say what is wrong."""
    database = parsed.database
    if not database or database == ":memory:" or parsed.query.get("uri") == "true":
        return
    path = Path(database)
    if not create and not path.exists():
        raise StoreError(f"no database at {path}: queue a run first (fino queue add ...) or "
                         "pass --db")
    problem = None
    if path.is_dir():
        problem = f"{path} is a directory, not a SQLite file"
    elif not path.parent.is_dir():
        problem = f"the directory {path.parent} does not exist"
    elif path.exists():
        problem = _sqlite_probe(path)
    if problem:
        raise StoreError(f"cannot open the database {label}: {problem}")


def _sqlite_probe(path: Path) -> str | None:
    """Why SQLite cannot read `path`, or None; through SQLite itself, read-only.

    Never open() and close() the file directly: closing any descriptor of a database file drops
    every POSIX lock this process holds on it, those of open connections included, and another
    process may then checkpoint and delete the WAL under them (sqlite.org/howtocorrupt.html §2.2).
    """
    try:
        probe = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as e:
        return f"cannot read {path}: {e}"
    try:
        probe.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as e:
        if "not a database" in str(e):
            return f"file is not a database: {path} is not a SQLite file"
        if "locked" not in str(e) and "busy" not in str(e):
            return f"cannot read {path}: {e}"
    finally:
        probe.close()
    return None


def _reason(error: Exception, parsed: URL) -> str:
    """The driver's own message on one line (never SQLAlchemy's statement and parameters), with
    the password and secret query values scrubbed should a driver echo them."""
    reason = " ".join(str(getattr(error, "orig", None) or error).split())
    for secret in secrets_of(parsed):
        reason = reason.replace(secret, "***")
    return reason


def describe_error(error: Exception, url: str) -> str:
    """`_reason` for a store's URL: the driver's message on one line, without secrets."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return " ".join(str(getattr(error, "orig", None) or error).split())
    return _reason(error, parsed)
