"""The ward: ``GET /api/beds``, a bed's epochs and its hypnogram."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from dashboards.api.deps import SettingsDep, StoreDep
from dashboards.api.schemas import Bed, Epoch, Error, Hypnogram

router = APIRouter(prefix="/api/beds", tags=["beds"])

BedId = Annotated[str, Path(min_length=1, max_length=128, description="bed id as the bridge sends it")]
RecordingId = Annotated[
    str | None,
    Query(alias="recording", min_length=1, max_length=128, description="a recording of the bed; default: the latest"),
]
NOT_FOUND = {404: {"model": Error, "description": "The store has no epoch of this bed (or recording)"}}


@router.get("", response_model=list[Bed], summary="Every bed with its latest recording")
def list_beds(store: StoreDep, settings: SettingsDep) -> list[dict]:
    return store.beds(stale_after_s=settings.stale_after_s)


@router.get("/{bed_id}/epochs", response_model=list[Epoch], responses=NOT_FOUND, summary="A bed's captioned epochs")
def bed_epochs(
    store: StoreDep,
    bed_id: BedId,
    since: Annotated[int, Query(ge=0, description="first epoch index to return")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="most epochs to return")] = 100,
    recording_id: RecordingId = None,
) -> list[dict]:
    return store.epochs(bed_id, since=since, limit=limit, recording_id=recording_id)


@router.get("/{bed_id}/hypnogram", response_model=Hypnogram, responses=NOT_FOUND, summary="A bed's hypnogram")
def bed_hypnogram(store: StoreDep, bed_id: BedId, recording_id: RecordingId = None) -> dict:
    return store.hypnogram(bed_id, recording_id=recording_id)
