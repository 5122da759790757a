"""The store of captioned epochs and device events (SQLAlchemy 2 + Alembic; SQLite or PostgreSQL)."""

from store.migrate import upgrade
from store.store import MISSING_STAGE, Cursor, Store, UnknownBed

__all__ = ["MISSING_STAGE", "Cursor", "Store", "UnknownBed", "upgrade"]
