"""The alert engine on hand-built epochs: every transition, onset delays, thresholds, suppression,
clusters, advisories, the audit trail and bad acknowledgements. Device times only, so deterministic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from psg.alerts import AlertConfig, AlertEngine, AlertError, Priority, State, Thresholds
from psg.codecs import EpochMessage
from psg.errors import PSGError
from psg.montage import AUX_CHANNELS, MODEL_CHANNELS

T0 = 1_700_000_000.0
BED = "bed1"


def epoch(
    n: int,
    spo2: float | list[float] = 96.0,
    hr: float | list[float] = 70.0,
    bad: dict[str, list[str]] | None = None,
    events: list[dict] | None = None,
    bed: str = BED,
) -> EpochMessage:
    """Epoch ``n`` of a recording starting at T0: constant or per-second SpO2/HR, all channels good."""
    aux = np.empty((2, 30), np.float32)
    aux[0], aux[1] = spo2, hr
    quality = {label: [] for label in MODEL_CHANNELS + AUX_CHANNELS}
    quality.update(bad or {})
    return EpochMessage(
        bed, "rec1", n, T0 + 30 * n, np.zeros((10, 1920), np.float32), aux, quality, events=events or []
    )


def kinds(events) -> list[tuple[str, str]]:
    return [(e.kind, e.alert.type) for e in events]


def run(engine: AlertEngine, messages) -> list:
    out = []
    for m in messages:
        out += engine.process(m)
    return out


def test_onset_delay_14_s_below_80_raises_nothing_15_s_raises() -> None:
    engine = AlertEngine()
    low14 = [96.0] * 16 + [75.0] * 14
    assert [k for k in kinds(engine.process(epoch(0, low14))) if k[1] == "spo2_critical"] == []
    engine = AlertEngine()
    low15 = [96.0] * 15 + [75.0] * 15
    events = engine.process(epoch(0, low15))
    raised = [e for e in events if e.kind == "raised" and e.alert.type == "spo2_critical"]
    assert len(raised) == 1
    alert = raised[0].alert
    assert alert.priority is Priority.HIGH and alert.state is State.RAISED
    assert alert.evidence["start"] == T0 + 15 and alert.evidence["end"] == T0 + 30
    assert alert.evidence["values"]["min_spo2"] == 75.0
    # 75 % is below the 88 % desaturation threshold too: the medium alert raises as well
    assert ("raised", "desaturation") in kinds(events)


def test_onset_counts_consecutive_seconds_across_epochs() -> None:
    engine = AlertEngine()
    assert kinds(engine.process(epoch(0, [96.0] * 22 + [70.0] * 8))) == []  # 8 s
    events = engine.process(epoch(1, [70.0] * 7 + [96.0] * 23))  # 8 + 7 = 15 s
    assert ("raised", "spo2_critical") in kinds(events)
    assert [a.evidence["start"] for a in engine.active() if a.type == "spo2_critical"] == [T0 + 22]


def test_nan_second_breaks_the_run() -> None:
    engine = AlertEngine()
    series = [96.0] * 10 + [70.0] * 10 + [float("nan")] + [70.0] * 9
    assert kinds(engine.process(epoch(0, series))) == []


def test_desaturation_dedupes_then_resolves_after_hysteresis() -> None:
    engine = AlertEngine()
    events = engine.process(epoch(0, 85.0))
    assert kinds(events) == [("raised", "desaturation")]
    alert_id = events[0].alert.id
    assert alert_id == f"bed1:desaturation:{int(T0) + 15}"  # bed, type, device second it was raised
    # ongoing: one 'updated' per epoch, same alert, evidence extended
    events = engine.process(epoch(1, 84.0))
    assert kinds(events) == [("updated", "desaturation")]
    assert events[0].alert.id == alert_id
    assert events[0].alert.evidence["end"] == T0 + 60 and events[0].alert.evidence["values"]["min_spo2"] == 84.0
    # a second dip while still active (within hysteresis) merges: count 2, no new alert
    engine.process(epoch(2, [95.0] * 30))
    events = engine.process(epoch(3, [95.0] * 10 + [86.0] * 20))
    assert kinds(events) == [("updated", "desaturation")]
    assert events[0].alert.evidence["count"] == 2
    # clear 30 s: not yet; clear 60 s: resolved (auto, medium does not latch)
    assert kinds(engine.process(epoch(4, 95.0))) == []
    events = engine.process(epoch(5, 95.0))
    assert kinds(events) == [("resolved", "desaturation")]
    assert events[0].alert.state is State.RESOLVED and engine.active() == []
    # a later dip is a new alert with a new id
    events = engine.process(epoch(6, 85.0))
    assert [e.alert.id for e in events if e.kind == "raised"] == [f"bed1:desaturation:{int(T0) + 6 * 30 + 15}"]


def test_high_alert_latches_until_acknowledged_and_clear() -> None:
    engine = AlertEngine()
    events = engine.process(epoch(0, hr=35.0))
    assert kinds(events) == [("raised", "bradycardia")]
    alert_id = events[0].alert.id
    for n in range(1, 4):  # clear for 90 s: still latched (never auto-resolves)
        assert [e.kind for e in engine.process(epoch(n)) if e.kind == "resolved"] == []
    assert [a.id for a in engine.active()] == [alert_id]
    # acknowledging once clear resolves it at once
    events = engine.acknowledge(alert_id, "nurse.kim", T0 + 125)
    assert [e.kind for e in events] == ["acknowledged", "resolved"]
    assert engine.active() == []


def test_acknowledged_high_alert_resolves_only_after_the_condition_clears() -> None:
    engine = AlertEngine()
    alert_id = engine.process(epoch(0, hr=160.0))[0].alert.id
    assert engine.get(alert_id).type == "tachycardia"
    events = engine.acknowledge(alert_id, "nurse.kim", T0 + 31)
    assert [e.kind for e in events] == ["acknowledged"]
    assert kinds(engine.process(epoch(1, hr=165.0))) == [("updated", "tachycardia")]
    assert engine.get(alert_id).state is State.ACKNOWLEDGED
    assert kinds(engine.process(epoch(2))) == []
    assert kinds(engine.process(epoch(3))) == [("resolved", "tachycardia")]


def test_escalation_once_when_not_acknowledged() -> None:
    engine = AlertEngine(AlertConfig(escalate_after_s=120))
    alert = engine.process(epoch(0, 70.0))
    high = next(e.alert for e in alert if e.alert.type == "spo2_critical")
    raised_at = high.raised_at
    assert engine.tick(raised_at + 119) == []
    events = engine.tick(raised_at + 120)
    assert kinds(events) == [("escalated", "spo2_critical")]
    assert events[0].alert.escalated
    assert engine.tick(raised_at + 500) == []  # once only
    # an acknowledged high alert does not escalate
    engine = AlertEngine()
    high = next(e.alert for e in engine.process(epoch(0, 70.0)) if e.alert.type == "spo2_critical")
    engine.acknowledge(high.id, "nurse.kim", high.raised_at + 10)
    assert engine.tick(high.raised_at + 600) == []


def test_escalation_happens_in_process_on_device_time() -> None:
    engine = AlertEngine()
    run(engine, [epoch(0, 70.0), epoch(1, 70.0), epoch(2, 70.0), epoch(3, 70.0)])
    events = engine.process(epoch(4, 70.0))  # raised at T0+15, now T0+150
    assert ("escalated", "spo2_critical") in kinds(events)


def test_per_bed_thresholds() -> None:
    engine = AlertEngine()
    engine.set_thresholds("copd", spo2_low=85.0)
    assert kinds(engine.process(epoch(0, 86.0, bed="copd"))) == []
    assert kinds(engine.process(epoch(0, 86.0, bed="other"))) == [("raised", "desaturation")]
    assert engine.thresholds("copd").spo2_low == 85.0 and engine.thresholds("other").spo2_low == 88.0
    engine.set_thresholds("copd", spo2_low_onset_s=40)
    assert engine.thresholds("copd").spo2_low == 85.0  # changes stack on the bed's own
    with pytest.raises(AlertError, match="spo2_critical"):
        engine.set_thresholds("copd", spo2_critical=90.0)
    with pytest.raises(AlertError, match="set_thresholds"):
        engine.set_thresholds("copd", no_such=1.0)
    with pytest.raises(AlertError, match="brady_onset_s"):
        Thresholds(brady_onset_s=0)


def test_flat_spo2_suppresses_desaturation_with_one_technical_alert() -> None:
    engine = AlertEngine()
    events = run(engine, [epoch(0, 60.0, bad={"SpO2": ["flat"]}), epoch(1, 60.0, bad={"SpO2": ["gap"]})])
    assert kinds(events) == [("raised", "technical:spo2"), ("updated", "technical:spo2")]
    tech = events[0].alert
    assert tech.priority is Priority.LOW and "SpO2 signal bad" in tech.evidence["values"]["text"]
    assert [a.type for a in engine.active()] == ["technical:spo2"]
    events = engine.process(epoch(2, 96.0))
    assert kinds(events) == [("resolved", "technical:spo2")]
    assert engine.active() == []


def test_signal_loss_event_suppresses_and_cardiac_needs_both_sources_bad() -> None:
    engine = AlertEngine()
    loss = {"type": "signal_loss", "onset_s": 0.0, "duration_s": 30.0, "channel": "SpO2", "reason": "lead_off"}
    assert kinds(engine.process(epoch(0, 70.0, events=[loss]))) == [("raised", "technical:spo2")]
    # ECG flat but a good monitor HR: the rate is still trustworthy
    events = engine.process(epoch(1, hr=30.0, bad={"ECG": ["flat"]}))
    assert ("raised", "bradycardia") in kinds(events)
    engine = AlertEngine()
    events = engine.process(epoch(0, hr=30.0, bad={"ECG": ["flat"], "HR": ["missing"]}))
    assert kinds(events) == [("raised", "technical:cardiac")]


def test_suppression_does_not_extend_an_active_alert() -> None:
    engine = AlertEngine()
    engine.process(epoch(0, 85.0))
    events = engine.process(epoch(1, 60.0, bad={"SpO2": ["flat"]}))
    assert kinds(events) == [("raised", "technical:spo2")]
    assert next(a for a in engine.active() if a.type == "desaturation").evidence["end"] == T0 + 30
    # bad for 60 s: the desaturation resolves (not extended), the technical alert stays
    events = engine.process(epoch(2, 60.0, bad={"SpO2": ["flat"]}))
    assert ("resolved", "desaturation") in kinds(events)
    assert [a.type for a in engine.active()] == ["technical:spo2"]


def resp(onset: float, kind: str = "obstructive_apnea", duration: float = 15.0) -> dict:
    return {"type": kind, "onset_s": onset, "duration_s": duration, "channel": "AF"}


def test_apnea_cluster_after_three_events_in_five_minutes() -> None:
    engine = AlertEngine()
    assert kinds(engine.process(epoch(0, events=[resp(5.0)]))) == []  # single events: no alert
    # the same event reported again by the next epoch's window is not counted twice
    assert kinds(engine.process(epoch(1, events=[resp(5.2), resp(40.0, "hypopnea")]))) == []
    events = engine.process(epoch(4, events=[resp(125.0, "central_apnea")]))
    assert kinds(events) == [("raised", "apnea_cluster")]
    alert = events[0].alert
    assert alert.priority is Priority.MEDIUM
    assert alert.evidence["values"] == {"events": 3, "types": ["central_apnea", "hypopnea", "obstructive_apnea"]}
    assert alert.evidence["start"] == T0 + 5.0
    events = engine.process(epoch(6, events=[resp(185.0)]))
    assert kinds(events) == [("updated", "apnea_cluster")] and events[0].alert.evidence["values"]["events"] == 4
    # it holds while 3 events fit one window (oldest of the last 3: 40 s -> 340 s), then 60 s hysteresis
    assert run(engine, [epoch(n) for n in range(7, 13)]) == []  # up to T0+390
    assert kinds(engine.process(epoch(13))) == [("resolved", "apnea_cluster")]  # T0+420 >= 400


def test_unclassified_apneas_count_in_the_cluster() -> None:
    """An apnea no usable belt could type (``apnea``, e.g. a real montage with its belts off) is a respiratory
    event like the others."""
    engine = AlertEngine()
    run(engine, [epoch(0, events=[resp(5.0, "apnea")]), epoch(1, events=[resp(40.0, "apnea")])])
    events = engine.process(epoch(2, events=[resp(70.0, "apnea")]))
    assert kinds(events) == [("raised", "apnea_cluster")]
    assert events[0].alert.evidence["values"] == {"events": 3, "types": ["apnea"]}


def test_flat_airflow_suppresses_respiratory_events() -> None:
    engine = AlertEngine()
    events = [resp(0.0), resp(10.0, "hypopnea"), resp(20.0, "central_apnea")]
    assert kinds(engine.process(epoch(0, events=events, bad={"AF": ["flat"]}))) == [("raised", "technical:respiratory")]


def test_single_respiratory_events_are_opt_in() -> None:
    engine = AlertEngine(AlertConfig(single_respiratory_events=True))
    events = engine.process(epoch(0, events=[resp(5.0)]))
    assert kinds(events) == [("raised", "respiratory_event")] and events[0].alert.priority is Priority.LOW


def test_asystole_event_is_high() -> None:
    engine = AlertEngine()
    events = engine.process(
        epoch(0, events=[{"type": "asystole", "onset_s": 12.0, "duration_s": 4.5, "channel": "ECG"}])
    )
    assert kinds(events) == [("raised", "asystole")]
    assert events[0].alert.priority is Priority.HIGH and events[0].alert.evidence["start"] == T0 + 12.0


def test_advisories_and_watch_findings_become_advisory_alerts_with_caption() -> None:
    engine = AlertEngine()
    events = engine.process(
        epoch(0),
        advisories=[{"type": "possible_apnea", "score": 0.81}],
        watch_findings=[{"rule_id": "w7", "text": "snoring with desaturation", "score": 0.7}],
        caption="N2 sleep with snoring.",
    )
    assert kinds(events) == [("raised", "advisory:possible_apnea"), ("raised", "watch:w7")]
    assert all(e.alert.priority is Priority.ADVISORY for e in events)
    assert events[0].alert.evidence["caption"] == "N2 sleep with snoring."
    assert events[1].alert.evidence["values"]["text"] == "snoring with desaturation"
    events = engine.process(epoch(1), advisories=[{"type": "possible_apnea", "score": 0.9}])
    assert kinds(events) == [("updated", "advisory:possible_apnea")]
    assert events[0].alert.evidence["count"] == 2 and events[0].alert.evidence["values"]["score"] == 0.9
    quiet = [kinds(engine.process(epoch(n))) for n in range(2, 12)]
    # An advisory episode ends ADVISORY_EPISODE_GAP_S (300 s) after its last epoch: w7 was last true at
    # T0+30 (resolves with epoch 10, ending T0+330), possible_apnea at T0+60 (epoch 11).
    assert quiet == [[]] * 8 + [[("resolved", "watch:w7")], [("resolved", "advisory:possible_apnea")]]


def test_advisories_are_one_per_event_class_per_episode() -> None:
    engine = AlertEngine()
    burst = [
        {"type": t, "score": s}
        for t, s in (("obstructive_apnea", 0.5), ("hypopnea", 0.7), ("central_apnea", 0.4), ("desaturation", 0.6))
    ]
    raised = engine.process(epoch(0), advisories=burst)
    assert kinds(raised) == [("raised", "advisory:respiratory"), ("raised", "advisory:desaturation")]
    assert raised[0].alert.evidence["values"] == {
        "score": 0.7,
        "types": ["central_apnea", "hypopnea", "obstructive_apnea"],
    }
    for n in (1, 2, 6):  # recurrences within 5 min extend the episode (epoch 6 starts 150 s after epoch 1 ends)
        events = engine.process(epoch(n), advisories=[{"type": "mixed_apnea", "score": 0.3}])
        assert kinds(events) == [("updated", "advisory:respiratory")]
    episode = next(a for a in engine.active(BED) if a.type == "advisory:respiratory")
    assert episode.evidence["count"] == 4 and episode.evidence["end"] == T0 + 210
    assert "mixed_apnea" in episode.evidence["values"]["types"]
    later = [engine.process(epoch(n)) for n in range(7, 18)]
    assert [kinds(e) for e in later if e] == [
        [("resolved", "advisory:desaturation")],
        [("resolved", "advisory:respiratory")],
    ]
    assert kinds(engine.process(epoch(18), advisories=burst[:1])) == [("raised", "advisory:respiratory")]


def test_audit_trail_and_json() -> None:
    engine = AlertEngine()
    alert_id = engine.process(epoch(0, 85.0))[0].alert.id
    events = engine.acknowledge(alert_id, "nurse.kim", T0 + 40)
    assert engine.audit == [
        {"action": "acknowledge", "alert_id": alert_id, "user": "nurse.kim", "at": T0 + 40, "previous_state": "raised"}
    ]
    data = events[0].to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["alert"]["state"] == "acknowledged" and data["alert"]["acknowledged_by"] == "nurse.kim"
    assert data["alert"]["audit"] == engine.audit


def test_bad_acknowledgements_raise_naming_the_id() -> None:
    engine = AlertEngine()
    with pytest.raises(AlertError, match="'nope'.*unknown"):
        engine.acknowledge("nope", "nurse.kim", T0)
    alert_id = engine.process(epoch(0, 85.0))[0].alert.id
    engine.acknowledge(alert_id, "nurse.kim", T0 + 31)
    with pytest.raises(AlertError, match="already acknowledged by 'nurse.kim'"):
        engine.acknowledge(alert_id, "nurse.lee", T0 + 32)
    run(engine, [epoch(n) for n in range(1, 4)])
    assert engine.get(alert_id).state is State.RESOLVED
    with pytest.raises(PSGError, match=f"'{alert_id}'.*resolved"):
        engine.acknowledge(alert_id, "nurse.kim", T0 + 200)


def test_replayed_epoch_is_ignored() -> None:
    engine = AlertEngine()
    engine.process(epoch(0, 85.0))
    assert engine.process(epoch(0, 85.0)) == []
    assert len(engine.active()) == 1


def test_simulated_night_through_the_real_epocher(baseline: list[EpochMessage]) -> None:
    """Real epochs (quality, events, aux from the epocher): a mild night rings nothing with the defaults,
    and a bed with a high SpO2 target gets desaturations that raise and auto-resolve, all JSON-ready."""
    engine = AlertEngine()
    assert [e for m in baseline for e in engine.process(m) if not e.alert.type.startswith("technical:")] == []
    engine = AlertEngine()
    engine.set_thresholds(baseline[0].bed_id, spo2_low=95.0)
    events = [e for m in baseline for e in engine.process(m)]
    for e in events:
        assert json.loads(json.dumps(e.to_dict(), allow_nan=False))["kind"] == e.kind
    desat = [e.kind for e in events if e.alert.type == "desaturation" and e.kind != "updated"]
    assert desat and desat.count("raised") == desat.count("resolved")


def test_restored_alerts_absorb_a_replay_instead_of_raising_twice() -> None:
    first = AlertEngine()
    raised = [e.alert for e in first.process(epoch(0, 85.0)) if e.kind == "raised"]
    stored = [a.to_dict() for a in raised]
    restarted = AlertEngine()  # a new worker: the store gives it the active alerts back
    restarted.restore(stored)
    replay = restarted.process(epoch(1, 85.0))
    assert kinds(replay) == [("updated", "desaturation")] and replay[0].alert.id == raised[0].id
    # the same data on an engine without the store raise the same id (deterministic ids)
    assert [e.alert.id for e in AlertEngine().process(epoch(0, 85.0))] == [raised[0].id]


def test_adopting_the_store_acknowledgement_and_resolution() -> None:
    engine = AlertEngine()
    [high] = [e.alert for e in engine.process(epoch(0, 75.0)) if e.alert.type == "spo2_critical"]
    desat = engine.active()[1]
    events = engine.adopt(
        {
            high.id: {"state": "acknowledged", "acknowledged_by": "nurse.ann", "acknowledged_at": T0 + 40},
            desat.id: {"state": "resolved"},
            "unknown": {"state": "acknowledged"},
        }
    )
    assert kinds(events) == [("acknowledged", "spo2_critical")]
    assert engine.get(high.id).acknowledged_by == "nurse.ann" and engine.audit[0]["user"] == "nurse.ann"
    assert [a.type for a in engine.active()] == ["spo2_critical"]  # the resolved one was dropped, silently
    assert engine.adopt({high.id: {"state": "acknowledged"}}) == []  # already acknowledged here


def test_lost_device_streams_raise_one_technical_alert_until_all_are_back() -> None:
    engine = AlertEngine()
    [raised] = engine.device_event(BED, "rec1", "stream_lost", T0 + 5, "bed1-exg")
    assert raised.kind == "raised" and raised.alert.type == "technical:stream"
    assert raised.alert.priority is Priority.MEDIUM and "bed1-exg" in raised.alert.evidence["text"]
    assert kinds(engine.device_event(BED, "rec1", "stream_lost", T0 + 6, "bed1-resp")) == [
        ("updated", "technical:stream")
    ]
    assert kinds(engine.device_event(BED, "rec1", "stream_resumed", T0 + 60, "bed1-exg")) == [
        ("updated", "technical:stream")
    ]
    events = engine.device_event(BED, "rec1", "stream_resumed", T0 + 65, "bed1-resp")
    assert kinds(events) == [("resolved", "technical:stream")] and events[0].alert.resolved_at == T0 + 65
    assert engine.device_event(BED, "rec1", "spool_overflow", T0 + 70, "bridge") == []
    assert engine.active() == []


def test_caption_record_facts_drive_the_same_rules() -> None:
    from psg.alerts.facts import aux_record, facts_from_record

    message = epoch(0, [96.0] * 10 + [75.0] * 20)
    record = {
        "bed_id": BED,
        "recording_id": "rec1",
        "epoch": 0,
        "start_time": T0,
        "epoch_s": 30.0,
        "quality": message.quality,
        "events": [],
        "aux": aux_record(message.aux),
    }
    from_message = kinds(AlertEngine().process(message))
    assert from_message and kinds(AlertEngine().process(facts_from_record(record))) == from_message
    no_aux = facts_from_record({**record, "aux": None})
    assert np.isnan(no_aux.aux).all() and AlertEngine().process(no_aux) == []
    with pytest.raises(PSGError, match="field 'aux.spo2': expected numbers or null"):
        facts_from_record({**record, "aux": {"spo2": ["low"], "hr": []}})


def test_high_alert_of_a_bed_that_stopped_sending_escalates_on_wall_time() -> None:
    now = [100.0]
    engine = AlertEngine(clock=lambda: now[0])
    [high] = [e.alert for e in engine.process(epoch(0, 75.0)) if e.alert.type == "spo2_critical"]
    now[0] += 119.0
    assert engine.escalate_overdue() == []
    now[0] += 1.0  # the bed sends nothing more, but the nurse still has not acknowledged
    [escalated] = engine.escalate_overdue()
    assert escalated.kind == "escalated" and escalated.alert.id == high.id
    assert escalated.alert.escalated_at == high.raised_at + 120.0
    assert engine.escalate_overdue() == []  # once


def test_resolved_alerts_are_forgotten_beyond_a_bound(monkeypatch) -> None:
    from psg.alerts import book as book_module

    monkeypatch.setattr(book_module, "RESOLVED_KEPT", 2)
    engine = AlertEngine()
    resolved = []
    for n in range(0, 40, 8):  # a short desaturation every 4 min, each resolving after the hysteresis
        for k, spo2 in enumerate([85.0] + [95.0] * 7):
            resolved += [e.alert.id for e in engine.process(epoch(n + k, spo2)) if e.kind == "resolved"]
    assert len(resolved) == 5
    assert engine.get(resolved[-1]).state is State.RESOLVED
    with pytest.raises(AlertError, match="unknown alert id"):
        engine.get(resolved[0])
