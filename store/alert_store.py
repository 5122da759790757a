"""Alerts in the store: transitions from the alert agent, acknowledgements from the API, reads for both.

Two writers touch an alert: the alert agent (every transition of the engine, possibly replayed after a
worker restart) and the API (a nurse's acknowledgement). Neither may undo the other, so a row's state
only moves forward (raised -> acknowledged -> resolved), an acknowledgement once recorded is never
cleared, and ``escalated`` never goes back to false. Each transition is also kept in ``alert_events``
(unique per alert, kind and time), which is what the live feed pages through.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Engine, case, select
from sqlalchemy.engine import Connection, Row

from psg.errors import PSGError
from store.access_store import audit_entry
from store.dialect import insert_statement
from store.engine import write_connection
from store.models import AlertEventRow, AlertRow
from store.records import ALERT_PRIORITIES, ALERT_STATES, alert_event_row

STATE_RANK = {state: rank for rank, state in enumerate(ALERT_STATES)}
PRIORITY_RANK = {priority: rank for rank, priority in enumerate(ALERT_PRIORITIES)}
ALERTS = AlertRow.__table__
ALERT_EVENTS = AlertEventRow.__table__
_ALERT_COLUMNS = [c.name for c in ALERTS.columns if c.name != "stored_at"]
StateFilter = Literal["active", "raised", "acknowledged", "resolved", "all"]


class UnknownAlert(LookupError):
    """No alert with this id is stored."""


class AlertConflict(PSGError):
    """The alert cannot take this action in its present state (already acknowledged or resolved)."""


def alert_dict(row: Row | dict[str, Any]) -> dict[str, Any]:
    """An ``alerts`` row as the API and the live feed show it."""
    values = row if isinstance(row, dict) else row._mapping
    return {name: values[name] for name in _ALERT_COLUMNS}


def _merged(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` moved forward by the snapshot ``new``: never back in state, acknowledgement or escalation."""
    out = dict(old)
    if new["updated_at"] >= old["updated_at"]:
        out["evidence"], out["updated_at"] = new["evidence"], new["updated_at"]
    if STATE_RANK[new["state"]] > STATE_RANK[old["state"]]:
        out["state"] = new["state"]
    for name in ("acknowledged_by", "acknowledged_at", "escalated_at", "resolved_at"):
        if out[name] is None and new[name] is not None:
            out[name] = new[name]
    out["escalated"] = bool(old["escalated"] or new["escalated"])
    return out


