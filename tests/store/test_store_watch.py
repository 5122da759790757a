"""Watch rules (CRUD, soft delete, per bed or ward) and per-bed thresholds, audited."""

from __future__ import annotations

import pytest

from psg.errors import PSGError
from store import Store
from store.watch_store import UnknownRule


def test_rules_crud_with_ward_and_bed_scope(store: Store) -> None:
    ward = store.create_rule("central apneas", by="dr-k")
    bed = store.create_rule("REM with oxygen desaturation", by="dr-k", bed_id="bed-2", min_duration_s=60)
    assert (ward["bed_id"], ward["min_duration_s"], ward["threshold"], ward["enabled"]) == (None, 30.0, None, True)
    assert [r["id"] for r in store.rules()] == [ward["id"], bed["id"]]
    assert [r["id"] for r in store.rules(bed_id="bed-1")] == [ward["id"]]
    changed = store.update_rule(bed["id"], by="dr-k", threshold=0.3, enabled=False)
    assert changed["threshold"] == 0.3 and changed["enabled"] is False
    assert [r["id"] for r in store.rules(enabled_only=True)] == [ward["id"]]
    store.delete_rule(ward["id"], by="dr-k")
    with pytest.raises(UnknownRule):
        store.rule(ward["id"])
    assert [r["id"] for r in store.rules()] == [bed["id"]]
    assert [e["action"] for e in store.audit_log()] == ["delete_rule", "update_rule", "create_rule", "create_rule"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"text": "  "}, "text: expected 1-300 characters"),
        ({"text": "x", "min_duration_s": 0}, r"min_duration_s: expected seconds in \(0, 43200\]"),
        ({"text": "x", "threshold": 3.0}, r"threshold: expected a cosine score in \[-1, 1\]"),
        ({"text": "x", "bed_id": ""}, "bed_id: expected a bed id"),
    ],
)
def test_bad_rules_name_the_field(store: Store, fields: dict, message: str) -> None:
    with pytest.raises(PSGError, match=message):
        store.create_rule(by="dr-k", **fields)


def test_update_unknown_fields_or_rule(store: Store) -> None:
    rule = store.create_rule("arousals", by="a")
    with pytest.raises(PSGError, match=r"fields \['colour'\]"):
        store.update_rule(rule["id"], by="a", colour="red")
    with pytest.raises(UnknownRule):
        store.update_rule(999, by="a", enabled=False)


def test_thresholds_replace_and_clear(store: Store) -> None:
    store.set_thresholds("bed-1", {"spo2_low": 85.0}, by="dr-k")
    store.set_thresholds("bed-1", {"spo2_low": 84.0, "brady_bpm": 35.0}, by="dr-k")
    assert store.thresholds()["bed-1"]["values"] == {"spo2_low": 84.0, "brady_bpm": 35.0}
    store.set_thresholds("bed-1", {}, by="dr-k")
    assert store.thresholds() == {}
    with pytest.raises(PSGError, match="threshold 'spo2_low': expected a finite number"):
        store.set_thresholds("bed-1", {"spo2_low": float("nan")}, by="dr-k")
