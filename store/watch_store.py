"""What clinicians configure: plain-language watch rules and per-bed alert thresholds.

The API writes them (admin role, audited in the same transaction); the alert agent polls them
(``watch_rules``, ``bed_thresholds``), so a new rule or threshold applies to the next epoch of every
worker without a restart or a broker round trip.
"""

from __future__ import annotations

import math
import time
from typing import Any

from sqlalchemy import Engine, select

from psg.errors import PSGError
from store.access_store import audit_entry
from store.engine import inserted_id, write_connection
from store.models import BedThresholdsRow, WatchRuleRow

RULES = WatchRuleRow.__table__
THRESHOLDS = BedThresholdsRow.__table__
MAX_RULE_CHARS = 300
#: Longest a watch rule may require its finding to last (one night).
MAX_RULE_DURATION_S = 12 * 3600.0


class UnknownRule(LookupError):
    """No (undeleted) watch rule with this id."""


def _rule_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "text": row.text,
        "bed_id": row.bed_id,
        "min_duration_s": row.min_duration_s,
        "threshold": row.threshold,
        "calibration": row.calibration,
        "enabled": bool(row.enabled),
        "created_by": row.created_by,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def check_rule_fields(values: dict[str, Any]) -> None:
    """``PSGError`` naming the field of a watch rule that is not acceptable."""
    if "text" in values:
        text = values["text"]
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_RULE_CHARS:
            raise PSGError(f"text: expected 1-{MAX_RULE_CHARS} characters, e.g. 'REM with oxygen desaturation'")
    if "min_duration_s" in values:
        duration = values["min_duration_s"]
        if not isinstance(duration, (int, float)) or not 0 < duration <= MAX_RULE_DURATION_S:
            raise PSGError(f"min_duration_s: expected seconds in (0, {MAX_RULE_DURATION_S:.0f}], got {duration!r}")
    threshold = values.get("threshold")
    if threshold is not None and (not isinstance(threshold, (int, float)) or not -1.0 <= threshold <= 1.0):
        raise PSGError(f"threshold: expected a cosine score in [-1, 1] or null (calibrated), got {threshold!r}")
    bed = values.get("bed_id")
    if bed is not None and (not isinstance(bed, str) or not bed.strip() or len(bed) > 128):
        raise PSGError(f"bed_id: expected a bed id of 1-128 characters or null (the whole ward), got {bed!r}")


