"""API tokens and the audit log.

Tokens are random 256-bit secrets (``slm_`` + URL-safe base64). Only their SHA-256 is stored: a
leaked database then holds no usable credential. A plain hash (not bcrypt/argon2) is enough because
the secret has 256 bits of entropy, so there is nothing to brute-force, and verifying one on every
request must be cheap. A token is shown once, when created, and can be revoked (kept, marked).

The audit log is append-only: who (token name and role) did what to which target, when (wall clock).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.sql import Insert

from psg.errors import PSGError
from store.engine import inserted_id, write_connection
from store.models import ApiTokenRow, AuditRow

#: Roles, least privileged first: viewer reads, nurse also acknowledges, admin also manages rules,
#: thresholds and tokens.
ROLES: tuple[str, ...] = ("viewer", "nurse", "admin")
TOKEN_PREFIX = "slm_"
#: ``last_used_at`` is refreshed at most this often (a write per request would load the database).
LAST_USED_RESOLUTION_S = 60.0
AUDIT = AuditRow.__table__
TOKENS = ApiTokenRow.__table__


class UnknownToken(LookupError):
    """No token with this id."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def audit_entry(
    actor: str, role: str, action: str, target: str, detail: dict[str, Any] | None = None, at: float | None = None
) -> Insert:
    """The INSERT of one audit entry (run it in the transaction of the change it records)."""
    return AUDIT.insert().values(
        at=time.time() if at is None else float(at),
        actor=actor,
        role=role,
        action=action,
        target=target[:256],
        detail=detail or {},
    )


def _token_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "created_at": row.created_at,
        "created_by": row.created_by,
        "revoked_at": row.revoked_at,
        "last_used_at": row.last_used_at,
    }


def check_token_fields(name: str, role: str) -> None:
    """``PSGError`` naming the field when a token's name or role is not acceptable."""
    if role not in ROLES:
        raise PSGError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise PSGError(f"name {name!r}: expected 1-128 characters (who holds the token, e.g. 'night-nurse-ward-3')")


class AccessStore:
    """Mixin of ``store.Store``: needs ``self.engine``."""

    engine: Engine

    # --- tokens -----------------------------------------------------------------------------------

    def create_token(self, name: str, role: str, created_by: str = "cli", by_role: str = "admin") -> tuple[str, dict]:
        """A new token for ``name`` with ``role``: returns (the token, shown only now; its stored record)."""
        check_token_fields(name, role)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        with write_connection(self.engine) as connection:
            inserted = connection.execute(
                TOKENS.insert().values(
                    name=name.strip(), role=role, token_hash=token_hash(token), created_at=now, created_by=created_by
                )
            )
            new_id = inserted_id(inserted)
            connection.execute(
                audit_entry(
                    created_by, by_role, "create_token", f"token {new_id}", {"name": name.strip(), "role": role}, now
                )
            )
            row = connection.execute(select(TOKENS).where(ApiTokenRow.id == new_id)).one()
        return token, _token_dict(row)

    def verify_token(self, token: str) -> dict[str, Any] | None:
        """The record of a valid, unrevoked token, else None. Refreshes ``last_used_at`` now and then."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        digest = token_hash(token)
        with self.engine.connect() as connection:
            row = connection.execute(select(TOKENS).where(ApiTokenRow.token_hash == digest)).first()
        if row is None or row.revoked_at is not None:
            return None
        now = time.time()
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION_S:
            with write_connection(self.engine) as connection:
                connection.execute(TOKENS.update().where(ApiTokenRow.id == row.id).values(last_used_at=now))
        return _token_dict(row)

    def tokens(self) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            return [_token_dict(r) for r in connection.execute(select(TOKENS).order_by(ApiTokenRow.id)).all()]

    def revoke_token(self, token_id: int, by: str = "cli", by_role: str = "admin") -> dict[str, Any]:
        """Revoke a token (it stops working at once); ``UnknownToken``. Revoking twice keeps the first time."""
        now = time.time()
        with write_connection(self.engine) as connection:
            row = connection.execute(select(TOKENS).where(ApiTokenRow.id == token_id)).first()
            if row is None:
                raise UnknownToken(f"token {token_id}: no such token")
            if row.revoked_at is None:
                connection.execute(TOKENS.update().where(ApiTokenRow.id == token_id).values(revoked_at=now))
                connection.execute(
                    audit_entry(by, by_role, "revoke_token", f"token {token_id}", {"name": row.name}, now)
                )
            row = connection.execute(select(TOKENS).where(ApiTokenRow.id == token_id)).one()
        return _token_dict(row)

    # --- audit ------------------------------------------------------------------------------------

    def audit(self, actor: str, role: str, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
        """Append one audit entry on its own (changes that write elsewhere use ``audit_entry`` in their transaction)."""
        with write_connection(self.engine) as connection:
            connection.execute(audit_entry(actor, role, action, target, detail))

    def audit_log(self, limit: int = 200, before_id: int | None = None) -> list[dict[str, Any]]:
        """Newest entries first, at most ``limit``; page back with ``before_id``."""
        query = select(AUDIT).order_by(AuditRow.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(AuditRow.id < before_id)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query).all()]
