"""The live stage head's per-epoch measurements of real beds, so a worker that takes a bed over mid-night
(restart, rebalance) resumes its history instead of starting it again.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stage_measurements",
        sa.Column("bed_id", sa.String(128), primary_key=True),
        sa.Column("recording_id", sa.String(128), primary_key=True),
        sa.Column("epoch", sa.Integer(), primary_key=True),
        sa.Column("measurements", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("stage_measurements")
