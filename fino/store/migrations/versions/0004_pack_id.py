"""Pack claims: runs.pack_id (indexed, nullable), shared by the runs one process trains together.

Revision ID: 0004_pack_id
Revises: 0003_attempt_token
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_pack_id"
down_revision = "0003_attempt_token"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column without a server default: ALTER TABLE ADD COLUMN in place on SQLite too;
    # existing rows read NULL (each ran alone).
    op.add_column("runs", sa.Column("pack_id", sa.String(length=32), nullable=True))
    op.create_index("ix_runs_pack_id", "runs", ["pack_id"])


def downgrade() -> None:
    # Not batch mode (its rebuild of runs would cascade into metrics and events; see 0002):
    # SQLite >= 3.35 drops the column in place once its index is gone.
    op.drop_index("ix_runs_pack_id", table_name="runs")
    op.drop_column("runs", "pack_id")
