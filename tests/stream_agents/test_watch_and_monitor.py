"""Watch rules (minimum duration, bed/ward scope, replays, unavailable model) and the alert monitor
(caption records in, alert records out; thresholds, acknowledgements and restores from the store)."""

from __future__ import annotations

import numpy as np
import pytest

from psg.alerts.catalog import AlertError, bed_thresholds
from psg.alerts.facts import aux_record
from psg.alerts.monitor import AlertMonitor, ControlSnapshot
from psg.alerts.watch import WatchRules
from psg.errors import MessageError, PSGError
from psg.montage import AUX_CHANNELS, MODEL_CHANNELS

T0 = 1_700_000_000.0
AXES = {"central apneas": 0, "REM with oxygen desaturation": 1}


class AxisScorer:
    """Each known rule text is one axis of a 4-d space; the score is the epoch's coordinate on it."""

    def compile(self, text: str) -> tuple[np.ndarray, dict]:
        if text not in AXES:
            raise PSGError(f"rule {text!r}: unknown to this scorer")
        vector = np.zeros(4, np.float32)
        vector[AXES[text]] = 1.0
        return vector, {"threshold": 0.5, "method": "test"}

    def score(self, vector: np.ndarray, embedding: np.ndarray) -> float:
        return float(vector @ embedding)


def record(epoch: int, central: float = 0.0, bed: str = "bed-1", spo2: float = 96.0, **extra) -> dict:
    aux = np.empty((2, 30), np.float32)
    aux[0], aux[1] = spo2, 70.0
    base = {
        "bed_id": bed,
        "recording_id": "rec-1",
        "epoch": epoch,
        "start_time": T0 + 30 * epoch,
        "epoch_s": 30.0,
        "stage": "N2",
        "captions": {"stage_event": f"caption {epoch}"},
        "advisories": [],
        "events": [],
        "quality": {label: [] for label in MODEL_CHANNELS + AUX_CHANNELS},
        "aux": aux_record(aux),
        "embedding": [central, 0.0, 0.0, 0.0],
    }
    return {**base, **extra}


def rule(rule_id: int, text: str = "central apneas", **extra) -> dict:
    return {
        "id": rule_id,
        "text": text,
        "bed_id": None,
        "min_duration_s": 30.0,
        "threshold": None,
        "updated_at": 1.0,
        **extra,
    }


def test_a_rule_needs_its_minimum_duration_of_consecutive_epochs() -> None:
    watch = WatchRules(AxisScorer())
    assert [r.id for r in watch.update([rule(1, min_duration_s=60.0)])] == [1]
    assert watch.findings(record(0, central=0.9)) == []  # one epoch of two
    [finding] = watch.findings(record(1, central=0.8))
    assert (finding["rule_id"], finding["score"], finding["threshold"], finding["epochs"]) == (1, 0.8, 0.5, 2)
    assert watch.findings(record(2, central=0.1)) == []  # broken
    assert watch.findings(record(3, central=0.9)) == []
    assert watch.findings(record(3, central=0.9)) == []  # a replay of epoch 3 does not count twice
    assert watch.findings(record(5, central=0.9)) == []  # epoch 4 missing: the streak restarts
    assert watch.findings(record(6, central=0.9, embedding=None)) == []  # no embedding breaks it


def test_rule_scope_override_and_recompilation() -> None:
    watch = WatchRules(AxisScorer())
    watch.update([rule(1, bed_id="bed-2"), rule(2, threshold=0.95)])
    assert watch.findings(record(0, central=0.9, bed="bed-1")) == []  # rule 1 is bed-2's; 0.9 < 0.95
    assert [f["rule_id"] for f in watch.findings(record(0, central=0.9, bed="bed-2"))] == [1]
    assert watch.update([rule(1, bed_id="bed-2"), rule(2, threshold=0.95)]) == []  # unchanged: not recompiled
    assert [r.id for r in watch.update([rule(2, threshold=0.5, updated_at=2.0)])] == [2]
    assert set(watch.rules) == {2}
    assert [f["rule_id"] for f in watch.findings(record(1, central=0.9, bed="bed-1"))] == [2]


def test_rules_that_cannot_run_say_why() -> None:
    watch = WatchRules(AxisScorer())
    watch.update([rule(1, text="something unknown"), rule(2)])
    assert "unknown to this scorer" in watch.unavailable[1] and set(watch.rules) == {2}
    without_model = WatchRules(None)
    without_model.update([rule(2)])
    assert "need the sleeplm runtime" in without_model.unavailable[2]
    assert without_model.findings(record(0, central=1.0)) == []


