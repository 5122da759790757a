"""Bearer-token authentication and role checks for every route but ``/api/health``.

Roles are ordered: viewer (reads the ward, beds, alerts, rules, the feed, metrics) < nurse (also
acknowledges alerts) < admin (also manages watch rules, thresholds, tokens, reads the audit log).
``require("nurse")`` is a dependency that answers 401 (no/unknown/revoked token, with
``WWW-Authenticate: Bearer``) or 403 (valid token, role too low) before the route runs.

A verified token is cached for ``CACHE_S`` seconds so a busy ward page does not cost a database read
per request; a revoked token therefore stops working within that time (and at once in this process,
which clears the cache when it revokes one).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from store.access_store import ROLES

#: Seconds a verified token stays trusted without asking the store again.
CACHE_S = 5.0
RANK = {role: i for i, role in enumerate(ROLES)}

bearer = HTTPBearer(auto_error=False, description="API token from `sleeplm token create` (Authorization: Bearer ...)")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, holder name and role (the name is what the audit log records)."""

    token_id: int
    name: str
    role: str


class TokenCache:
    """token -> (principal, verified at); bounded by clearing when it grows past ``limit``."""

    def __init__(self, limit: int = 4096) -> None:
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()
        self.limit = limit

    def get(self, token: str) -> Principal | None:
        with self._lock:
            entry = self._entries.get(token)
        if entry is None or time.monotonic() - entry[1] > CACHE_S:
            return None
        return entry[0]

    def put(self, token: str, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) >= self.limit:
                self._entries.clear()
            self._entries[token] = (principal, time.monotonic())

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """The caller of a request, from its bearer token; 401 without a valid one."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _unauthorized("missing bearer token: send 'Authorization: Bearer <token>' (sleeplm token create)")
    token = credentials.credentials
    cache: TokenCache = request.app.state.token_cache
    principal = cache.get(token)
    if principal is None:
        record = request.app.state.store_provider.get().verify_token(token)
        if record is None:
            raise _unauthorized("invalid or revoked token")
        principal = Principal(record["id"], record["name"], record["role"])
        cache.put(token, principal)
    request.state.principal = principal
    return principal


def require(role: str) -> Callable[..., Principal]:
    """A dependency admitting callers whose role is ``role`` or higher (403 otherwise)."""
    if role not in RANK:
        raise ValueError(f"role {role!r}: expected one of {ROLES}")

    def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if RANK[principal.role] < RANK[role]:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail=f"role {principal.role!r} may not do this: needs {role!r} or higher"
            )
        return principal

    check.__name__ = f"require_{role}"
    return check


Viewer = Annotated[Principal, Depends(require("viewer"))]
Nurse = Annotated[Principal, Depends(require("nurse"))]
Admin = Annotated[Principal, Depends(require("admin"))]
