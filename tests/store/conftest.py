"""Fixtures of the store tests: a fresh, migrated database of each backend (a SQLite file in tmp_path, a
PostgreSQL schema when ``SLEEPLM_TEST_PG_URL`` names a server: ``tests.store.backends``) and caption records
as the sink gets them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from store import Store
from tests.records import make_record
from tests.store.backends import BACKENDS, backend_url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    with backend_url(backend, tmp_path) as url:
        yield url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store(db_url) as opened:
        yield opened


@pytest.fixture
def record() -> Callable[..., dict]:
    return make_record
