"""The SQLite engine's busy timeout: 30 s by default, the URL's ``timeout`` (seconds) when it gives one,
and a malformed one named in the error instead of a stack trace from pysqlite."""

from __future__ import annotations

from pathlib import Path

import pytest

from psg.errors import PSGError
from store.engine import make_engine, sqlite_file


def _busy_timeout_ms(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one())
    finally:
        engine.dispose()


def test_busy_timeout_defaults_to_30_s_and_follows_the_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert _busy_timeout_ms(url) == 30_000
    assert _busy_timeout_ms(f"{url}?timeout=2.5") == 2_500
    assert sqlite_file(f"{url}?timeout=2.5") == tmp_path / "store.db"
    assert sqlite_file("postgresql+psycopg://u:p@127.0.0.1:5432/db") is None


@pytest.mark.parametrize("timeout", ["abc", "-1", "0", "nan", "1&timeout=2"])
def test_a_malformed_timeout_names_the_url_and_the_value(tmp_path: Path, timeout: str) -> None:
    with pytest.raises(PSGError, match=r"timeout=.* is not a positive number of seconds"):
        make_engine(f"sqlite:///{tmp_path / 'store.db'}?timeout={timeout}")
