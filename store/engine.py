"""Engines for the store: SQLite tuned for one writer and many readers, PostgreSQL as configured.

SQLite (the embedded default) runs in WAL mode so the API reads while the sink writes, with a busy
timeout instead of "database is locked" errors: 30 s, or the URL's ``timeout`` in seconds
(``sqlite:///sleeplm.db?timeout=5``, pysqlite's own parameter). pysqlite's own transaction handling
neither wraps DDL nor lets us choose the lock mode, so it is switched off and every transaction is begun
explicitly: ``BEGIN`` for reads and ``BEGIN IMMEDIATE`` for writes (``write_connection``), which takes the write
lock up front; a deferred transaction that upgrades to a writer can fail with SQLITE_BUSY regardless
of the timeout. On PostgreSQL writers take a transaction-scoped advisory lock instead, so writes
commit in the order of their ids and the live feed's id cursor never skips a row that commits late.

JSON columns hold strict JSON on both backends: a NaN or infinity inside (a feature a sensor could not
measure) is stored as null, the way the API shows it. PostgreSQL's ``json`` type refuses the ``NaN``
token Python writes by default, which failed the whole batch.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from psg.errors import PSGError

#: How long a SQLite writer waits for the lock before giving up, unless the URL says (``?timeout=S``).
SQLITE_BUSY_TIMEOUT_S = 30.0
#: Advisory lock key of the store's writers on PostgreSQL (any constant; "SLPLM" in ASCII).
PG_WRITE_LOCK = 0x534C504C4D


def make_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created. ``PSGError`` for a malformed URL."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise PSGError(f"database URL {url!r}: not a SQLAlchemy URL ({exc})") from None
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True, json_serializer=json_dumps)
    busy_timeout_s = _busy_timeout_s(url, parsed.query.get("timeout"))
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"check_same_thread": False}, json_serializer=json_dumps)
    event.listen(engine, "connect", partial(_sqlite_on_connect, busy_timeout_s=busy_timeout_s))
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (its query, such as ``?timeout=5``, left off); None for another backend."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def json_dumps(value: Any) -> str:
    """Strict JSON of a JSON column's value: non-finite floats (NaN, infinities) become null."""
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(_finite_only(value), allow_nan=False)


def _finite_only(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_only(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_only(item) for item in value]
    return value


def _busy_timeout_s(url: str, value: str | tuple[str, ...] | None) -> float:
    """The URL's ``timeout`` (seconds, > 0), else ``SQLITE_BUSY_TIMEOUT_S``; ``PSGError`` naming it when malformed."""
    if value is None:
        return SQLITE_BUSY_TIMEOUT_S
    try:
        seconds = float(value) if isinstance(value, str) else float("nan")
    except ValueError:
        seconds = float("nan")
    if not (math.isfinite(seconds) and seconds > 0):
        raise PSGError(f"database URL {url!r}: timeout={value!r} is not a positive number of seconds")
    return seconds


def _sqlite_on_connect(dbapi_connection: Any, _record: Any, busy_timeout_s: float) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see module docstring)
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={round(busy_timeout_s * 1000)}")
    _switch_to_wal(cursor, busy_timeout_s)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    cursor.close()


def _switch_to_wal(cursor: Any, busy_timeout_s: float) -> None:
    """Put the database file in WAL mode (persistent, so a no-op once any connection has done it).

    Switching needs an exclusive lock, and SQLite answers "database is locked" at once instead of
    running the busy handler when another connection is opening the same fresh file; so retry for
    as long as the busy timeout would have waited.
    """
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_on_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get("sqlite_immediate", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction that holds the store's write lock; commits on success."""
    with engine.connect() as connection:
        connection = connection.execution_options(sqlite_immediate=True)
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_WRITE_LOCK})
            yield connection


def inserted_id(result: CursorResult[Any]) -> Any:
    """The primary key of the row a single-row INSERT just made (SQLAlchemy types it as optional)."""
    key = result.inserted_primary_key
    if key is None:
        raise PSGError("store: the INSERT returned no primary key")
    return key[0]
