"""Fixtures of the store tests: a migrated SQLite file in tmp_path and caption records as the sink gets them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from store import Store
from tests.records import make_record


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'sleeplm.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store(db_url) as opened:
        yield opened


@pytest.fixture
def record() -> Callable[..., dict]:
    return make_record
