"""Initial schema: recordings, epochs (cursor id, unique per bed/recording/epoch), device events.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("bed_id", sa.String(128), primary_key=True),
        sa.Column("recording_id", sa.String(128), primary_key=True),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("first_seen_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_recordings_bed_started", "recordings", ["bed_id", "started_at"])

    op.create_table(
        "epochs",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("bed_id", sa.String(128), nullable=False),
        sa.Column("recording_id", sa.String(128), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("start_time", sa.Double(), nullable=False),
        sa.Column("epoch_s", sa.Double(), nullable=False),
        sa.Column("stage", sa.String(8), nullable=False),
        sa.Column("stage_source", sa.String(32), nullable=True),
        sa.Column("probabilities", sa.JSON(), nullable=True),
        sa.Column("captions", sa.JSON(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("quality", sa.JSON(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("advisories", sa.JSON(), nullable=False),
        sa.Column("runtime", sa.String(64), nullable=True),
        sa.Column("end_received_at", sa.Double(), nullable=True),
        sa.Column("stored_at", sa.Double(), nullable=False),
        sa.Column("latency_s", sa.Double(), nullable=True),
        sa.UniqueConstraint("bed_id", "recording_id", "epoch", name="uq_epochs_bed_recording_epoch"),
        sa.ForeignKeyConstraint(
            ["bed_id", "recording_id"],
            ["recordings.bed_id", "recordings.recording_id"],
            name="fk_epochs_recording",
        ),
    )
    op.create_index("ix_epochs_bed_id", "epochs", ["bed_id", "id"])

    op.create_table(
        "device_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("bed_id", sa.String(128), nullable=False),
        sa.Column("recording_id", sa.String(128), nullable=False),
        sa.Column("stream", sa.String(64), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("stored_at", sa.Double(), nullable=False),
        sa.UniqueConstraint("bed_id", "recording_id", "stream", "type", "at", name="uq_device_events_natural"),
    )
    op.create_index("ix_device_events_bed_id", "device_events", ["bed_id", "id"])


def downgrade() -> None:
    op.drop_table("device_events")
    op.drop_table("epochs")
    op.drop_table("recordings")