def test_monitor_turns_captions_into_alert_records_with_findings() -> None:
    monitor = AlertMonitor(scorer=AxisScorer())
    monitor.apply(ControlSnapshot(rules=[rule(7)]))
    out = monitor.caption(record(0, central=0.9))
    assert [(r["kind"], r["event"], r["alert"]["type"], r["alert"]["priority"]) for r in out] == [
        ("alert", "raised", "watch:7", "advisory")
    ]
    assert out[0]["alert"]["evidence"]["values"]["text"] == "central apneas"
    assert out[0]["alert"]["evidence"]["caption"] == "caption 0"
    assert out[0]["bed_id"] == "bed-1"
    with pytest.raises(MessageError, match="aux.hr"):
        monitor.caption(record(1, aux={"spo2": [], "hr": "x"}))


def test_monitor_applies_thresholds_and_acknowledgements_from_the_store() -> None:
    monitor = AlertMonitor()
    assert monitor.caption(record(0, spo2=92.0)) == []
    monitor.apply(ControlSnapshot(thresholds={"bed-1": {"spo2_low": 94.0}}))
    [raised] = monitor.caption(record(1, spo2=92.0))
    assert raised["alert"]["type"] == "desaturation"
    states = {raised["alert"]["id"]: {"state": "acknowledged", "acknowledged_by": "ann", "acknowledged_at": T0}}
    out, _ = monitor.apply(ControlSnapshot(thresholds={"bed-1": {"spo2_low": 94.0}}, alert_states=states))
    assert [(r["event"], r["alert"]["acknowledged_by"]) for r in out] == [("acknowledged", "ann")]
    monitor.apply(ControlSnapshot())  # the bed's own limits removed: back to the defaults
    assert monitor.engine.thresholds("bed-1").spo2_low == 88.0


def test_monitor_restores_and_handles_device_events() -> None:
    first = AlertMonitor()
    first.apply(ControlSnapshot(thresholds={"bed-1": {"spo2_low": 94.0}}))
    [raised] = first.caption(record(0, spo2=92.0))
    second = AlertMonitor()
    second.apply(ControlSnapshot(thresholds={"bed-1": {"spo2_low": 94.0}}))
    second.restore("bed-1", [raised["alert"]])
    assert "bed-1" in second.restored and second.active_ids() == [raised["alert"]["id"]]
    assert [r["event"] for r in second.caption(record(1, spo2=92.0))] == ["updated"]
    lost = {
        "kind": "technical",
        "bed_id": "bed-1",
        "recording_id": "rec-1",
        "stream": "bed-1-aux",
        "type": "stream_lost",
        "at": T0 + 70,
    }
    assert [r["alert"]["type"] for r in second.device(lost)] == ["technical:stream"]
    with pytest.raises(MessageError, match="expected bed_id"):
        second.device({"kind": "technical"})
    second.forget_beds(["bed-1"])
    assert "bed-1" not in second.restored


def test_bed_thresholds_refuse_unknown_or_inconsistent_values() -> None:
    assert bed_thresholds({"spo2_low": 85}).spo2_low == 85.0
    with pytest.raises(AlertError, match="unknown, expected some of"):
        bed_thresholds({"spo2": 85})
    with pytest.raises(AlertError, match="must not be above 'spo2_low'"):
        bed_thresholds({"spo2_critical": 90, "spo2_low": 85})


def test_the_model_scorer_runs_on_the_shipped_checkpoint_and_bank() -> None:
    """The live adapter: SleepLM's text vector and bank-calibrated threshold; the rules runtime gets none."""
    from model_runtime.model.shipped import SHIPPED_CHECKPOINT
    from model_runtime.serving.rules_runtime import RulesRuntime
    from model_runtime.serving.sleeplm_runtime import SleepLMRuntime
    from model_runtime.serving.watch_scoring import rule_scorer_for

    assert rule_scorer_for(RulesRuntime(), SHIPPED_CHECKPOINT) is None
    scorer = rule_scorer_for(SleepLMRuntime(), SHIPPED_CHECKPOINT)
    assert scorer is not None
    vector, calibration = scorer.compile("REM with oxygen desaturation")
    assert calibration["method"] == "bank-f1" and -1.0 <= calibration["threshold"] <= 1.0
    assert calibration["concepts"] == {"stages": ["R"], "events": ["desaturation"]}
    watch = WatchRules(scorer)
    [calibrated, lowered] = watch.update(
        [rule(1, text="REM with oxygen desaturation"), rule(2, text="REM with oxygen desaturation", threshold=-1.0)]
    )
    assert calibrated.threshold == calibration["threshold"] and lowered.threshold == -1.0
    findings = watch.findings(record(0, embedding=vector.tolist()))
    assert [f["score"] for f in findings if f["rule_id"] == 2] == [round(scorer.score(vector, vector), 4)]
