"""Response models of the API: the OpenAPI schema is generated from these, so they are the contract.

Field lists follow the issue exactly (beds, epochs); extra store columns stay out of the responses.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from psg.contracts import Captions  # the five caption levels: one definition for producers, store and API

#: Largest row id a path or query parameter may name: the store's ids are 64-bit (a larger int overflows the
#: database driver, which would answer 500 instead of 404).
MAX_ID = 2**63 - 1


class Health(BaseModel):
    status: Literal["ok", "unavailable"] = Field(description="'ok' when the store answers")
    version: str = Field(description="version of the sleeplm package serving the API")
    store: str = Field(description="'ok', or why the store cannot be reached")


class Bed(BaseModel):
    bed_id: str
    recording_id: str = Field(description="the bed's latest recording (the night being monitored)")
    status: Literal["live", "stale"] = Field(description="'stale' when no epoch was stored for stale_after_s")
    last_epoch: int = Field(ge=0, description="index of the latest stored epoch (0 = first 30 s)")
    stage: str = Field(description="stage of the latest epoch: W, N1, N2, N3, R or ?")
    updated_at: float = Field(description="when the latest epoch was stored (Unix seconds)")


class Epoch(BaseModel):
    epoch: int = Field(ge=0, description="index from the recording start (epoch n starts 30 n s after it)")
    start_time: float = Field(description="device time of the epoch start (Unix seconds)")
    stage: str = Field(description="W, N1, N2, N3, R or ? (undetermined)")
    captions: Captions
    features: dict[str, Any] = Field(description="measured per-epoch features (psg.features)")
    quality: dict[str, list[str]] = Field(
        description="quality flags per channel (missing, flat, clipped, noisy, gap; band_limited: usable, "
        "sampled under 64 Hz); empty = good"
    )


class Hypnogram(BaseModel):
    bed_id: str
    recording_id: str
    epoch_s: float = Field(gt=0, description="epoch length in seconds")
    start_time: float = Field(description="device time of epoch 0 (Unix seconds)")
    stages: list[str] = Field(description="stage per epoch index from 0 to the latest; '?' = not stored")


class StreamEpoch(BaseModel):
    """``event: epoch`` of the live feed: a newly stored epoch."""

    bed_id: str
    recording_id: str
    epoch: int
    start_time: float
    epoch_s: float
    stage: str
    stage_source: str | None
    captions: Captions
    features: dict[str, Any]
    quality: dict[str, list[str]]
    events: list[dict[str, Any]] = Field(description="events detected in the epoch (onset_s from recording start)")


class StreamDevice(BaseModel):
    """``event: device`` of the live feed: a device stream was lost or resumed, or the bridge spool overflowed."""

    bed_id: str
    recording_id: str
    stream: str
    type: str = Field(description="stream_lost, stream_resumed or spool_overflow")
    at: float = Field(description="when it happened (Unix seconds)")
    detail: str


class Error(BaseModel):
    detail: str


class StreamAlert(BaseModel):
    """``event: alert`` of the live feed: an alert after one of its transitions."""

    id: str
    bed_id: str
    recording_id: str
    type: str
    priority: Literal["high", "medium", "low", "advisory"]
    state: Literal["raised", "acknowledged", "resolved"]
    transition: Literal["raised", "updated", "acknowledged", "escalated", "resolved"]
    raised_at: float
    updated_at: float
    evidence: dict[str, Any]
    escalated: bool
    acknowledged_by: str | None
    acknowledged_at: float | None
    resolved_at: float | None


class Alert(BaseModel):
    id: str = Field(description="<bed>:<type>:<device second it was raised>")
    bed_id: str
    recording_id: str
    type: str = Field(
        description="spo2_critical, desaturation, bradycardia, tachycardia, asystole, apnea_cluster, "
        "respiratory_event, technical:<spo2|cardiac|respiratory|stream>, advisory:<event>, watch:<rule id>"
    )
    priority: Literal["high", "medium", "low", "advisory"]
    state: Literal["raised", "acknowledged", "resolved"]
    raised_at: float = Field(description="device time the condition met its onset delay (Unix s)")
    updated_at: float
    evidence: dict[str, Any] = Field(description="start/end (Unix s), count of merged repeats, values, caption")
    escalated: bool = Field(description="a high alert left unacknowledged past the escalation delay")
    escalated_at: float | None
    acknowledged_by: str | None
    acknowledged_at: float | None
    resolved_at: float | None


class Me(BaseModel):
    name: str
    role: Literal["viewer", "nurse", "admin"]


class WardTopAlert(BaseModel):
    id: str
    type: str
    priority: Literal["high", "medium", "low", "advisory"]
    state: Literal["raised", "acknowledged"]
    escalated: bool
    raised_at: float


class WardBed(Bed):
    """A tile of the ward view."""

    caption: str | None = Field(description="the latest stage_event caption")
    spo2: float | None = Field(description="mean SpO2 (%) of the latest epoch")
    hr: float | None = Field(description="heart rate (bpm) of the latest epoch")
    bad_channels: list[str] = Field(
        description="channels with a fault flag in the latest epoch (band_limited is not a fault)"
    )
    active_alerts: int
    top_alert: WardTopAlert | None = Field(description="the highest-priority active alert")


class NightEvent(BaseModel):
    type: str
    onset_s: float = Field(description="seconds from the recording start")
    duration_s: float
    channel: str | None = None


class NightEvents(BaseModel):
    bed_id: str
    recording_id: str
    start_time: float
    events: list[NightEvent]
    alerts: list[Alert] = Field(description="every alert of the recording, newest first")


class Waveform(BaseModel):
    bed_id: str
    recording_id: str
    epoch: int
    start_time: float
    fs: float = Field(description="samples per second of each trace")
    channels: list[str]
    signals: list[list[float]] = Field(description="per channel, robust z-scored (model input), downsampled")


class QueryMatch(BaseModel):
    epoch: int
    start_time: float
    score: float
    stage: str
    caption: str


class QueryResult(BaseModel):
    bed_id: str
    recording_id: str
    query: str
    method: Literal["model", "text", "latest"] = Field(
        description="'model': SleepLM joint-space similarity over the calibrated threshold; 'text': what the "
        "captions state (no embeddings); 'latest': a question about one body system, its newest epochs"
    )
    level: str = Field("stage_event", description="the caption level each match's caption is taken from")
    matches: list[QueryMatch]


class ThresholdValues(BaseModel):
    """A bed's own alert limits; fields left out keep the ward defaults. Limits outside what a monitor could
    mean (SpO2 50-100 %, heart rate 20-250 bpm, onsets 1 s to 1 h) and non-finite numbers are a 422."""

    model_config = {"extra": "forbid", "allow_inf_nan": False}

    spo2_critical: float | None = Field(
        default=None, ge=50, le=100, description="SpO2 % below which a high alert raises (80)"
    )
    spo2_critical_onset_s: float | None = Field(default=None, ge=1, le=3600, description="seconds it must last (15)")
    spo2_low: float | None = Field(
        default=None, ge=50, le=100, description="SpO2 % below which a desaturation raises (88)"
    )
    spo2_low_onset_s: float | None = Field(default=None, ge=1, le=3600, description="seconds it must last (15)")
    brady_bpm: float | None = Field(
        default=None, ge=20, le=250, description="heart rate below which a high alert raises (40)"
    )
    brady_onset_s: float | None = Field(default=None, ge=1, le=3600, description="seconds it must last (10)")
    tachy_bpm: float | None = Field(
        default=None, ge=20, le=250, description="heart rate above which a high alert raises (150)"
    )
    tachy_onset_s: float | None = Field(default=None, ge=1, le=3600, description="seconds it must last (10)")


class BedThresholds(BaseModel):
    bed_id: str
    values: dict[str, float] = Field(description="the bed's own limits (empty: the defaults)")
    effective: dict[str, float] = Field(description="the limits that apply, defaults included")
    updated_by: str | None
    updated_at: float | None


class RuleCreate(BaseModel):
    model_config = {"extra": "forbid", "allow_inf_nan": False}

    text: str = Field(min_length=1, max_length=300, examples=["REM with oxygen desaturation"])
    bed_id: str | None = Field(default=None, min_length=1, max_length=128, description="null: the whole ward")
    min_duration_s: float = Field(default=30.0, gt=0, le=43200, description="how long the finding must hold")
    threshold: float | None = Field(default=None, ge=-1, le=1, description="override of the calibrated threshold")
    enabled: bool = True


class RuleUpdate(BaseModel):
    """The fields to change; a field left out keeps its value. ``bed_id`` and ``threshold`` may be set to
    null (the whole ward, the calibrated threshold); ``text``, ``min_duration_s`` and ``enabled`` may not
    (the columns are NOT NULL: a null reached the database as an IntegrityError, a 500). The constraints sit
    on the non-null member of each union: on the union itself pydantic applied ``min_length`` to a null and
    raised a TypeError (a 500)."""

    model_config = {"extra": "forbid", "allow_inf_nan": False}

    text: Annotated[str, Field(min_length=1, max_length=300)] | SkipJsonSchema[None] = None
    bed_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    min_duration_s: Annotated[float, Field(gt=0, le=43200)] | SkipJsonSchema[None] = None
    threshold: Annotated[float, Field(ge=-1, le=1)] | None = None
    enabled: bool | SkipJsonSchema[None] = None

    @field_validator("text", "min_duration_s", "enabled")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:  # only an explicit null gets here: defaults are not validated
            raise ValueError("may not be null; leave the field out to keep its value")
        return value


class Rule(BaseModel):
    id: int
    text: str
    bed_id: str | None
    min_duration_s: float
    threshold: float | None = Field(description="operator override; null = the calibrated one applies")
    calibration: dict[str, Any] | None = Field(
        description="what the worker calibrated (threshold, method, bank F1, concepts); null until a worker ran it"
    )
    enabled: bool
    created_by: str
    created_at: float
    updated_at: float


class TokenCreate(BaseModel):
    model_config = {"extra": "forbid", "allow_inf_nan": False}

    name: str = Field(min_length=1, max_length=128, description="who holds it, e.g. 'night-nurse-ward-3'")
    role: Literal["viewer", "nurse", "admin"]


class Token(BaseModel):
    id: int
    name: str
    role: Literal["viewer", "nurse", "admin"]
    created_at: float
    created_by: str
    revoked_at: float | None
    last_used_at: float | None


class TokenCreated(Token):
    token: str = Field(description="the bearer token, shown this once (only its hash is stored)")


class AuditEntry(BaseModel):
    id: int
    at: float
    actor: str
    role: str
    action: str
    target: str
    detail: dict[str, Any]
