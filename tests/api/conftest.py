"""A real API: uvicorn on a free 127.0.0.1 port in a thread, over a SQLite file in tmp_path.

Tests write through their own ``Store`` on the same file (as the sink would) and read over HTTP with
real bearer tokens, one per role, created in that store the way ``sleeplm token create`` does. Tests
marked ``@pytest.mark.usefixtures("store_backend")`` (the read routes, the feed, the nurse workflow) run
twice: on that SQLite file and on a fresh PostgreSQL schema (``tests.store.backends``; skipped with the
reason when ``SLEEPLM_TEST_PG_URL`` names no server).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from dashboards.api import ApiServer, create_app
from plumbing.broker import free_port
from plumbing.settings import Settings
from store import Store
from tests import records
from tests.store.backends import BACKENDS, pg_schema_url

MODALITIES = ("stage_event", "brain", "cardiac", "respiratory", "somatic")


def make_record(epoch: int, bed: str = "bed-1", recording: str = "rec-1", stage: str = "N2", **extra: Any) -> dict:
    """``tests.records.make_record`` with no events and heart rate as the only feature."""
    plain = {"features": {"hr_mean": 61.5}, "events": [], "end_received_at": time.time() - 1.5}
    return records.make_record(epoch, bed, recording, stage, **{**plain, **extra})


ROLES = ("viewer", "nurse", "admin")


@dataclass
class RunningApi:
    url: str
    server: ApiServer
    thread: threading.Thread
    settings: Settings
    tokens: dict[str, str]

    def client(self, role: str | None = "admin", timeout: float = 10.0) -> httpx.Client:
        """An HTTP client signed in with the token of ``role`` (None: no token)."""
        headers = {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}
        return httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def stop(self, timeout_s: float = 10.0) -> float:
        """Stop the server; returns how long it took."""
        started = time.monotonic()
        self.server.stop()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), f"API did not stop within {timeout_s} s"
        return time.monotonic() - started


def role_tokens(settings: Settings) -> dict[str, str]:
    """One token per role in the API's store (none when the store cannot be opened: the test is about that)."""
    try:
        with Store(settings.database_url) as opened:
            return {role: opened.create_token(f"test-{role}", role)[0] for role in ROLES}
    except Exception:  # noqa: BLE001 - an unreachable store is what some tests want
        return {}


def start_api(settings: Settings) -> RunningApi:
    tokens = role_tokens(settings)
    server = ApiServer(create_app(settings), "127.0.0.1", settings.api_port, log_level="warning")
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "API did not start"
        time.sleep(0.02)
    return RunningApi(f"http://127.0.0.1:{settings.api_port}", server, thread, settings, tokens)


@pytest.fixture(params=BACKENDS)
def store_backend(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The database ``serve`` gives the API: None for the default SQLite file, else a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield None
        return
    with pg_schema_url() as url:
        yield url


@pytest.fixture
def serve(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., RunningApi]]:
    """``serve(**settings)`` starts an API (stopped after the test); settings default to tmp_path's store
    (or the ``store_backend`` database of a test that uses that fixture)."""
    running: list[RunningApi] = []
    backend_url = request.getfixturevalue("store_backend") if "store_backend" in request.fixturenames else None

    def _serve(**overrides: Any) -> RunningApi:
        values = {
            "data_dir": tmp_path / "data",
            "kafka": None,
            "api_port": free_port(),
            "search_preload": False,
            **({"db_url": backend_url} if backend_url else {}),
            **overrides,
        }
        api = start_api(Settings(_env_file=None, **values))
        running.append(api)
        return api

    yield _serve
    for api in running:
        if api.thread.is_alive():
            api.stop()


@pytest.fixture
def api(serve: Callable[..., RunningApi]) -> RunningApi:
    return serve()


@pytest.fixture
def store(api: RunningApi) -> Iterator[Store]:
    with Store(api.settings.database_url) as opened:
        yield opened


@pytest.fixture
def client(api: RunningApi) -> Iterator[httpx.Client]:
    """Signed in as admin (every route allowed); the security tests use the other roles."""
    with api.client("admin") as opened:
        yield opened


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Parse an SSE line stream into events ``{"event", "id", "data", "comment", "retry"}`` (fields present)."""
    event: dict[str, str] = {}
    for line in lines:
        if line == "":
            if event:
                yield event
            event = {}
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        key = "comment" if name == "" else name
        event[key] = event[key] + "\n" + value if key in event and key == "data" else value


@pytest.fixture
def record() -> Callable[..., dict]:
    """``record(epoch, bed=..., stage=...)``: a caption record as the sink receives it."""
    return make_record


@pytest.fixture
def read_sse() -> Callable[[Iterator[str]], Iterator[dict[str, str]]]:
    return sse_events
