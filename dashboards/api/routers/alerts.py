"""Alerts: the active list (or history) and a nurse's acknowledgement."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from dashboards.api.deps import StoreDep
from dashboards.api.schemas import Alert, Error
from dashboards.api.security import Nurse, Viewer

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

AlertId = Annotated[str, Path(min_length=1, max_length=256, description="alert id")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Error, "description": "No such alert"}}


@router.get("", response_model=list[Alert], summary="Alerts, highest priority and unacknowledged first")
def list_alerts(
    store: StoreDep,
    _: Viewer,
    state: Annotated[
        Literal["active", "raised", "acknowledged", "resolved", "all"],
        Query(description="'active' = raised or acknowledged"),
    ] = "active",
    bed: Annotated[str | None, Query(min_length=1, max_length=128, description="only this bed")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict]:
    return store.alerts(state, bed_id=bed, limit=limit)


@router.get("/{alert_id}", response_model=Alert, responses=NOT_FOUND, summary="One alert")
def get_alert(store: StoreDep, _: Viewer, alert_id: AlertId) -> dict:
    return store.alert(alert_id)


@router.post(
    "/{alert_id}/ack",
    response_model=Alert,
    responses={**NOT_FOUND, 409: {"model": Error, "description": "Already acknowledged or resolved"}},
    summary="Acknowledge an alert (nurse or admin); audited",
)
def acknowledge(store: StoreDep, principal: Nurse, alert_id: AlertId) -> dict:
    return store.acknowledge_alert(alert_id, principal.name, principal.role)
