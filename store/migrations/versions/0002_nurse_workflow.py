"""Nurse workflow: alerts and their transitions, the audit log, API tokens, watch rules, per-bed thresholds,
the latest waveform per bed and epoch embeddings (plain-language search).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(256), primary_key=True),
        sa.Column("bed_id", sa.String(128), nullable=False),
        sa.Column("recording_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(160), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("raised_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("escalated_at", sa.Double(), nullable=True),
        sa.Column("acknowledged_by", sa.String(128), nullable=True),
        sa.Column("acknowledged_at", sa.Double(), nullable=True),
        sa.Column("resolved_at", sa.Double(), nullable=True),
        sa.Column("stored_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_alerts_state_bed", "alerts", ["state", "bed_id"])
    op.create_index("ix_alerts_bed_raised", "alerts", ["bed_id", "raised_at"])

    op.create_table(
        "alert_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.String(256), nullable=False),
        sa.Column("bed_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("alert", sa.JSON(), nullable=False),
        sa.Column("stored_at", sa.Double(), nullable=False),
        sa.UniqueConstraint("alert_id", "kind", "at", name="uq_alert_events_natural"),
    )
    op.create_index("ix_alert_events_bed_id", "alert_events", ["bed_id", "id"])

    op.create_table(
        "audit_log",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
    )

    op.create_table(
        "api_tokens",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.Column("last_used_at", sa.Double(), nullable=True),
    )

    op.create_table(
        "watch_rules",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("bed_id", sa.String(128), nullable=True),
        sa.Column("min_duration_s", sa.Double(), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=True),
        sa.Column("calibration", sa.JSON(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("deleted_at", sa.Double(), nullable=True),
    )

    op.create_table(
        "bed_thresholds",
        sa.Column("bed_id", sa.String(128), primary_key=True),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
    )

    op.create_table(
        "waveforms",
        sa.Column("bed_id", sa.String(128), primary_key=True),
        sa.Column("recording_id", sa.String(128), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("start_time", sa.Double(), nullable=False),
        sa.Column("fs", sa.Double(), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("stored_at", sa.Double(), nullable=False),
    )

    op.create_table(
        "embeddings",
        sa.Column("bed_id", sa.String(128), primary_key=True),
        sa.Column("recording_id", sa.String(128), primary_key=True),
        sa.Column("epoch", sa.Integer(), primary_key=True),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "embeddings",
        "waveforms",
        "bed_thresholds",
        "watch_rules",
        "api_tokens",
        "audit_log",
        "alert_events",
        "alerts",
    ):
        op.drop_table(table)
