"""The store's two backends for the tests: SQLite (always) and PostgreSQL (a server named by SLEEPLM_TEST_PG_URL).

``.ci/run`` starts Debian's PostgreSQL on 127.0.0.1 with a throwaway role and database and exports
``SLEEPLM_TEST_PG_URL=postgresql+psycopg://USER:PASSWORD@127.0.0.1:5432/DB``; elsewhere the PostgreSQL half
of a parametrised test skips with the reason (variable unset, server not answering). Each PostgreSQL test
gets its own fresh schema (the URL sets ``search_path``), dropped afterwards, so tests never see each
other's rows, and the migrations run from empty every time.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_URL_ENV = "SLEEPLM_TEST_PG_URL"
BACKENDS = ("sqlite", "postgresql")


@functools.cache
def pg_server() -> tuple[str | None, str]:
    """(the server's URL, "") when ``SLEEPLM_TEST_PG_URL`` names a server that answers, else (None, why not)."""
    url = os.environ.get(PG_URL_ENV, "").strip()
    if not url:
        return None, f"{PG_URL_ENV} is not set (.ci/run starts a PostgreSQL server and sets it; see README)"
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() != "postgresql":
            return None, f"{PG_URL_ENV} is not a postgresql URL"
        engine = create_engine(parsed, connect_args={"connect_timeout": 5})
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - no driver, refused, bad password: all mean "skip, and say why"
        shown = make_url(url).render_as_string(hide_password=True) if "://" in url else "?"
        return None, f"PostgreSQL at {shown} does not answer: {str(exc).strip().splitlines()[0]}"
    return url, ""


def require_pg() -> str:
    """The PostgreSQL server's URL, or skip the test with the reason there is none."""
    url, reason = pg_server()
    if url is None:
        pytest.skip(reason)
    return url


def _admin(url: str):  # noqa: ANN202 - a short-lived engine on the server's default schema
    return create_engine(make_url(url), isolation_level="AUTOCOMMIT")


@contextmanager
def pg_schema_url() -> Iterator[str]:
    """A URL whose connections use a new, empty schema of the test server (skips without one); the schema
    and all in it are dropped afterwards."""
    url = require_pg()
    schema = f"sleeplm_test_{uuid.uuid4().hex[:12]}"
    admin = _admin(url)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def backend_url(backend: str, folder: Path) -> Iterator[str]:
    """A fresh, empty database of ``backend``: a SQLite file under ``folder`` or a PostgreSQL schema."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'data' / 'sleeplm.db'}"
    else:
        with pg_schema_url() as url:
            yield url
