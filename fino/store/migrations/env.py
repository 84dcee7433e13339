"""Alembic environment: runs fino's migrations on the connection that fino.store.schema passes.

There is no alembic.ini; fino.store.schema builds the Config in code and puts an open connection,
already inside a locked transaction, in `config.attributes["connection"]`.
"""

from alembic import context

from fino.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("fino's migrations run through fino.store.schema, which passes a connection")

# No render_as_batch: a batch "move and copy" on SQLite drops and recreates the table, and with
# foreign keys on, dropping `runs` cascades a DELETE into `metrics` and `events`. SQLite can
# ADD and DROP plain columns in place; a revision that truly needs a table rebuild must say so.
context.configure(connection=connection, target_metadata=Base.metadata)

with context.begin_transaction():
    context.run_migrations()
