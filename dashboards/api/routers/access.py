"""Who is signed in (``/api/me``), API tokens (admin) and the audit log (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from dashboards.api.deps import StoreDep
from dashboards.api.schemas import MAX_ID, AuditEntry, Error, Me, Token, TokenCreate, TokenCreated
from dashboards.api.security import Admin, Viewer

router = APIRouter(prefix="/api", tags=["access"])


@router.get("/me", response_model=Me, summary="The caller's name and role (the web page's sign-in check)")
def me(principal: Viewer) -> dict:
    return {"name": principal.name, "role": principal.role}


@router.get("/tokens", response_model=list[Token], summary="Every API token (admin); the secrets are not stored")
def list_tokens(store: StoreDep, _: Admin) -> list[dict]:
    return store.tokens()


@router.post(
    "/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED, summary="Create a token (admin)"
)
def create_token(store: StoreDep, principal: Admin, body: TokenCreate) -> dict:
    token, record = store.create_token(body.name, body.role, created_by=principal.name, by_role=principal.role)
    return {**record, "token": token}


@router.delete(
    "/tokens/{token_id}",
    response_model=Token,
    responses={404: {"model": Error, "description": "No such token"}},
    summary="Revoke a token (admin); it stops working at once",
)
def revoke_token(
    request: Request, store: StoreDep, principal: Admin, token_id: Annotated[int, Path(ge=1, le=MAX_ID)]
) -> dict:
    record = store.revoke_token(token_id, by=principal.name, by_role=principal.role)
    request.app.state.token_cache.clear()
    return record


@router.get("/audit", response_model=list[AuditEntry], summary="The audit log, newest first (admin)")
def audit_log(
    store: StoreDep,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="entries older than this id (paging)")] = None,
) -> list[dict]:
    return store.audit_log(limit=limit, before_id=before)
