"""``GET /metrics``: Prometheus exposition of the live path (all local processes under ``sleeplm up``)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse

from dashboards.api.deps import LagDep
from services.metrics import render_latest

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
    summary="Prometheus metrics",
)
def prometheus_metrics(lag: LagDep) -> Response:
    if lag is not None:
        lag.refresh()
    body, content_type = render_latest()
    return Response(content=body, media_type=content_type)
