"""Fence every claim: runs.attempt_token, a fresh random token per claim (nullable).

Revision ID: 0003_attempt_token
Revises: 0002_study_trial
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_attempt_token"
down_revision = "0002_study_trial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column without a server default: ALTER TABLE ADD COLUMN in place on SQLite too;
    # existing rows read NULL (no attempt holds them; a running one is reaped as before).
    op.add_column("runs", sa.Column("attempt_token", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "attempt_token")
