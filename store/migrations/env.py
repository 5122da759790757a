"""Alembic environment of the store.

``store.migrate.upgrade`` hands over an open connection in ``config.attributes["connection"]`` (already
in a write transaction); the alembic CLI gets its URL from ``-x url=...``, else from ``Settings``
(``SLEEPLM_DB_URL`` or the default SQLite file). ``--sql`` (offline mode) prints the DDL for a DBA.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from store.models import Base

config = context.config


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url:
        return url
    from services.settings import Settings

    return Settings().database_url


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
