"""The store's tables as SQLAlchemy 2 typed declarative models (the schema itself is made by migrations).

Times are Unix seconds as floats (device clock for ``start_time``/``started_at``/``at``, the storing
host's wall clock for ``stored_at``/``first_seen_at``), the way every message of the live path carries
them. Epoch content that is only ever read back whole (captions, features, quality flags, events) is
JSON; the columns the API filters and sorts on are real columns with indexes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: BIGINT on PostgreSQL, INTEGER on SQLite (only ``INTEGER PRIMARY KEY`` autoincrements there).
IdType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class RecordingRow(Base):
    """One recording (night) of one bed; a bed's latest recording is the one the ward overview shows."""

    __tablename__ = "recordings"

    bed_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    recording_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    started_at: Mapped[float] = mapped_column(Double, doc="device time of the first sample (epoch 0 start)")
    first_seen_at: Mapped[float] = mapped_column(Double, doc="when the store first got an epoch of it")

    __table_args__ = (Index("ix_recordings_bed_started", "bed_id", "started_at"),)


class EpochRow(Base):
    """One captioned 30-s epoch. ``id`` grows with every insert and is the live feed's cursor."""

    __tablename__ = "epochs"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    bed_id: Mapped[str] = mapped_column(String(128))
    recording_id: Mapped[str] = mapped_column(String(128))
    epoch: Mapped[int] = mapped_column(Integer)
    start_time: Mapped[float] = mapped_column(Double)
    epoch_s: Mapped[float] = mapped_column(Double)
    stage: Mapped[str] = mapped_column(String(8))
    stage_source: Mapped[str | None] = mapped_column(String(32))
    probabilities: Mapped[list[float] | None] = mapped_column(JSON)
    captions: Mapped[dict[str, str]] = mapped_column(JSON)
    features: Mapped[dict[str, Any]] = mapped_column(JSON)
    quality: Mapped[dict[str, list[str]]] = mapped_column(JSON)
    events: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    advisories: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    runtime: Mapped[str | None] = mapped_column(String(64))
    end_received_at: Mapped[float | None] = mapped_column(Double)
    stored_at: Mapped[float] = mapped_column(Double)
    latency_s: Mapped[float | None] = mapped_column(Double)

    __table_args__ = (
        UniqueConstraint("bed_id", "recording_id", "epoch", name="uq_epochs_bed_recording_epoch"),
        ForeignKeyConstraint(
            ["bed_id", "recording_id"],
            ["recordings.bed_id", "recordings.recording_id"],
            name="fk_epochs_recording",
        ),
        Index("ix_epochs_bed_id", "bed_id", "id"),
    )


class DeviceEventRow(Base):
    """A technical event of a bed's device stream (lost, resumed, spool overflow), as the bridge saw it."""

    __tablename__ = "device_events"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    bed_id: Mapped[str] = mapped_column(String(128))
    recording_id: Mapped[str] = mapped_column(String(128))
    stream: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))
    at: Mapped[float] = mapped_column(Double)
    detail: Mapped[str] = mapped_column(Text)
    stored_at: Mapped[float] = mapped_column(Double)

    __table_args__ = (
        UniqueConstraint("bed_id", "recording_id", "stream", "type", "at", name="uq_device_events_natural"),
        Index("ix_device_events_bed_id", "bed_id", "id"),
    )
