"""Engines for the store: SQLite tuned for one writer and many readers, PostgreSQL as configured.

SQLite (the embedded default) runs in WAL mode so the API reads while the sink writes, with a busy
timeout instead of "database is locked" errors. pysqlite's own transaction handling neither wraps DDL
nor lets us choose the lock mode, so it is switched off and every transaction is begun explicitly:
``BEGIN`` for reads and ``BEGIN IMMEDIATE`` for writes (``write_connection``), which takes the write
lock up front; a deferred transaction that upgrades to a writer can fail with SQLITE_BUSY regardless
of the timeout. On PostgreSQL writers take a transaction-scoped advisory lock instead, so writes
commit in the order of their ids and the live feed's id cursor never skips a row that commits late.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from psg.errors import PSGError

#: How long a SQLite writer waits for the lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Advisory lock key of the store's writers on PostgreSQL (any constant; "SLPLM" in ASCII).
PG_WRITE_LOCK = 0x534C504C4D


def make_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created. ``PSGError`` for a malformed URL."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise PSGError(f"database URL {url!r}: not a SQLAlchemy URL ({exc})") from None
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see module docstring)
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """Put the database file in WAL mode (persistent, so a no-op once any connection has done it).

    Switching needs an exclusive lock, and SQLite answers "database is locked" at once instead of
    running the busy handler when another connection is opening the same fresh file; so retry for
    as long as the busy timeout would have waited.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
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
