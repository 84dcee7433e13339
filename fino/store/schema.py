"""Schema versions: bring a database to the head revision with Alembic, or refuse clearly.

Alembic runs in code, with no alembic.ini. To write a new revision, open a database at head and
run `alembic.command.revision(alembic_config(conn), "message", rev_id="0003_name",
autogenerate=True)`; name the file and the revision id alike (see HEAD).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, inspect, text

from fino.store.models import Base

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).with_name("migrations")
# Revision files are named "<revision id>.py" with ids that sort in order ("0002_study_trial"), so
# the head is known without loading Alembic: a database already at head costs one SELECT. A test
# pins this against Alembic's own view of the revisions.
HEAD = max(path.stem for path in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
VERSION_TABLE = "alembic_version"
# Any fixed 64-bit key: PostgreSQL advisory locks are per database, and only fino takes this one.
PG_LOCK_KEY = 0x46494E4F5F4D4947  # "FINO_MIG"


class SchemaError(Exception):
    """The database's schema cannot be brought to head; the message says why and what to do."""


class Action(Enum):
    NONE = "none"
    UPGRADE = "upgrade"
    STAMP = "stamp"


def alembic_config(connection: Connection) -> Config:
    """An Alembic Config for fino's migrations that runs them on `connection`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", "%%(rev)s")  # the file is named after the revision
    config.attributes["connection"] = connection
    return config


def script_directory() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS))


def revisions(connection: Connection) -> set[str] | None:
    """The revisions stamped in the database, or None where it has no version table."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    return set(connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())


def schema_differences(connection: Connection) -> list[Any]:
    """Alembic's diff of fino's tables in the database against models.py (other tables ignored)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    ours = set(Base.metadata.tables)

    def include_name(name: str | None, type_: str, _parent: dict[str, str | None]) -> bool:
        return type_ != "table" or name in ours

    context = MigrationContext.configure(connection, opts={"include_name": include_name})
    return compare_metadata(context, Base.metadata)


def ensure_schema(engine: Engine, read_engine: Engine, label: str) -> None:
    """Bring the database to head: create it, upgrade it in place, or stamp an untracked copy of
    head; raise SchemaError for a newer or foreign schema. `label` names it in messages."""
    with read_engine.connect() as connection:
        if revisions(connection) == {HEAD}:
            return
        # Refuse before taking any lock, so that a newer database is not even locked.
        if _plan(connection, label) is Action.NONE:
            return
    # SQLite: `engine` opens BEGIN IMMEDIATE, the write lock, held until the commit. PostgreSQL:
    # an advisory lock for the transaction. Processes opening a new database at once wait here,
    # and all but the first find it already at head when they look again.
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
        action = _plan(connection, label)
        if action is Action.NONE:
            return
        from alembic import command

        config = alembic_config(connection)
        if action is Action.STAMP:
            command.stamp(config, "head")
        else:
            command.upgrade(config, "head")


def _plan(connection: Connection, label: str) -> Action:
    script = script_directory()
    known = {revision.revision for revision in script.walk_revisions()}
    heads = set(script.get_heads())
    tables = set(inspect(connection).get_table_names())
    ours = set(Base.metadata.tables)
    stamped = revisions(connection)

    if stamped:
        unknown = sorted(stamped - known)
        if unknown and not tables & ours:
            raise SchemaError(
                f"the database {label} has an {VERSION_TABLE} table of another application "
                f"(revision {', '.join(unknown)}) and no fino tables: give fino its own database")
        if unknown:
            raise SchemaError(
                f"the database {label} was written by a newer version of fino (schema revision "
                f"{', '.join(unknown)}; this fino knows up to {HEAD}): upgrade fino to use it")
        return Action.NONE if stamped == heads else Action.UPGRADE
    if not tables & ours:
        return Action.UPGRADE
    # Tables without a version: made by create_all before migrations existed. Adopt them only
    # where they are exactly head, since nothing says which older revision they might be.
    # Missing tables are differences too (add_table): they are named with the rest.
    differences = schema_differences(connection)
    if differences == []:
        return Action.STAMP
    found = ", ".join(sorted(tables & ours))
    detail = "to reach it: " + ", ".join(_describe(d) for d in differences)
    raise SchemaError(
        f"the database {label} has fino tables ({found}) but no schema version "
        f"({VERSION_TABLE}), and they differ from this fino's schema ({detail}): "
        "use a new database, or migrate this one by hand and stamp it")


def _describe(difference: Any) -> str:
    """One of Alembic's differences in a few words: 'add_column runs.study'."""
    if isinstance(difference, list):  # modify_* differences come grouped per column
        difference = difference[0]
    kind, *args = difference
    names = [arg if isinstance(arg, str) else arg.name for arg in args
             if isinstance(arg, str) or isinstance(getattr(arg, "name", None), str)]
    return f"{kind} {'.'.join(names)}"
