"""Alembic migrations of the store, run programmatically (``upgrade``) or with the alembic CLI.

The migration scripts ship inside the package (``store/migrations``) so an installed ``sleeplm`` can
create or upgrade its database without a checkout: ``Store(url)`` calls ``upgrade`` on open. Operators
can also run ``alembic -c <site-packages>/store/alembic.ini upgrade head`` with ``SLEEPLM_DB_URL`` set.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from store.engine import make_engine, write_connection

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest migration shipped with this version of the package."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "store/migrations has no revisions"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str | Engine, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision``; a database already there is left untouched.

    Runs inside one write transaction holding the store's write lock, so processes that open the same
    fresh database at once (API and worker under ``sleeplm up``) migrate it once, one after the other.
    """
    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        config = alembic_config()
        with write_connection(engine) as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        if engine is not url:
            engine.dispose()
