"""Schemathesis against the real API: every operation of ``/openapi.json``, no 5xx, responses as declared.

A real uvicorn API (``tests.api.conftest.start_api``) over a SQLite store holding a little of everything:
caption records with a waveform, a device event, an alert, a watch rule, per-role tokens. Schemathesis
generates requests from the document the API serves (fetched with the admin token: it needs one), valid
and invalid ones, once with every path parameter generated and once with the stored bed, alert, rule
and token ids fixed (so the code behind a found resource is fuzzed too), and checks:

* ``not_a_server_error``: no 5xx, whatever the input;
* ``response_schema_conformance``: where the document declares a response, the body matches it;
* without a token, everything but ``/api/health`` answers 401 (authentication comes before any route).

``/api/stream`` (Server-Sent Events: an endless response) is left out of the generated run and tried
separately with malformed ``Last-Event-ID`` headers and query parameters.

Bounded: a fixed number of examples per operation (derandomized, so CI sends the same requests every
run), sized so the file runs in well under a minute on two cores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from dashboards.api.app import STREAM_PATH
from plumbing.broker import free_port
from plumbing.settings import Settings
from store import Store
from tests.api.conftest import RunningApi, make_record, start_api
from tests.fuzz.hostile import FUZZ, examples
from tests.records import make_record as caption_record

#: Examples per operation and generation mode (positive and negative), authenticated.
EXAMPLES = examples(12)
#: Examples per operation without a token (every answer is the same 401, few are needed).
UNAUTHENTICATED_EXAMPLES = examples(4)
#: Schemathesis builds whole requests per example (path, query, headers, body): hypothesis flags large
#: or slow data generation, which is the point here, not a problem of the strategy.
GENERATION = settings(
    FUZZ, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
)
CHECKS = [not_a_server_error, response_schema_conformance]


def _alert(bed: str, at: float) -> dict[str, Any]:
    """An alert-transition record as the alert agent stores it."""
    return {
        "kind": "alert",
        "event": "raised",
        "bed_id": bed,
        "alert": {
            "id": f"{bed}:spo2_critical:{int(at)}",
            "bed_id": bed,
            "recording_id": "rec-1",
            "type": "spo2_critical",
            "priority": "high",
            "state": "raised",
            "raised_at": at,
            "updated_at": at,
            "evidence": {"start": at - 15, "end": at, "count": 1, "values": {"min_spo2": 77.0}},
            "escalated": False,
            "escalated_at": None,
            "acknowledged_by": None,
            "acknowledged_at": None,
            "resolved_at": None,
        },
    }


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningApi, dict[str, Any]]]:
    """A running API over a store with data, and the ids of what is in it."""
    data_dir: Path = tmp_path_factory.mktemp("fuzz-api")
    settings_ = Settings(_env_file=None, data_dir=data_dir, kafka=None, api_port=free_port(), search_preload=False)
    api = start_api(settings_)
    with Store(settings_.database_url) as store:
        waveform = {"fs": 8.0, "channels": ["ECG", "AF"], "data_b64": "AAAAPAAAADwAAAA8"}
        store.insert_epochs([make_record(0, waveform=waveform), caption_record(1), make_record(2, stage="R")])
        store.insert_epochs([make_record(0, bed="bed-2", recording="rec-9")])
        store.insert_device_events(
            [
                {
                    "kind": "technical",
                    "bed_id": "bed-1",
                    "recording_id": "rec-1",
                    "stream": "resp",
                    "type": "stream_lost",
                    "at": 1_700_000_050.0,
                    "detail": "",
                }
            ]
        )
        alert = _alert("bed-1", 1_700_000_040.0)
        store.apply_alert_events([alert])
        rule = store.create_rule("REM with oxygen desaturation", by="admin")
        victim = store.create_token("fuzz-victim", "viewer")[1]  # the one DELETE /api/tokens/{id} may revoke
        protected = {t["id"] for t in store.tokens() if t["name"].startswith("test-")}
    ids = {
        "bed_id": "bed-1",
        "alert_id": alert["alert"]["id"],
        "rule_id": rule["id"],
        "token_id": victim["id"],
        "protected_token_ids": protected,
    }
    yield api, ids
    api.stop()


@pytest.fixture(scope="module")
def openapi(seeded: tuple[RunningApi, dict[str, Any]]) -> dict[str, Any]:
    """The document as the API serves it (401 without a token)."""
    api, _ = seeded
    with api.client(None) as anonymous:
        assert anonymous.get("/openapi.json").status_code == 401
    with api.client("admin") as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def _operations(document: dict[str, Any]) -> list[Any]:
    schema = schemathesis.openapi.from_dict(document).exclude(path=STREAM_PATH)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, [op.label for op in operations]
    return operations


def _fixed_path_parameters(operation: Any, ids: dict[str, Any]) -> dict[str, Any]:
    names = {p.name for p in operation.path_parameters}
    return {name: ids[name] for name in names if name in ids}


def _run(strategy: st.SearchStrategy[Any], budget: int, test: Callable[[Any], None]) -> None:
    """``test`` on ``budget`` cases drawn from ``strategy`` (one hypothesis run per operation and mode)."""

    @settings(GENERATION, max_examples=budget)
    @given(case=strategy)
    def run(case: Any) -> None:
        test(case)

    run()


def test_every_operation_with_the_admin_token(
    seeded: tuple[RunningApi, dict[str, Any]], openapi: dict[str, Any]
) -> None:
    """No 5xx and conforming responses, for generated and for stored path parameters. Failures of every
    operation are collected, so one run reports all of them."""
    api, ids = seeded
    headers = {"Authorization": f"Bearer {api.tokens['admin']}"}
    failures: dict[str, str] = {}

    def call(case: Any) -> None:
        # Revoking the tests' own tokens would turn the rest of the run into 401s.
        assume(not (case.method == "DELETE" and case.path_parameters.get("token_id") in ids["protected_token_ids"]))
        case.call_and_validate(base_url=api.url, headers=headers, checks=CHECKS, timeout=30)

    for operation in _operations(openapi):
        fixed = _fixed_path_parameters(operation, ids)
        strategies = [(mode, operation.as_strategy(generation_mode=mode)) for mode in GenerationMode]
        if fixed:
            strategies.append((GenerationMode.POSITIVE, operation.as_strategy(path_parameters=fixed)))
        for mode, strategy in strategies:
            try:
                _run(strategy, EXAMPLES, call)
            except Unsatisfiable:
                # An operation without parameters or body (GET /api/health) has no invalid request to make.
                assert mode is GenerationMode.NEGATIVE, operation.label
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected, reported together below
                failures.setdefault(operation.label, f"{type(exc).__name__}: {exc}"[:3000])
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())


def test_every_operation_without_a_token_is_401(
    seeded: tuple[RunningApi, dict[str, Any]], openapi: dict[str, Any]
) -> None:
    """Authentication comes first: without a token no route runs, whatever the parameters."""
    api, _ = seeded
    wrong: dict[str, str] = {}

    def call(case: Any) -> None:
        response = case.call(base_url=api.url, timeout=30)
        expected = 200 if case.path == "/api/health" else 401
        if response.status_code != expected:
            wrong.setdefault(case.operation.label, f"{response.status_code}: {response.text[:300]}")

    for operation in _operations(openapi):
        _run(operation.as_strategy(), UNAUTHENTICATED_EXAMPLES, call)
    assert not wrong, wrong


# --- the live feed (SSE) ----------------------------------------------------------------------------

MALFORMED_IDS = (
    "",
    "abc",
    "1",
    "1-2-3-4",
    "-1-2",
    "1--2",
    "1-2-",
    " 1-2-3",
    "1-2-3 ",
    "１-２-３",
    "0x1-0-0",
    "1-2-3" + "0" * 61,
    "9" * 30 + "-0-0",
    "0-0-" + "9" * 25,
    "9" * 19 + "-0-0",
)
MALFORMED_QUERIES: tuple[dict[str, str], ...] = (
    {"bed": ""},
    {"bed": "x" * 129},
    {"bed": "\x00"},
    {"bed": "bed-1", "unknown": "1"},
    {"bed": "%00"},
)


def _feed_status(api: RunningApi, headers: dict[str, Any], params: dict[str, str]) -> tuple[int, str]:
    """Status of ``GET /api/stream``; for a 200, whether the feed is still alive after its first poll:
    'alive' (a read timed out waiting for news), else what ended it."""
    with httpx.Client(base_url=api.url, timeout=httpx.Timeout(5.0, read=0.8)) as client:
        auth = {"Authorization": f"Bearer {api.tokens['viewer']}", **headers}
        try:
            with client.stream("GET", STREAM_PATH, headers=auth, params=params) as response:
                if response.status_code != 200:
                    response.read()
                    return response.status_code, response.text
                lines = response.iter_lines()
                first = next(lines)
                assert first.startswith(":"), first  # the hello comment
                deadline = time.monotonic() + 0.7  # more than one poll (POLL_S = 0.5)
                while time.monotonic() < deadline:
                    next(lines)
                return 200, "alive"
        except httpx.ReadTimeout:
            return 200, "alive"
        except (httpx.RemoteProtocolError, StopIteration) as exc:
            return 200, f"ended: {type(exc).__name__}"


@pytest.mark.parametrize("last_event_id", MALFORMED_IDS)
def test_stream_with_malformed_last_event_id(seeded: tuple[RunningApi, dict[str, Any]], last_event_id: str) -> None:
    """A malformed or out-of-range cursor is refused with 422 before the feed starts; a valid one feeds."""
    api, _ = seeded
    try:
        status, text = _feed_status(api, {"Last-Event-ID": last_event_id.encode()}, {})  # bytes: any UTF-8
    except httpx.LocalProtocolError:  # httpx itself refuses to send the header (e.g. leading space)
        return
    assert status < 500, text
    assert status in (200, 422), (status, text)
    if status == 200:
        assert text == "alive", f"the feed broke after its first poll: {text}"
    else:
        assert json.loads(text)["detail"]


@pytest.mark.parametrize("params", MALFORMED_QUERIES, ids=[json.dumps(p) for p in MALFORMED_QUERIES])
def test_stream_with_malformed_query(seeded: tuple[RunningApi, dict[str, Any]], params: dict[str, str]) -> None:
    api, _ = seeded
    status, text = _feed_status(api, {}, params)
    assert status < 500, text
    assert status in (200, 422), (status, text)
    assert status != 200 or text == "alive", text


def test_stream_without_a_token_is_401(seeded: tuple[RunningApi, dict[str, Any]]) -> None:
    api, _ = seeded
    with api.client(None) as anonymous:
        response = anonymous.get(STREAM_PATH, headers={"Last-Event-ID": "garbage"})
    assert response.status_code == 401
