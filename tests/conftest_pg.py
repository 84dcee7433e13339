"""A throwaway PostgreSQL database per test, on the server named by $FINO_TEST_PG_URL.

Registered in tests/conftest.py (`pg_url`, and `db_url`: each test once on SQLite, once on
PostgreSQL).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from fino.store.db import masked

ADMIN_URL = os.environ.get("FINO_TEST_PG_URL",
                           "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a new, empty database `fino_test_<random>`, dropped after the test (with any
    connections a test left open); skips the test where no server answers."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT",
                          connect_args={"connect_timeout": 3}, pool_size=1)
    name = f"fino_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
    except SQLAlchemyError as e:
        admin.dispose()
        reason = " ".join(str(getattr(e, "orig", e)).split())
        pytest.skip(f"PostgreSQL not reachable at {masked(ADMIN_URL)}: {reason}")
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of a database that does not exist yet (SQLite) or is empty (PostgreSQL)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'experiments.db'}"
    return request.getfixturevalue("pg_url")
