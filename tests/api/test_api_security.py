"""Every route of the OpenAPI document refuses callers without a valid token (401) and callers whose role is
too low (403), and admits the role it needs; plus CORS, body limits, headers and identifier-free logs."""

from __future__ import annotations

import logging

import httpx
import pytest

#: (method, path) -> the lowest role allowed; None = public. A route missing here fails the test: every new
#: route needs a decision.
REQUIRED = {
    ("GET", "/api/health"): None,
    ("GET", "/api/me"): "viewer",
    ("GET", "/api/ward"): "viewer",
    ("GET", "/api/beds"): "viewer",
    ("GET", "/api/beds/{bed_id}/epochs"): "viewer",
    ("GET", "/api/beds/{bed_id}/hypnogram"): "viewer",
    ("GET", "/api/beds/{bed_id}/events"): "viewer",
    ("GET", "/api/beds/{bed_id}/waveform"): "viewer",
    ("GET", "/api/beds/{bed_id}/query"): "viewer",
    ("GET", "/api/beds/{bed_id}/thresholds"): "viewer",
    ("PUT", "/api/beds/{bed_id}/thresholds"): "admin",
    ("GET", "/api/alerts"): "viewer",
    ("GET", "/api/alerts/{alert_id}"): "viewer",
    ("POST", "/api/alerts/{alert_id}/ack"): "nurse",
    ("GET", "/api/rules"): "viewer",
    ("POST", "/api/rules"): "admin",
    ("GET", "/api/rules/{rule_id}"): "viewer",
    ("PATCH", "/api/rules/{rule_id}"): "admin",
    ("DELETE", "/api/rules/{rule_id}"): "admin",
    ("GET", "/api/tokens"): "admin",
    ("POST", "/api/tokens"): "admin",
    ("DELETE", "/api/tokens/{token_id}"): "admin",
    ("GET", "/api/audit"): "admin",
    ("GET", "/api/stream"): "viewer",
    ("GET", "/metrics"): "viewer",
}
ROLES = ("viewer", "nurse", "admin")
PATH_VALUES = {"bed_id": "bed-1", "alert_id": "no-such-alert", "rule_id": "999", "token_id": "999"}
BODIES = {
    ("PUT", "/api/beds/{bed_id}/thresholds"): {"spo2_low": 86},
    ("POST", "/api/rules"): {"text": "central apneas"},
    ("PATCH", "/api/rules/{rule_id}"): {"enabled": False},
    ("POST", "/api/tokens"): {"name": "someone", "role": "viewer"},
}
QUERIES = {("GET", "/api/beds/{bed_id}/query"): {"q": "apnea"}}


def _routes(document: dict) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, item in document["paths"].items() for method in item]


def _call(client: httpx.Client, method: str, path: str) -> int:
    url = path.format(**PATH_VALUES)
    kwargs = {"params": QUERIES.get((method, path)), "json": BODIES.get((method, path))}
    if path == "/api/stream":  # an admitted caller gets an endless feed: read only the status
        with client.stream(method, url, **kwargs) as response:
            return response.status_code
    return client.request(method, url, **kwargs).status_code


def test_every_route_in_the_schema_enforces_its_role(api, store, record) -> None:
    store.insert_epochs([record(0)])
    with api.client("admin") as admin:
        document = admin.get("/openapi.json").json()
    routes = _routes(document)
    assert set(routes) == set(REQUIRED), "every route needs an entry in REQUIRED"
    with (
        api.client(None) as anonymous,
        httpx.Client(base_url=api.url, headers={"Authorization": "Bearer slm_not-a-real-token"}) as forged,
    ):
        for method, path in routes:
            needed = REQUIRED[(method, path)]
            if needed is None:
                assert _call(anonymous, method, path) == 200
                continue
            assert _call(anonymous, method, path) == 401, (method, path)
            assert _call(forged, method, path) == 401, (method, path)
            for role in ROLES:
                with api.client(role) as client:
                    status = _call(client, method, path)
                if ROLES.index(role) < ROLES.index(needed):
                    assert status == 403, (method, path, role, status)
                else:
                    assert status not in (401, 403), (method, path, role, status)


