"""Link runs to tuning studies: runs.study (indexed) and runs.trial, both nullable.

Revision ID: 0002_study_trial
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_study_trial"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns without server defaults: a plain ALTER TABLE ADD COLUMN on SQLite too, so
    # existing rows keep their place and read NULL (batch mode would not rebuild here either).
    op.add_column("runs", sa.Column("study", sa.String(length=200), nullable=True))
    op.add_column("runs", sa.Column("trial", sa.Integer(), nullable=True))
    op.create_index("ix_runs_study", "runs", ["study"])


def downgrade() -> None:
    # Not batch mode: its table rebuild on SQLite would DROP TABLE runs, which with foreign keys
    # on cascades into metrics and events. SQLite >= 3.35 drops an unindexed column in place.
    op.drop_index("ix_runs_study", table_name="runs")
    op.drop_column("runs", "trial")
    op.drop_column("runs", "study")
