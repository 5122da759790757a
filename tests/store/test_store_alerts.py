"""Alerts in the store: transitions are idempotent and only move forward; acknowledgements are audited."""

from __future__ import annotations

import pytest

from psg.errors import MessageError
from store import Store
from store.alert_store import AlertConflict, UnknownAlert


def snapshot(state: str = "raised", updated_at: float = 130.0, **extra) -> dict:
    alert = {
        "id": "bed-1:spo2_critical:130",
        "bed_id": "bed-1",
        "recording_id": "rec-1",
        "type": "spo2_critical",
        "priority": "high",
        "state": state,
        "raised_at": 130.0,
        "updated_at": updated_at,
        "evidence": {"start": 115.0, "end": updated_at, "count": 1, "values": {"min_spo2": 76.0}},
        "escalated": False,
        "escalated_at": None,
        "acknowledged_by": None,
        "acknowledged_at": None,
        "resolved_at": None,
        "audit": [],
    }
    alert.update(extra)
    return alert


def event(kind: str, alert: dict) -> dict:
    return {"schema": 1, "kind": "alert", "event": kind, "alert": alert}


def test_transitions_are_stored_once_and_fed(store: Store) -> None:
    raised = event("raised", snapshot())
    assert store.apply_alert_events([raised]) == 1
    assert store.apply_alert_events([raised]) == 0  # a replay
    assert store.apply_alert_events([event("updated", snapshot(updated_at=160.0))]) == 1
    [alert] = store.alerts()
    assert alert["state"] == "raised" and alert["updated_at"] == 160.0
    items, _ = store.feed_since(None)
    assert [(i["kind"], i["data"]["transition"]) for i in items] == [("alert", "raised"), ("alert", "updated")]
    assert items[0]["cursor"].endswith("-1") and items[1]["data"]["evidence"]["end"] == 160.0


def test_acknowledgement_is_audited_and_never_undone_by_a_late_transition(store: Store) -> None:
    store.apply_alert_events([event("raised", snapshot())])
    acked = store.acknowledge_alert("bed-1:spo2_critical:130", "nurse-ann", "nurse", at=500.0)
    assert (acked["state"], acked["acknowledged_by"], acked["acknowledged_at"]) == ("acknowledged", "nurse-ann", 500.0)
    # the engine's "updated" snapshot, produced before it learnt of the acknowledgement, arrives late
    store.apply_alert_events([event("updated", snapshot(updated_at=190.0, escalated=True, escalated_at=190.0))])
    alert = store.alert("bed-1:spo2_critical:130")
    assert alert["state"] == "acknowledged" and alert["acknowledged_by"] == "nurse-ann"
    assert alert["escalated"] is True and alert["updated_at"] == 190.0
    [entry] = store.audit_log()
    assert (entry["actor"], entry["role"], entry["action"], entry["target"]) == (
        "nurse-ann",
        "nurse",
        "acknowledge_alert",
        "bed-1:spo2_critical:130",
    )
    assert store.alert_states(["bed-1:spo2_critical:130", "nope"]) == {
        "bed-1:spo2_critical:130": {
            "id": "bed-1:spo2_critical:130",
            "state": "acknowledged",
            "acknowledged_by": "nurse-ann",
            "acknowledged_at": 500.0,
        }
    }
    resolved = snapshot(state="resolved", resolved_at=600.0, acknowledged_by="nurse-ann", acknowledged_at=500.0)
    store.apply_alert_events([event("resolved", resolved)])
    assert store.alerts() == [] and store.alerts("resolved")[0]["resolved_at"] == 600.0
    # a replayed 'raised' cannot bring a resolved alert back
    store.apply_alert_events([event("raised", snapshot())])
    assert store.alert("bed-1:spo2_critical:130")["state"] == "resolved"


def test_bad_acknowledgements_say_why(store: Store) -> None:
    with pytest.raises(UnknownAlert, match="'nope': no such alert"):
        store.acknowledge_alert("nope", "ann", "nurse")
    store.apply_alert_events([event("raised", snapshot())])
    store.acknowledge_alert("bed-1:spo2_critical:130", "ann", "nurse", at=1.0)
    with pytest.raises(AlertConflict, match=r"already acknowledged by 'ann' at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]"):
        store.acknowledge_alert("bed-1:spo2_critical:130", "bob", "nurse")


def test_active_alerts_sort_by_priority_then_unacknowledged(store: Store) -> None:
    low = snapshot(id="b:technical:spo2:1", type="technical:spo2", priority="low", raised_at=10.0)
    medium = snapshot(id="b:desaturation:5", type="desaturation", priority="medium", raised_at=5.0)
    high_acked = snapshot(
        id="b:asystole:1",
        type="asystole",
        state="acknowledged",
        acknowledged_by="x",
        acknowledged_at=3.0,
        raised_at=1.0,
    )
    high = snapshot(id="b:bradycardia:2", type="bradycardia", raised_at=2.0)
    store.apply_alert_events([event("raised", a) for a in (low, medium, high, high_acked)])
    assert [a["id"] for a in store.alerts()] == [
        "b:bradycardia:2",
        "b:asystole:1",
        "b:desaturation:5",
        "b:technical:spo2:1",
    ]
    assert [a["id"] for a in store.alerts("raised", bed_id="bed-1", limit=1)] == ["b:bradycardia:2"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"event": "exploded"}, "field 'event': expected one of raised"),
        ({"alert": {**snapshot(), "priority": "urgent"}}, "field 'priority': expected one of high"),
        ({"alert": {**snapshot(), "state": "gone"}}, "field 'state'"),
        ({"alert": {**snapshot(), "bed_id": ""}}, "field 'bed_id'"),
        ({"event": "resolved"}, "field 'resolved_at': expected the time of the 'resolved' transition"),
    ],
)
def test_invalid_alert_events_are_refused_naming_the_field(store: Store, change: dict, message: str) -> None:
    with pytest.raises(MessageError, match=message):
        store.apply_alert_events([{**event("raised", snapshot()), **change}])
    assert store.alerts("all") == []
