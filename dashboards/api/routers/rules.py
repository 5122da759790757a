"""Plain-language watch rules: list, create, change, delete (admin), read (viewer)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from dashboards.api.deps import StoreDep
from dashboards.api.schemas import MAX_ID, Error, Rule, RuleCreate, RuleUpdate
from dashboards.api.security import Admin, Viewer

router = APIRouter(prefix="/api/rules", tags=["watch rules"])

RuleId = Annotated[int, Path(ge=1, le=MAX_ID, description="watch rule id")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Error, "description": "No such watch rule"}}


@router.get("", response_model=list[Rule], summary="Watch rules of the ward and every bed")
def list_rules(store: StoreDep, _: Viewer) -> list[dict]:
    return store.rules()


@router.post("", response_model=Rule, status_code=status.HTTP_201_CREATED, summary="Add a watch rule (admin)")
def create_rule(store: StoreDep, principal: Admin, rule: RuleCreate) -> dict:
    return store.create_rule(by=principal.name, role=principal.role, **rule.model_dump())


@router.get("/{rule_id}", response_model=Rule, responses=NOT_FOUND, summary="One watch rule")
def get_rule(store: StoreDep, _: Viewer, rule_id: RuleId) -> dict:
    return store.rule(rule_id)


@router.patch("/{rule_id}", response_model=Rule, responses=NOT_FOUND, summary="Change a watch rule (admin)")
def update_rule(store: StoreDep, principal: Admin, rule_id: RuleId, changes: RuleUpdate) -> dict:
    return store.update_rule(rule_id, by=principal.name, role=principal.role, **changes.model_dump(exclude_unset=True))


@router.delete(
    "/{rule_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND, summary="Delete a watch rule (admin)"
)
def delete_rule(store: StoreDep, principal: Admin, rule_id: RuleId) -> Response:
    store.delete_rule(rule_id, by=principal.name, role=principal.role)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
