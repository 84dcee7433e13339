"""Tags as rows and the machine as a column: table run_tags (run_id, tag), runs.machine.

Revision ID: 0005_run_tags_machine
Revises: 0004_pack_id

`runs.tags` stays, as the comma-separated text shown to people; run_tags is filled from it, one
row per tag. runs.machine is filled from the latest event naming a machine (the `started`
event's "; machine: " suffix, or an import's).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_run_tags_machine"
down_revision = "0004_pack_id"
branch_labels = None
depends_on = None

# Frozen here as it was written at this revision (fino.provenance.MACHINE_MARK).
MACHINE_MARK = "; machine: "


def upgrade() -> None:
    run_tags = op.create_table(
        "run_tags",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "tag"),
    )
    op.create_index("ix_run_tags_tag", "run_tags", ["tag"])
    # Nullable, no server default: ALTER TABLE ADD COLUMN in place on SQLite too.
    op.add_column("runs", sa.Column("machine", sa.String(length=500), nullable=True))

    bind = op.get_bind()
    runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("tags", sa.String),
                    sa.column("machine", sa.String))
    events = sa.table("events", sa.column("id", sa.Integer), sa.column("run_id", sa.Integer),
                      sa.column("message", sa.Text))
    rows = [{"run_id": run_id, "tag": tag}
            for run_id, text in bind.execute(sa.select(runs.c.id, runs.c.tags))
            for tag in dict.fromkeys(t.strip() for t in (text or "").split(",")) if tag]
    if rows:
        bind.execute(run_tags.insert(), rows)
    machines: dict[int, str] = {}
    for run_id, message in bind.execute(
            sa.select(events.c.run_id, events.c.message)
            .where(events.c.run_id.is_not(None), events.c.message.contains(MACHINE_MARK))
            .order_by(events.c.id)):
        if name := message.split(MACHINE_MARK, 1)[1].strip():
            machines[run_id] = name[:500]
    if machines:
        bind.execute(runs.update().where(runs.c.id == sa.bindparam("run"))
                     .values(machine=sa.bindparam("name")),
                     [{"run": run_id, "name": name} for run_id, name in machines.items()])


def downgrade() -> None:
    # runs.tags was kept in step with run_tags, so dropping the table loses nothing. Not batch
    # mode for the column (see 0002): SQLite >= 3.35 drops an unindexed column in place.
    op.drop_column("runs", "machine")
    op.drop_index("ix_run_tags_tag", table_name="run_tags")
    op.drop_table("run_tags")
