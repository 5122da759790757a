"""Alembic environment of the store.

``store.migrate.upgrade`` hands over an open connection in ``config.attributes["connection"]`` (already
in a write transaction); the alembic CLI gets its URL from ``-x url=...``, else from ``SLEEPLM_DB_URL``
(read here, not through the settings: the store sits below the configuration layer). The default SQLite
file needs neither: every ``sleeplm`` command migrates the store it opens. ``--sql`` (offline mode) prints
the DDL for a DBA.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from store.models import Base

config = context.config


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url:
        return url
    url = os.environ.get("SLEEPLM_DB_URL", "").strip()
    if not url:
        raise SystemExit("alembic: no database named: pass -x url=<SQLAlchemy URL> or set SLEEPLM_DB_URL")
    return url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (given := config.attributes.get("connection")) is not None:
    _run(given)
else:
    from store.engine import make_engine, write_connection

    engine = make_engine(_url())
    try:
        with write_connection(engine) as connection:
            _run(connection)
    finally:
        engine.dispose()