class WatchStore:
    """Mixin of ``store.Store``: needs ``self.engine``."""

    engine: Engine

    # --- watch rules ------------------------------------------------------------------------------

    def create_rule(
        self,
        text: str,
        by: str,
        role: str = "admin",
        bed_id: str | None = None,
        min_duration_s: float = 30.0,
        threshold: float | None = None,
        enabled: bool = True,
    ) -> dict[str, Any]:
        values = {"text": text, "bed_id": bed_id, "min_duration_s": min_duration_s, "threshold": threshold}
        check_rule_fields(values)
        now = time.time()
        with write_connection(self.engine) as connection:
            inserted = connection.execute(
                RULES.insert().values(
                    text=text.strip(),
                    bed_id=bed_id,
                    min_duration_s=float(min_duration_s),
                    threshold=threshold,
                    enabled=enabled,
                    created_by=by,
                    created_at=now,
                    updated_at=now,
                )
            )
            rule_id = inserted_id(inserted)
            connection.execute(
                audit_entry(by, role, "create_rule", f"rule {rule_id}", {**values, "enabled": enabled}, now)
            )
            return _rule_dict(connection.execute(select(RULES).where(WatchRuleRow.id == rule_id)).one())

    def rules(self, bed_id: str | None = None, enabled_only: bool = False) -> list[dict[str, Any]]:
        """Undeleted rules (of the ward and of ``bed_id`` when given), oldest first."""
        query = select(RULES).where(WatchRuleRow.deleted_at.is_(None)).order_by(WatchRuleRow.id)
        if enabled_only:
            query = query.where(WatchRuleRow.enabled.is_(True))
        if bed_id is not None:
            query = query.where((WatchRuleRow.bed_id.is_(None)) | (WatchRuleRow.bed_id == bed_id))
        with self.engine.connect() as connection:
            return [_rule_dict(row) for row in connection.execute(query).all()]

    def rule(self, rule_id: int) -> dict[str, Any]:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(RULES).where(WatchRuleRow.id == rule_id, WatchRuleRow.deleted_at.is_(None))
            ).first()
        if row is None:
            raise UnknownRule(f"watch rule {rule_id}: no such rule")
        return _rule_dict(row)

    def update_rule(self, rule_id: int, by: str, role: str = "admin", **changes: Any) -> dict[str, Any]:
        """Change text, bed_id, min_duration_s, threshold or enabled; ``UnknownRule``, ``PSGError``."""
        allowed = {"text", "bed_id", "min_duration_s", "threshold", "enabled"}
        unknown = set(changes) - allowed
        if unknown:
            raise PSGError(f"watch rule fields {sorted(unknown)}: expected some of {sorted(allowed)}")
        check_rule_fields(changes)
        if "text" in changes:
            changes["text"] = changes["text"].strip()
        self.rule(rule_id)
        now = time.time()
        with write_connection(self.engine) as connection:
            connection.execute(RULES.update().where(WatchRuleRow.id == rule_id).values(**changes, updated_at=now))
            connection.execute(audit_entry(by, role, "update_rule", f"rule {rule_id}", changes, now))
            return _rule_dict(connection.execute(select(RULES).where(WatchRuleRow.id == rule_id)).one())

    def delete_rule(self, rule_id: int, by: str, role: str = "admin") -> None:
        """Stop a rule (the row is kept, marked deleted, so its advisories stay explainable)."""
        rule = self.rule(rule_id)
        now = time.time()
        with write_connection(self.engine) as connection:
            connection.execute(RULES.update().where(WatchRuleRow.id == rule_id).values(deleted_at=now, updated_at=now))
            connection.execute(audit_entry(by, role, "delete_rule", f"rule {rule_id}", {"text": rule["text"]}, now))

    def set_rule_calibrations(self, calibrations: dict[int, dict[str, Any]]) -> None:
        """Record how the worker calibrated each rule (threshold, method, bank F1), for the API to show;
        it does not change ``updated_at``, which is the rule's version."""
        with write_connection(self.engine) as connection:
            for rule_id, calibration in calibrations.items():
                connection.execute(RULES.update().where(WatchRuleRow.id == rule_id).values(calibration=calibration))

    # --- per-bed thresholds -----------------------------------------------------------------------

    def set_thresholds(self, bed_id: str, values: dict[str, float], by: str, role: str = "admin") -> dict[str, Any]:
        """Replace a bed's own limits (``{}`` = back to the defaults). The caller checks that the values make
        sense together (``psg.alerts.Thresholds``); here each must be a finite number."""
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise PSGError(f"threshold {name!r}: expected a finite number, got {value!r}")
        now = time.time()
        with write_connection(self.engine) as connection:
            connection.execute(THRESHOLDS.delete().where(BedThresholdsRow.bed_id == bed_id))
            if values:
                connection.execute(
                    THRESHOLDS.insert().values(bed_id=bed_id, values=dict(values), updated_by=by, updated_at=now)
                )
            connection.execute(audit_entry(by, role, "set_thresholds", f"bed {bed_id}", dict(values), now))
        return {"bed_id": bed_id, "values": dict(values), "updated_by": by, "updated_at": now}

    def thresholds(self) -> dict[str, dict[str, Any]]:
        """bed id -> ``{"values", "updated_by", "updated_at"}`` for every bed with its own limits."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(THRESHOLDS)).all()
        return {
            r.bed_id: {"values": dict(r.values), "updated_by": r.updated_by, "updated_at": r.updated_at} for r in rows
        }
