"""Response models of the API: the OpenAPI schema is generated from these, so they are the contract.

Field lists follow the issue exactly (beds, epochs); extra store columns stay out of the responses.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


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


class Captions(BaseModel):
    stage_event: str
    brain: str
    cardiac: str
    respiratory: str
    somatic: str


class Epoch(BaseModel):
    epoch: int = Field(ge=0, description="index from the recording start (epoch n starts 30 n s after it)")
    start_time: float = Field(description="device time of the epoch start (Unix seconds)")
    stage: str = Field(description="W, N1, N2, N3, R or ? (undetermined)")
    captions: Captions
    features: dict[str, Any] = Field(description="measured per-epoch features (psg.features)")
    quality: dict[str, list[str]] = Field(
        description="quality flags per channel (missing, flat, clipped, noisy, gap); empty = good"
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
