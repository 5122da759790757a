"""The ward and its beds: overview tiles, a bed's epochs, hypnogram, events, last waveform, plain-language
search, and its alert thresholds."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, HTTPException, Path, Query, Request, status

from dashboards.api.deps import SettingsDep, StoreDep
from dashboards.api.schemas import (
    Bed,
    BedThresholds,
    Epoch,
    Error,
    Hypnogram,
    NightEvents,
    QueryResult,
    ThresholdValues,
    WardBed,
    Waveform,
)
from dashboards.api.security import Admin, Viewer
from psg.alerts.catalog import AlertError, Thresholds, bed_thresholds
from psg.codecs import MAX_EPOCH

router = APIRouter(prefix="/api", tags=["beds"])

BedId = Annotated[str, Path(min_length=1, max_length=128, description="bed id as the bridge sends it")]
RecordingId = Annotated[
    str | None,
    Query(alias="recording", min_length=1, max_length=128, description="a recording of the bed; default: the latest"),
]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Error, "description": "The store has no epoch of this bed (or recording)"}
}


@router.get("/beds", response_model=list[Bed], summary="Every bed with its latest recording")
def list_beds(store: StoreDep, settings: SettingsDep, _: Viewer) -> list[dict]:
    return store.beds(stale_after_s=settings.stale_after_s)


@router.get("/ward", response_model=list[WardBed], summary="The ward view: one tile per bed")
def ward(store: StoreDep, settings: SettingsDep, _: Viewer) -> list[dict]:
    return store.ward(stale_after_s=settings.stale_after_s)


@router.get(
    "/beds/{bed_id}/epochs", response_model=list[Epoch], responses=NOT_FOUND, summary="A bed's captioned epochs"
)
def bed_epochs(
    store: StoreDep,
    _: Viewer,
    bed_id: BedId,
    since: Annotated[int, Query(ge=0, le=MAX_EPOCH, description="first epoch index to return")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="most epochs to return")] = 100,
    recording_id: RecordingId = None,
) -> list[dict]:
    return store.epochs(bed_id, since=since, limit=limit, recording_id=recording_id)


@router.get("/beds/{bed_id}/hypnogram", response_model=Hypnogram, responses=NOT_FOUND, summary="A bed's hypnogram")
def bed_hypnogram(store: StoreDep, _: Viewer, bed_id: BedId, recording_id: RecordingId = None) -> dict:
    return store.hypnogram(bed_id, recording_id=recording_id)


@router.get(
    "/beds/{bed_id}/events",
    response_model=NightEvents,
    responses=NOT_FOUND,
    summary="The night's detected events and alerts (the bed view's timeline)",
)
def bed_events(store: StoreDep, _: Viewer, bed_id: BedId, recording_id: RecordingId = None) -> dict:
    night = store.hypnogram(bed_id, recording_id=recording_id)
    recording = night["recording_id"]
    alerts = [a for a in store.alerts("all", bed_id=bed_id, limit=1000) if a["recording_id"] == recording]
    return {
        "bed_id": bed_id,
        "recording_id": recording,
        "start_time": night["start_time"],
        "events": store.night_events(bed_id, recording),
        "alerts": sorted(alerts, key=lambda a: -a["raised_at"]),
    }


@router.get(
    "/beds/{bed_id}/waveform",
    response_model=Waveform,
    responses={404: {"model": Error, "description": "No waveform stored for this bed"}},
    summary="The latest epoch's traces (model montage, z-scored, downsampled)",
)
def bed_waveform(store: StoreDep, _: Viewer, bed_id: BedId) -> dict:
    wave = store.waveform(bed_id)
    if wave is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no waveform stored for bed {bed_id!r}")
    return wave


@router.get(
    "/beds/{bed_id}/query",
    response_model=QueryResult,
    responses=NOT_FOUND,
    summary="Plain-language search over the bed's night",
)
async def bed_query(
    request: Request,
    store: StoreDep,
    _: Viewer,
    bed_id: BedId,
    q: Annotated[str, Query(min_length=1, max_length=300, description="what to look for, in plain language")],
    top: Annotated[int, Query(ge=1, le=100)] = 10,
    recording_id: RecordingId = None,
) -> dict:
    recording = (await anyio.to_thread.run_sync(store.hypnogram, bed_id, recording_id))["recording_id"]
    search = request.app.state.search
    return await anyio.to_thread.run_sync(search.search, store, bed_id, recording, q, top)


def _thresholds(bed_id: str, stored: dict | None) -> dict:
    values = dict(stored["values"]) if stored else {}
    return {
        "bed_id": bed_id,
        "values": values,
        "effective": asdict(bed_thresholds(values)),
        "updated_by": stored["updated_by"] if stored else None,
        "updated_at": stored["updated_at"] if stored else None,
    }


@router.get("/beds/{bed_id}/thresholds", response_model=BedThresholds, summary="A bed's alert limits")
def get_thresholds(store: StoreDep, _: Viewer, bed_id: BedId) -> dict:
    return _thresholds(bed_id, store.thresholds().get(bed_id))


@router.put(
    "/beds/{bed_id}/thresholds",
    response_model=BedThresholds,
    responses={422: {"model": Error, "description": "Values that make no sense together"}},
    summary="Set a bed's own alert limits (admin); {} restores the defaults; audited",
)
def put_thresholds(store: StoreDep, principal: Admin, bed_id: BedId, body: ThresholdValues) -> dict:
    values = body.model_dump(exclude_none=True)
    try:
        bed_thresholds(values, Thresholds())
    except AlertError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    store.set_thresholds(bed_id, values, by=principal.name, role=principal.role)
    return _thresholds(bed_id, store.thresholds().get(bed_id))
