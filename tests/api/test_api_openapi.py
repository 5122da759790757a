"""The OpenAPI document lists every route with the schema of what it really returns."""

from __future__ import annotations

import httpx

from dashboards.api import create_app
from plumbing.settings import Settings

#: path -> the model its GET answers with (None: not JSON, or no GET).
ROUTES = {
    "/api/health": "Health",
    "/api/me": "Me",
    "/api/ward": "WardBed",
    "/api/beds": "Bed",
    "/api/beds/{bed_id}/epochs": "Epoch",
    "/api/beds/{bed_id}/hypnogram": "Hypnogram",
    "/api/beds/{bed_id}/events": "NightEvents",
    "/api/beds/{bed_id}/waveform": "Waveform",
    "/api/beds/{bed_id}/query": "QueryResult",
    "/api/beds/{bed_id}/thresholds": "BedThresholds",
    "/api/alerts": "Alert",
    "/api/alerts/{alert_id}": "Alert",
    "/api/alerts/{alert_id}/ack": None,
    "/api/rules": "Rule",
    "/api/rules/{rule_id}": "Rule",
    "/api/tokens": "Token",
    "/api/tokens/{token_id}": None,
    "/api/audit": "AuditEntry",
    "/api/stream": None,
    "/metrics": None,
}


def _ref(schema: dict) -> str:
    target = schema.get("items", schema)
    return target["$ref"].rsplit("/", 1)[-1]


def test_every_route_is_documented_with_its_response_schema(tmp_path, api, client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    assert document == create_app(Settings(_env_file=None, data_dir=tmp_path / "other", kafka=None)).openapi()
    assert set(document["paths"]) == set(ROUTES)
    schemas = document["components"]["schemas"]
    for path, model in ROUTES.items():
        if model:
            responses = document["paths"][path]["get"]["responses"]
            assert _ref(responses["200"]["content"]["application/json"]["schema"]) == model, path
    assert (
        document["paths"]["/api/beds"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["type"]
        == "array"
    )
    assert set(schemas["Bed"]["properties"]) == {
        "bed_id",
        "recording_id",
        "status",
        "last_epoch",
        "stage",
        "updated_at",
    }
    assert schemas["Bed"]["properties"]["status"]["enum"] == ["live", "stale"]
    assert set(schemas["Epoch"]["properties"]) == {"epoch", "start_time", "stage", "captions", "features", "quality"}
    assert set(schemas["Captions"]["required"]) == {"stage_event", "brain", "cardiac", "respiratory", "somatic"}
    assert set(schemas["Hypnogram"]["properties"]) == {"bed_id", "recording_id", "epoch_s", "start_time", "stages"}
    assert set(schemas["Health"]["properties"]) == {"status", "version", "store"}

    epochs = document["paths"]["/api/beds/{bed_id}/epochs"]["get"]
    assert _ref(epochs["responses"]["404"]["content"]["application/json"]["schema"]) == "Error"
    limit = next(p for p in epochs["parameters"] if p["name"] == "limit")["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 1000, 100)
    health = document["paths"]["/api/health"]["get"]["responses"]
    assert _ref(health["503"]["content"]["application/json"]["schema"]) == "Health"

    feed = document["paths"]["/api/stream"]["get"]
    item = feed["responses"]["200"]["content"]["text/event-stream"]["itemSchema"]
    assert item["properties"]["event"]["enum"] == ["epoch", "device", "alert"]
    payloads = item["properties"]["data"]["contentSchema"]["oneOf"]
    assert [_ref(p) for p in payloads] == ["StreamEpoch", "StreamDevice", "StreamAlert"]
    assert {"bed_id", "epoch", "captions", "quality"} <= set(schemas["StreamEpoch"]["properties"])
    assert set(schemas["StreamDevice"]["properties"]) == {"bed_id", "recording_id", "stream", "type", "at", "detail"}
    assert {p["name"] for p in feed["parameters"]} == {"bed", "last-event-id"}
    assert "422" in feed["responses"]
    assert "text/plain" in document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    for name, schema in schemas.items():  # every $ref points at a component that exists
        for ref in _refs(schema):
            assert ref in schemas, f"{name} refers to missing {ref}"


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"].rsplit("/", 1)[-1]] if "$ref" in node else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []
