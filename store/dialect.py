"""The one dialect-specific statement the store needs: INSERT ... ON CONFLICT DO NOTHING / DO UPDATE."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from psg.errors import PSGError


def insert_statement(connection: Connection, model: type) -> Any:
    """The dialect's INSERT for ``model`` that supports ``on_conflict_do_nothing``/``on_conflict_do_update``."""
    name = connection.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(model)
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(model)
    raise PSGError(f"database {name!r}: the store supports sqlite and postgresql")
