"""The store's tables as SQLAlchemy 2 typed declarative models (the schema itself is made by migrations).

Times are Unix seconds as floats (device clock for ``start_time``/``started_at``/``at``, the storing
host's wall clock for ``stored_at``/``first_seen_at``), the way every message of the live path carries
them. Epoch content that is only ever read back whole (captions, features, quality flags, events) is
JSON; the columns the API filters and sorts on are real columns with indexes.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: BIGINT on PostgreSQL, INTEGER on SQLite (only ``INTEGER PRIMARY KEY`` autoincrements there).
IdType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    #: Every model is one plain table, so ``Model.__table__`` has ``insert``/``update``/``delete``
    #: (SQLAlchemy types it as any FROM clause).
    __table__: ClassVar[Table]


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


class AlertRow(Base):
    """The current state of one nurse alert (``psg.alerts``); its history is in ``alert_events``.

    Written by the alert agent (every transition) and by the API (acknowledgements). State only moves
    forward (raised -> acknowledged -> resolved), whichever writer comes second, so a replayed or late
    transition never undoes a nurse's acknowledgement.
    """

    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(256), primary_key=True)
    bed_id: Mapped[str] = mapped_column(String(128))
    recording_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(160))
    priority: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    raised_at: Mapped[float] = mapped_column(Double, doc="device time the condition met its onset delay")
    updated_at: Mapped[float] = mapped_column(Double)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    escalated_at: Mapped[float | None] = mapped_column(Double)
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    acknowledged_at: Mapped[float | None] = mapped_column(Double)
    resolved_at: Mapped[float | None] = mapped_column(Double)
    stored_at: Mapped[float] = mapped_column(Double)

    __table_args__ = (
        Index("ix_alerts_state_bed", "state", "bed_id"),
        Index("ix_alerts_bed_raised", "bed_id", "raised_at"),
    )


class AlertEventRow(Base):
    """One transition of one alert (raised, updated, acknowledged, escalated, resolved), with the alert as it
    was then. ``id`` is the live feed's alert cursor; (alert, kind, at) is unique so replays are ignored."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(256))
    bed_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[float] = mapped_column(Double)
    alert: Mapped[dict[str, Any]] = mapped_column(JSON)
    stored_at: Mapped[float] = mapped_column(Double)

    __table_args__ = (
        UniqueConstraint("alert_id", "kind", "at", name="uq_alert_events_natural"),
        Index("ix_alert_events_bed_id", "bed_id", "id"),
    )


class AuditRow(Base):
    """Who did what, when: acknowledgements, watch-rule and threshold changes, token creation and revocation.
    Append-only; ``at`` is the API host's wall clock."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Double)
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(256))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class ApiTokenRow(Base):
    """A bearer token of the API: only its SHA-256 is kept (the token itself is shown once, at creation)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Double)
    created_by: Mapped[str] = mapped_column(String(128))
    revoked_at: Mapped[float | None] = mapped_column(Double)
    last_used_at: Mapped[float | None] = mapped_column(Double)


class WatchRuleRow(Base):
    """A plain-language watch rule for one bed (``bed_id``) or the whole ward (``bed_id`` NULL).

    Deleting a rule keeps the row (``deleted_at``) so the advisories it raised stay explainable."""

    __tablename__ = "watch_rules"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    text: Mapped[str] = mapped_column(Text)
    bed_id: Mapped[str | None] = mapped_column(String(128))
    min_duration_s: Mapped[float] = mapped_column(Double)
    threshold: Mapped[float | None] = mapped_column(Double, doc="operator override of the calibrated threshold")
    calibration: Mapped[dict[str, Any] | None] = mapped_column(JSON, doc="written by the worker that compiled it")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)
    deleted_at: Mapped[float | None] = mapped_column(Double)


class BedThresholdsRow(Base):
    """A bed's own alert limits (fields of ``psg.alerts.Thresholds`` that differ from the defaults)."""

    __tablename__ = "bed_thresholds"

    bed_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    values: Mapped[dict[str, float]] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[float] = mapped_column(Double)


class WaveformRow(Base):
    """The latest epoch's model-montage traces of each bed (float16, downsampled) for the bed view."""

    __tablename__ = "waveforms"

    bed_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    recording_id: Mapped[str] = mapped_column(String(128))
    epoch: Mapped[int] = mapped_column(Integer)
    start_time: Mapped[float] = mapped_column(Double)
    fs: Mapped[float] = mapped_column(Double)
    channels: Mapped[list[str]] = mapped_column(JSON)
    data: Mapped[bytes] = mapped_column(LargeBinary, doc="float16 little-endian, channels x samples")
    stored_at: Mapped[float] = mapped_column(Double)


class EmbeddingRow(Base):
    """An epoch's unit vector in SleepLM's joint space (float32): plain-language search over a night."""

    __tablename__ = "embeddings"

    bed_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    recording_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary, doc="float32 little-endian")


class StageMeasurementRow(Base):
    """A real bed's epoch as the live stage head measured it (``EpochMessage.stage_measurements``): the
    history a worker that takes the bed over mid-night resumes from (``store.stage_history_store``)."""

    __tablename__ = "stage_measurements"

    bed_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    recording_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    measurements: Mapped[dict[str, Any]] = mapped_column(JSON)