class AlertStore:
    """Mixin of ``store.Store``: needs ``self.engine``."""

    engine: Engine

    # --- writes -----------------------------------------------------------------------------------

    def apply_alert_events(self, events: Iterable[dict[str, Any]]) -> int:
        """Store alert transitions (``sleep.alerts`` records of kind "alert"), in order; returns how many
        transitions were new. ``MessageError`` naming the event and field if one is invalid (then nothing
        is stored, so validate single records first, as the agent does)."""
        parsed = [alert_event_row(event, what=f"alert event {i}") for i, event in enumerate(events)]
        if not parsed:
            return 0
        now = time.time()
        with write_connection(self.engine) as connection:
            new = 0
            for item in parsed:
                self._upsert_alert(connection, item["alert"], now)
                new += self._add_transition(connection, item["kind"], item["at"], item["alert"], now)
        return new

    def _upsert_alert(self, connection: Connection, row: dict[str, Any], now: float) -> dict[str, Any]:
        old = connection.execute(select(ALERTS).where(AlertRow.id == row["id"])).first()
        if old is None:
            connection.execute(ALERTS.insert(), [{**row, "stored_at": now}])
            return row
        merged = _merged(alert_dict(old), row)
        connection.execute(ALERTS.update().where(AlertRow.id == row["id"]).values(**merged, stored_at=now))
        return merged

    def _add_transition(self, connection: Connection, kind: str, at: float, alert: dict[str, Any], now: float) -> int:
        statement = (
            insert_statement(connection, AlertEventRow)
            .on_conflict_do_nothing(index_elements=["alert_id", "kind", "at"])
            .returning(AlertEventRow.id)
        )
        values = {"alert_id": alert["id"], "bed_id": alert["bed_id"], "kind": kind, "at": at, "alert": alert}
        return len(connection.execute(statement, [{**values, "stored_at": now}]).all())

    def acknowledge_alert(self, alert_id: str, user: str, role: str, at: float | None = None) -> dict[str, Any]:
        """A nurse acknowledges a raised alert: state, who and when, the transition and an audit entry, in
        one transaction. ``UnknownAlert``; ``AlertConflict`` if it is already acknowledged or resolved."""
        at = time.time() if at is None else float(at)
        with write_connection(self.engine) as connection:
            found = connection.execute(select(ALERTS).where(AlertRow.id == alert_id)).first()
            if found is None:
                raise UnknownAlert(f"alert {alert_id!r}: no such alert")
            alert = alert_dict(found)
            if alert["state"] == "acknowledged":
                raise AlertConflict(
                    f"alert {alert_id!r}: already acknowledged by {alert['acknowledged_by']!r} "
                    f"at {_when(alert['acknowledged_at'])}"
                )
            if alert["state"] == "resolved":
                raise AlertConflict(f"alert {alert_id!r}: already resolved, nothing to acknowledge")
            alert.update(state="acknowledged", acknowledged_by=user, acknowledged_at=at)
            connection.execute(
                ALERTS.update()
                .where(AlertRow.id == alert_id)
                .values(state="acknowledged", acknowledged_by=user, acknowledged_at=at, stored_at=time.time())
            )
            self._add_transition(connection, "acknowledged", at, alert, time.time())
            connection.execute(audit_entry(user, role, "acknowledge_alert", alert_id, {"previous_state": "raised"}, at))
        return alert

    # --- reads ------------------------------------------------------------------------------------

    def alert(self, alert_id: str) -> dict[str, Any]:
        with self.engine.connect() as connection:
            found = connection.execute(select(ALERTS).where(AlertRow.id == alert_id)).first()
        if found is None:
            raise UnknownAlert(f"alert {alert_id!r}: no such alert")
        return alert_dict(found)

    def alerts(self, state: StateFilter = "active", bed_id: str | None = None, limit: int = 200) -> list[dict]:
        """Alerts by state ('active' = raised or acknowledged), of one bed or all, at most ``limit``:
        highest priority first, then unacknowledged first, then the most recent."""
        query = select(ALERTS)
        if state == "active":
            query = query.where(AlertRow.state.in_(("raised", "acknowledged")))
        elif state != "all":
            query = query.where(AlertRow.state == state)
        if bed_id is not None:
            query = query.where(AlertRow.bed_id == bed_id)
        priority_order = case(PRIORITY_RANK, value=AlertRow.priority, else_=len(PRIORITY_RANK))
        state_order = case(STATE_RANK, value=AlertRow.state, else_=len(STATE_RANK))
        query = query.order_by(priority_order, state_order, AlertRow.raised_at.desc(), AlertRow.id).limit(limit)
        with self.engine.connect() as connection:
            return [alert_dict(row) for row in connection.execute(query).all()]

    def alert_states(self, alert_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """State, acknowledged_by/at of the given alerts (what the alert agent syncs from the API's writes)."""
        ids = list(dict.fromkeys(alert_ids))
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(ids), 500):
                rows = connection.execute(
                    select(AlertRow.id, AlertRow.state, AlertRow.acknowledged_by, AlertRow.acknowledged_at).where(
                        AlertRow.id.in_(ids[start : start + 500])
                    )
                ).all()
                out.update({row.id: dict(row._mapping) for row in rows})
        return out


def _when(unix_s: float) -> str:
    """A moment as a nurse reads it: local ISO time to the second with its UTC offset (not a Unix time)."""
    return datetime.fromtimestamp(unix_s).astimezone().isoformat(timespec="seconds")
