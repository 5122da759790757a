"""``GET /metrics``: Prometheus exposition of the live path (all local processes under ``sleeplm up``).

Needs a token like every route but health (Prometheus sends one: ``authorization.credentials_file`` in
``dashboards/prometheus/prometheus.yml``). Each scrape also counts the beds live and stale from the store.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from dashboards.api.deps import LagDep, SettingsDep
from dashboards.api.security import Viewer
from plumbing.metrics import metrics, render_latest

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
    summary="Prometheus metrics",
)
def prometheus_metrics(request: Request, lag: LagDep, settings: SettingsDep, _: Viewer) -> Response:
    if lag is not None:
        lag.refresh()
    try:
        statuses = [b["status"] for b in request.app.state.store_provider.get().beds(settings.stale_after_s)]
    except Exception:  # the store down: metrics must still be served (health reports the store)
        statuses = None
    if statuses is not None:
        for status in ("live", "stale"):
            metrics().beds.labels(status).set(statuses.count(status))
    body, content_type = render_latest()
    return Response(content=body, media_type=content_type)