def test_errors_say_what_to_do(api) -> None:
    with api.client(None) as anonymous:
        response = anonymous.get("/api/beds")
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in response.json()["detail"]
    with api.client("viewer") as viewer:
        response = viewer.post("/api/rules", json={"text": "arousals"})
        assert response.status_code == 403
        assert response.json()["detail"] == "role 'viewer' may not do this: needs 'admin' or higher"
    with api.client("admin") as admin:
        response = admin.post("/api/rules", json={"text": "arousals", "colour": "red"})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "colour"]


def test_revoked_token_stops_working_at_once(api) -> None:
    with api.client("admin") as admin:
        created = admin.post("/api/tokens", json={"name": "temp", "role": "nurse"}).json()
        token = created.pop("token")
        assert token.startswith("slm_") and created["role"] == "nurse"
        assert all("token" not in t for t in admin.get("/api/tokens").json())
        with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}) as temp:
            assert temp.get("/api/me").json() == {"name": "temp", "role": "nurse"}
            assert admin.delete(f"/api/tokens/{created['id']}").json()["revoked_at"] is not None
            assert temp.get("/api/me").status_code == 401
        actions = [e["action"] for e in admin.get("/api/audit").json()]
        assert actions[:2] == ["revoke_token", "create_token"]


def test_web_page_is_public_but_carries_no_data_and_a_strict_policy(api) -> None:
    with api.client(None) as anonymous:
        page = anonymous.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        assert anonymous.get("/openapi.json").status_code == 401
        assert anonymous.get("/docs").status_code == 404  # Swagger UI would load from a CDN: off
    with api.client("viewer") as viewer:
        assert viewer.get("/api/beds").headers["cache-control"] == "no-store"


def test_cors_is_closed_by_default_and_opens_only_to_named_origins(serve) -> None:
    closed = serve()
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    with closed.client("viewer") as client:
        response = client.get("/api/beds", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in response.headers
        assert "access-control-allow-origin" not in client.options("/api/beds", headers=preflight).headers
    opened = serve(cors_origins=["https://ward.example"])
    with opened.client("viewer") as client:
        allowed = client.get("/api/beds", headers={"Origin": "https://ward.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://ward.example"
        denied = client.get("/api/beds", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in denied.headers


def test_request_bodies_over_the_limit_are_refused(serve) -> None:
    api = serve(max_request_bytes=2048)
    with api.client("admin") as admin:
        big = admin.post("/api/rules", json={"text": "x" * 5000})
        assert big.status_code == 413 and "over 2048 bytes" in big.json()["detail"]

        def chunks():
            yield b'{"text": "'
            yield b"y" * 4000
            yield b'"}'

        streamed = admin.post("/api/rules", content=chunks(), headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413
        assert admin.post("/api/rules", json={"text": "central apneas"}).status_code == 201


def test_access_log_has_route_templates_not_identifiers(api, store, record, caplog: pytest.LogCaptureFixture) -> None:
    store.insert_epochs([record(0, bed="Smith-J-bed-7", recording="MRN-123456")])
    with caplog.at_level(logging.INFO, logger="sleeplm.access"):
        with api.client("viewer") as viewer:
            viewer.get("/api/beds/Smith-J-bed-7/epochs", params={"recording": "MRN-123456"})
            viewer.get("/api/beds/Smith-J-bed-7/query", params={"q": "Smith apnea"})
    lines = [r.getMessage() for r in caplog.records if r.name == "sleeplm.access"]
    assert any("GET /api/beds/{bed_id}/epochs 200" in line and "test-viewer" in line for line in lines), lines
    assert not any("Smith" in line or "MRN" in line for line in lines)
