"""RulesRuntime on the simulated night, replays, and caption records as strict JSON."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from model_runtime.serving.caption_records import caption_records
from model_runtime.serving.rules_runtime import RulesRuntime
from model_runtime.serving.runtimes import RUNTIMES, EpochResult, load_runtime
from psg.captions import MODALITIES
from psg.codecs import EpochMessage
from psg.errors import PSGError
from psg.json_codec import decode_json, encode_json
from psg.recording import Recording
from psg.timeline import Stage

CAPTION_FIELDS = {
    "bed_id",
    "recording_id",
    "epoch",
    "start_time",
    "epoch_s",
    "stage",
    "stage_source",
    "probabilities",
    "captions",
    "features",
    "quality",
    "events",
    "advisories",
    "end_received_at",
    "runtime",
    "aux",
    "embedding",
    "waveform",
    "stage_measurements",
}


def test_rules_runtime_is_registered() -> None:
    runtime = load_runtime("rules")
    assert isinstance(runtime, RulesRuntime) and RUNTIMES["rules"] is RulesRuntime and runtime.name == "rules"


def test_stages_and_captions_of_the_simulated_night(night: Recording, baseline: list[EpochMessage]) -> None:
    results = RulesRuntime().infer(baseline)
    assert [(r.bed_id, r.epoch) for r in results] == [(m.bed_id, m.epoch) for m in baseline]
    for r in results:
        assert r.stage_source == "rules" and set(r.captions) == set(MODALITIES)
        assert all(text.strip() for text in r.captions.values())
        assert "estimate" in r.captions["stage_event"]
    stages = np.array([r.stage for r in results])
    truth = np.array([Stage(int(s)).label for s in night.timeline.stages])
    assert np.mean(stages == truth) >= 0.75
    asleep_truth, asleep = truth != "W", stages != "W"
    assert np.mean(asleep == asleep_truth) >= 0.9
    # Numbers in captions are the measured ones.
    hr = baseline[20].features["hr_bpm"]
    assert f"{hr:.1f} bpm" in results[20].captions["cardiac"]


def test_a_replayed_epoch_is_answered_without_corrupting_the_history(
    baseline: list[EpochMessage], monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = RulesRuntime().infer(baseline[:30])
    runtime = RulesRuntime()
    first = runtime.infer(baseline[:20])
    again = runtime.infer(baseline[15:20])  # a restarted worker re-sends held epochs
    assert again == first[15:20]
    rest = runtime.infer(baseline[20:30])
    assert [r.stage for r in first + rest] == [r.stage for r in straight]
    assert [r.captions for r in first + rest] == [r.captions for r in straight]
    # Older than the cache: recomputed from the history before it, and the history stays as it was.
    monkeypatch.setattr("model_runtime.serving.rules_runtime.CACHE_EPOCHS", 3)
    small = RulesRuntime()
    first = small.infer(baseline[:20])
    assert small.infer([baseline[5]]) == [first[5]]
    assert small.infer(baseline[20:30]) == straight[20:30]


def test_a_new_recording_starts_a_new_history(baseline: list[EpochMessage]) -> None:
    runtime = RulesRuntime()
    runtime.infer(baseline[:25])
    renamed = [dataclasses.replace(m, recording_id="rec-2") for m in baseline[:3]]
    fresh = RulesRuntime().infer(renamed)
    assert runtime.infer(renamed) == fresh


def test_caption_records_are_strict_json_in_the_contract_shape(baseline: list[EpochMessage]) -> None:
    messages = list(baseline[:6])
    messages[2] = dataclasses.replace(messages[2], features={**messages[2].features, "hr_bpm": float("nan")})
    records = caption_records(RulesRuntime(), messages)
    assert len(records) == 6
    for record, message in zip(records, messages, strict=True):
        assert set(record) == CAPTION_FIELDS
        assert (record["bed_id"], record["epoch"], record["runtime"]) == (message.bed_id, message.epoch, "rules")
        assert record["start_time"] == message.start_time and record["end_received_at"] == message.end_received_at
        json.dumps(record, allow_nan=False)
        assert decode_json(encode_json(record), tuple(CAPTION_FIELDS))["captions"] == record["captions"]
    assert records[2]["features"]["hr_bpm"] is None
    assert records[0]["embedding"] is None  # the rules runtime has no joint space
    assert records[0]["stage_measurements"] is None  # a simulated bed: no stage measurements to keep
    assert len(records[0]["aux"]["spo2"]) == 30 and len(records[0]["aux"]["hr"]) == 30
    assert records[0]["waveform"]["fs"] == 32.0 and len(records[0]["waveform"]["channels"]) == 10
    assert caption_records(RulesRuntime(), []) == []


def test_caption_records_refuse_a_runtime_that_mixes_up_epochs(baseline: list[EpochMessage]) -> None:
    class Shuffled:
        name = "shuffled"

        def infer(self, epochs: list[EpochMessage]) -> list[EpochResult]:
            return list(reversed(RulesRuntime().infer(epochs)))

    with pytest.raises(PSGError, match="answered epoch"):
        caption_records(Shuffled(), baseline[:2])
