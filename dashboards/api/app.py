"""The FastAPI application: ``create_app(settings)`` wires routers, dependencies and error handlers.

Read-only over the store (the sink is the only writer); ``/metrics`` also reports consumer lag when
a broker is configured. The live feed's item schema (epoch and device events) is added to the
OpenAPI document here, because an SSE response's data is described per event, not by a return type.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic.json_schema import models_json_schema

from dashboards.api.deps import StoreProvider, StoreUnavailable
from dashboards.api.lag import ConsumerLag
from dashboards.api.routers import beds, health, metrics, stream
from dashboards.api.routers.health import package_version
from dashboards.api.schemas import StreamDevice, StreamEpoch
from services.metrics import metrics as live_metrics
from services.settings import Settings
from store import UnknownBed

STREAM_PATH = "/api/stream"


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API over the store of ``settings`` (default: ``Settings()`` from the environment)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            app.state.store_provider.get()  # open (and migrate) now if we can; health reports it if not
        except StoreUnavailable:
            pass
        yield
        app.state.closing.set()
        if app.state.lag is not None:
            app.state.lag.close()
        app.state.store_provider.close()

    app = FastAPI(
        title="SleepLM Monitor API",
        version=package_version(),
        summary="Beds, captioned 30-s epochs, hypnograms and a live feed of a sleep lab's night",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store_provider = StoreProvider(settings.database_url)
    app.state.lag = ConsumerLag(settings.kafka, settings.app_id) if settings.kafka else None
    app.state.closing = threading.Event()
    live_metrics()  # register every metric family so /metrics shows them (at zero) from the start

    app.include_router(health.router)
    app.include_router(beds.router)
    app.include_router(stream.router)
    app.include_router(metrics.router)

    @app.exception_handler(UnknownBed)
    async def unknown_bed(_request: Request, exc: UnknownBed) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(_request: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                summary=app.summary,
                routes=app.routes,
            )
            _describe_stream_items(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _describe_stream_items(schema: dict[str, Any]) -> None:
    """Say what the live feed's events carry: ``event`` epoch|device with the matching JSON ``data``."""
    _, defs = models_json_schema(
        [(StreamEpoch, "serialization"), (StreamDevice, "serialization")],
        ref_template="#/components/schemas/{model}",
    )
    schema.setdefault("components", {}).setdefault("schemas", {}).update(defs["$defs"])
    content = schema["paths"][STREAM_PATH]["get"]["responses"]["200"]["content"]["text/event-stream"]
    item = content["itemSchema"]
    item["properties"]["event"] = {"type": "string", "enum": ["epoch", "device"]}
    item["properties"]["id"]["description"] = "feed cursor '<epoch id>-<event id>'; send back as Last-Event-ID"
    item["properties"]["data"] = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {
            "oneOf": [
                {"$ref": "#/components/schemas/StreamEpoch"},
                {"$ref": "#/components/schemas/StreamDevice"},
            ]
        },
    }
