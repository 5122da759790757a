"""Dependencies of the routes: settings, the store (opened lazily), the lag monitor, the shutdown flag.

The store is opened on first use rather than at import or startup so that an API started before its
database (compose: PostgreSQL still booting) answers ``/api/health`` with 503 instead of crashing;
once the database answers, the API carries on without a restart.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import make_url

from dashboards.api.lag import ConsumerLag
from plumbing.settings import Settings
from store import Store


class StoreUnavailable(RuntimeError):
    """The database cannot be opened or reached right now (the API answers 503)."""


class StoreProvider:
    """Opens the ``Store`` once, on first use; a failed open is retried on the next request."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._store: Store | None = None
        self._lock = threading.Lock()

    def get(self) -> Store:
        with self._lock:
            if self._store is None:
                try:
                    self._store = Store(self.url)
                except Exception as exc:  # any driver error: report it, retry next time
                    shown = make_url(self.url).render_as_string(hide_password=True)
                    raise StoreUnavailable(f"store {shown!r} unavailable: {exc}") from exc
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store_provider.get()


def get_lag(request: Request) -> ConsumerLag | None:
    return request.app.state.lag


def get_closing(request: Request) -> threading.Event:
    """Set when the server shuts down: long-lived responses (the live feed) end on it."""
    return request.app.state.closing


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
LagDep = Annotated[ConsumerLag | None, Depends(get_lag)]
ClosingDep = Annotated[threading.Event, Depends(get_closing)]
