"""The nurse's and clinician's routes over a real store: ward tiles, alerts and acknowledgement (audited, in
the live feed), watch rules, per-bed thresholds, the bed view's events, waveform and night search."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from tests.store.test_store_alerts import event, snapshot


@pytest.mark.usefixtures("store_backend")
def test_ward_alert_list_and_acknowledgement_through_the_feed(api, store, record, read_sse) -> None:
    store.insert_epochs([record(0, features={"hr_bpm": 52.0, "spo2_mean": 79.0})])
    store.apply_alert_events([event("raised", snapshot())])
    with api.client("nurse") as nurse:
        [tile] = nurse.get("/api/ward").json()
        assert (tile["bed_id"], tile["hr"], tile["spo2"], tile["active_alerts"]) == ("bed-1", 52.0, 79.0, 1)
        assert tile["top_alert"]["priority"] == "high" and tile["top_alert"]["state"] == "raised"
        [alert] = nurse.get("/api/alerts").json()
        with nurse.stream("GET", "/api/stream") as feed:
            events = read_sse(feed.iter_lines())
            next(events)  # the hello comment
            acked = nurse.post(f"/api/alerts/{alert['id']}/ack")
            assert acked.status_code == 200 and acked.json()["acknowledged_by"] == "test-nurse"
            pushed = next(events)
        assert pushed["event"] == "alert"
        data = json.loads(pushed["data"])
        assert (data["id"], data["transition"], data["state"]) == (alert["id"], "acknowledged", "acknowledged")
        again = nurse.post(f"/api/alerts/{alert['id']}/ack")
        assert again.status_code == 409 and "already acknowledged by 'test-nurse'" in again.json()["detail"]
        assert nurse.post("/api/alerts/nope/ack").status_code == 404
        assert nurse.get("/api/alerts", params={"state": "acknowledged"}).json()[0]["id"] == alert["id"]
    with api.client("admin") as admin:
        [entry] = [e for e in admin.get("/api/audit").json() if e["action"] == "acknowledge_alert"]
        assert (entry["actor"], entry["role"], entry["target"]) == ("test-nurse", "nurse", alert["id"])


@pytest.mark.usefixtures("store_backend")
def test_watch_rules_crud(api) -> None:
    with api.client("admin") as admin:
        created = admin.post("/api/rules", json={"text": "REM with oxygen desaturation", "min_duration_s": 60})
        assert created.status_code == 201
        rule = created.json()
        assert (rule["bed_id"], rule["threshold"], rule["calibration"], rule["created_by"]) == (
            None,
            None,
            None,
            "test-admin",
        )
        changed = admin.patch(f"/api/rules/{rule['id']}", json={"bed_id": "bed-3", "threshold": 0.4}).json()
        assert (changed["bed_id"], changed["threshold"]) == ("bed-3", 0.4)
        assert [r["id"] for r in admin.get("/api/rules").json()] == [rule["id"]]
        assert admin.delete(f"/api/rules/{rule['id']}").status_code == 204
        assert admin.get(f"/api/rules/{rule['id']}").status_code == 404
        assert admin.get("/api/rules").json() == []
        bad = admin.post("/api/rules", json={"text": "", "min_duration_s": -1})
        assert bad.status_code == 422 and {tuple(e["loc"]) for e in bad.json()["detail"]} == {
            ("body", "text"),
            ("body", "min_duration_s"),
        }


@pytest.mark.usefixtures("store_backend")
def test_thresholds_are_checked_together_and_audited(api) -> None:
    with api.client("admin") as admin:
        default = admin.get("/api/beds/bed-1/thresholds").json()
        assert default["values"] == {} and default["effective"]["spo2_low"] == 88.0
        set_ = admin.put("/api/beds/bed-1/thresholds", json={"spo2_low": 85}).json()
        assert set_["values"] == {"spo2_low": 85.0} and set_["effective"]["spo2_critical"] == 80.0
        assert set_["updated_by"] == "test-admin"
        wrong = admin.put("/api/beds/bed-1/thresholds", json={"spo2_critical": 90})
        assert wrong.status_code == 422 and "must not be above 'spo2_low'" in wrong.json()["detail"]
        assert admin.put("/api/beds/bed-1/thresholds", json={"spo2": 1}).status_code == 422
        assert admin.put("/api/beds/bed-1/thresholds", json={}).json()["values"] == {}
        assert [e["action"] for e in admin.get("/api/audit").json()][:2] == ["set_thresholds", "set_thresholds"]


@pytest.mark.usefixtures("store_backend")
def test_bed_view_events_waveform_and_text_search(api, store, record) -> None:
    wave = np.arange(2 * 960, dtype="<f2").reshape(2, 960) / 1000
    store.insert_epochs(
        [
            record(
                0,
                events=[{"type": "central_apnea", "onset_s": 5.0, "duration_s": 14.0}],
                captions={
                    m: "Light sleep (N2). Central apnea 5.0-19.0 s." if m == "stage_event" else "x"
                    for m in ("stage_event", "brain", "cardiac", "respiratory", "somatic")
                },
            ),
            record(
                1,
                events=[],
                waveform={"fs": 32.0, "channels": ["ECG", "AF"], "data_b64": base64.b64encode(wave.tobytes()).decode()},
            ),
        ]
    )
    store.apply_alert_events([event("raised", snapshot())])
    with api.client("viewer") as viewer:
        night = viewer.get("/api/beds/bed-1/events").json()
        assert [(e["type"], e["onset_s"]) for e in night["events"]] == [("central_apnea", 5.0)]
        assert [a["type"] for a in night["alerts"]] == ["spo2_critical"]
        shown = viewer.get("/api/beds/bed-1/waveform").json()
        assert (shown["epoch"], shown["channels"], len(shown["signals"][1])) == (1, ["ECG", "AF"], 960)
        assert viewer.get("/api/beds/bed-9/waveform").status_code == 404
        found = viewer.get("/api/beds/bed-1/query", params={"q": "central apneas"}).json()
        assert found["method"] == "text"  # no embeddings stored: what the captions state
        assert [m["epoch"] for m in found["matches"]] == [0] and found["matches"][0]["score"] == 1.0
        none = viewer.get("/api/beds/bed-1/query", params={"q": "oxygen desaturation"}).json()
        assert none["matches"] == []  # "oxygen" alone (a word of every SpO2 sentence) is no match
        asked = viewer.get("/api/beds/bed-1/query", params={"q": "How is her breathing?"}).json()
        assert (asked["method"], asked["level"]) == ("latest", "respiratory")  # answered from the right level
        assert [(m["epoch"], m["caption"]) for m in asked["matches"]] == [(1, "respiratory text 1"), (0, "x")]
        assert viewer.get("/api/beds/bed-9/query", params={"q": "apnea"}).status_code == 404
        assert viewer.get("/api/beds/bed-1/query", params={"q": ""}).status_code == 422


@pytest.mark.usefixtures("store_backend")
def test_night_search_ranks_by_the_model_when_embeddings_are_stored(api, store, record) -> None:
    """The stored vectors here are the model's own text vectors of three descriptions (the joint space is
    shared), so the model-side query must find the epoch described like it."""
    from model_runtime.serving.model_api import SleepLM

    lm = SleepLM.load()
    texts = ["Wake with eyes open.", "An obstructive apnea with oxygen desaturation.", "Deep N3 sleep, slow waves."]
    shown = ["Wake (W). No events.", "Light sleep (N2). Obstructive apnea 3.0-15.0 s.", "Deep sleep (N3). No events."]
    # an epoch the encoder reads as deep sleep and the bed view shows as wake (the stage head's verdict)
    texts, shown = [*texts, texts[2]], [*shown, shown[0]]
    store.insert_epochs(
        [
            record(
                i,
                stage=stage,
                embedding=lm.embed_text(t).tolist(),
                captions={"stage_event": caption, "brain": "x", "cardiac": "x", "respiratory": "x", "somatic": "x"},
            )
            for i, (t, caption, stage) in enumerate(zip(texts, shown, ("W", "N2", "N3", "W"), strict=True))
        ]
    )
    with api.client("viewer") as viewer:
        found = viewer.get("/api/beds/bed-1/query", params={"q": "obstructive apnea", "top": 3}, timeout=120).json()
        none = viewer.get("/api/beds/bed-1/query", params={"q": "hypopnea"}, timeout=120).json()
        deep = viewer.get("/api/beds/bed-1/query", params={"q": "deep sleep"}, timeout=120).json()
    # only the epoch above the calibrated threshold whose own caption names the event: not three answers
    assert found["method"] == "model" and [m["epoch"] for m in found["matches"]] == [1]
    assert none["method"] == "model" and none["matches"] == []
    # a stage query answers the epochs shown with that stage: never one whose tile says otherwise
    assert [(m["epoch"], m["stage"]) for m in deep["matches"]] == [(2, "N3")]
