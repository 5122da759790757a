"""The FastAPI application: ``create_app(settings)`` wires routers, security, middleware and error handlers.

The store is where every part meets: the sink and alert agent write epochs and alerts, the API reads
them and writes what people do (acknowledgements, watch rules, thresholds, tokens; each audited).
Every route but ``/api/health`` needs a bearer token (``dashboards.api.security``), the OpenAPI
document included (``/openapi.json``; the Swagger page is off: it would load its script from a CDN).
The nurse web page (``dashboards/static``) is served at ``/`` and carries no data until it signs in.
CORS is closed unless ``SLEEPLM_CORS_ORIGINS`` names origins. ``/metrics`` also reports consumer lag
when a broker is configured. The live feed's item schemas (epoch, device and alert events) are added to
the OpenAPI document here, because an SSE response's data is described per event, not by a return type.
"""

from __future__ import annotations

import math
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic.json_schema import models_json_schema

from dashboards.api.deps import StoreProvider, StoreUnavailable
from dashboards.api.lag import ConsumerLag
from dashboards.api.middleware import AccessLog, BodyLimit, SecurityHeaders
from dashboards.api.routers import access, alerts, beds, health, metrics, rules, stream
from dashboards.api.routers.health import package_version
from dashboards.api.routers.stream import FeedLimits
from dashboards.api.schemas import Error, StreamAlert, StreamDevice, StreamEpoch
from dashboards.api.search import NightSearch
from dashboards.api.security import TokenCache, Viewer
from plumbing.metrics import metrics as live_metrics
from plumbing.settings import Settings
from psg.errors import PSGError
from store import UnknownBed
from store.access_store import UnknownToken
from store.alert_store import AlertConflict, UnknownAlert
from store.watch_store import UnknownRule

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

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
        warm_up = threading.Thread(target=app.state.search.warm, name="search-warm-up", daemon=True)
        if settings.search_preload:
            warm_up.start()
        yield
        app.state.closing.set()
        if warm_up.is_alive():
            # a process that exits while onnxruntime still builds its session aborts in C++ (std::terminate,
            # SIGABRT): a stop right after the start waits the fraction of a second the warm-up takes
            warm_up.join()
        if app.state.lag is not None:
            app.state.lag.close()
        app.state.store_provider.close()

    app = FastAPI(
        title="SleepLM Monitor API",
        version=package_version(),
        summary="Beds, captioned 30-s epochs, hypnograms, alerts, watch rules and a live feed of a sleep lab's night",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.store_provider = StoreProvider(settings.database_url)
    app.state.lag = ConsumerLag(settings.kafka, settings.app_id) if settings.kafka else None
    app.state.closing = threading.Event()
    app.state.token_cache = TokenCache()
    app.state.feeds = FeedLimits(settings.feeds_per_token, settings.feeds_total)
    app.state.search = NightSearch(settings.checkpoint, settings.model_backend)
    live_metrics()  # register every metric family so /metrics shows them (at zero) from the start

    for router in (
        health.router,
        access.router,
        beds.router,
        alerts.router,
        rules.router,
        stream.router,
        metrics.router,
    ):
        app.include_router(router)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_document(_: Viewer) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/", include_in_schema=False)
    def web_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # Outermost first: the access log sees every answer, the size limit runs before any route.
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(AccessLog)

    def detail(status: int) -> Any:
        async def handler(_request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse(status_code=status, content={"detail": str(exc)})

        return handler

    async def invalid_request(_request: Request, exc: Exception) -> JSONResponse:
        # FastAPI's own handler echoes the refused input; a NaN or Infinity there (JSON accepts neither
        # in an answer) made the 422 itself fail as a 500. Non-finite numbers are echoed as text.
        assert isinstance(exc, RequestValidationError)
        return JSONResponse(status_code=422, content={"detail": _finite(jsonable_encoder(exc.errors()))})

    app.add_exception_handler(RequestValidationError, invalid_request)

    for error, status in (
        (UnknownBed, 404),
        (UnknownAlert, 404),
        (UnknownRule, 404),
        (UnknownToken, 404),
        (AlertConflict, 409),
        (PSGError, 422),
        (StoreUnavailable, 503),
    ):
        app.add_exception_handler(error, detail(status))

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
            _describe_refusals(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _finite(value: Any) -> Any:
    """``value`` with every NaN/Infinity (at any depth) replaced by its text, so that it is valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _describe_refusals(schema: dict[str, Any]) -> None:
    """Say what a 422 carries: FastAPI declares its own parameter errors (``detail`` a list), but a value
    the store or the alert rules refuse (``PSGError``, ``AlertError``) answers 422 with ``detail`` a text
    (``Error``); a client must expect either wherever a 422 is declared."""
    either = {"anyOf": [{"$ref": "#/components/schemas/HTTPValidationError"}, {"$ref": "#/components/schemas/Error"}]}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            refused = operation.get("responses", {}).get("422")
            if refused is not None:
                refused["description"] = "Invalid parameters (detail: a list of errors) or a refused value (detail)"
                refused["content"] = {"application/json": {"schema": either}}
    # FastAPI adds HTTPValidationError with any 422; Error is there when a route names it (404s), but say so.
    _, defs = models_json_schema([(Error, "serialization")], ref_template="#/components/schemas/{model}")
    schema.setdefault("components", {}).setdefault("schemas", {}).update(defs["$defs"])


def _describe_stream_items(schema: dict[str, Any]) -> None:
    """Say what the live feed's events carry: ``event`` epoch|device with the matching JSON ``data``."""
    _, defs = models_json_schema(
        [(StreamEpoch, "serialization"), (StreamDevice, "serialization"), (StreamAlert, "serialization")],
        ref_template="#/components/schemas/{model}",
    )
    schema.setdefault("components", {}).setdefault("schemas", {}).update(defs["$defs"])
    content = schema["paths"][STREAM_PATH]["get"]["responses"]["200"]["content"]["text/event-stream"]
    item = content["itemSchema"]
    item["properties"]["event"] = {"type": "string", "enum": ["epoch", "device", "alert"]}
    item["properties"]["id"]["description"] = (
        "feed cursor '<epoch id>-<event id>-<alert id>'; send back as Last-Event-ID"
    )
    item["properties"]["data"] = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {
            "oneOf": [
                {"$ref": "#/components/schemas/StreamEpoch"},
                {"$ref": "#/components/schemas/StreamDevice"},
                {"$ref": "#/components/schemas/StreamAlert"},
            ]
        },
    }
