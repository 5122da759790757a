"""Captions: measured numbers verbatim, stage descriptors from context, events clipped to the epoch,
seeded phrasing variety, and whole-night captioning from annotations or from the rule fallback."""

from __future__ import annotations

import numpy as np
import pytest

from psg.captions import MODALITIES, StageContext, caption_epoch, caption_night, stage_descriptor
from psg.errors import PSGError
from psg.features.neuro import NEURO_FEATURE_KEYS
from psg.montage import AF, EEG_C3, EEG_C4, EMG_CHIN, EOG_L, EOG_R, POS
from psg.recording import Recording, Signal
from psg.timeline import Event, Stage, Timeline

FEATURES = {
    "c3_delta": 0.4523,
    "c3_theta": 0.2011,
    "c3_alpha": 0.0832,
    "c3_sigma": 0.1204,
    "c3_beta": 0.1430,
    "c4_delta": 0.5,
    "c4_theta": 0.2,
    "c4_alpha": 0.1,
    "c4_sigma": 0.1,
    "c4_beta": 0.1,
    "c3_slow_wave_pct": 12.46,
    "c4_slow_wave_pct": 8.0,
    "eog_slow_power": 120.34,
    "eog_rapid_power": 15.25,
    "eog_lr_correlation": -0.8512,
    "emg_tone_uv": 12.3456,
    "emg_median_freq_hz": 54.04,
    "position": 2,
    "position_name": "supine",
    "hr_bpm": 63.6123,
    "hr_min_bpm": 58.04,
    "hr_max_bpm": 70.21,
    "rmssd_ms": 24.4089,
    "n_beats": 32,
    "resp_rate_bpm": 14.23,
    "resp_rate_abd_bpm": 14.1,
    "resp_rate_thx_bpm": 14.3,
    "resp_rate_af_bpm": 14.2,
    "flow_amplitude": 0.45,
    "flow_flatness": 0.321,
    "spo2_mean": 95.14,
    "spo2_min": 93.0,
    "spo2_trend": -0.5,
}


def _canonical(features=FEATURES, stage=Stage.N2, events=(), start=0.0, context=None) -> dict[str, str]:
    return caption_epoch(features, stage, list(events), start, context=context)


def test_numbers_are_the_measured_features_with_fixed_decimals() -> None:
    c = _canonical()
    assert set(c) == set(MODALITIES)
    assert "estimated beat rate at 63.6 bpm" in c["cardiac"]
    assert "ultra-short HRV (RMSSD) at 24.41 ms" in c["cardiac"]
    assert "range 58.0-70.2 bpm over 32 beats" in c["cardiac"]
    assert "delta 45.2%, theta 20.1%, alpha 8.3%, sigma 12.0%, beta 14.3%" in c["brain"]
    assert "dominated by delta activity; slow waves cover 12.5% of the epoch" in c["brain"]
    assert "left-right correlation -0.85 (conjugate eye movements)" in c["brain"]
    assert "breathing rate 14.2 breaths/min (abdomen 14.1, thorax 14.3, airflow 14.2)" in c["respiratory"]
    assert "0.45 of the night baseline (reduced), flattening index 0.32" in c["respiratory"]
    assert "SpO2 averages 95.1% (lowest 93.0%), trend -0.50%/min" in c["respiratory"]
    assert "tone 12.35 µV RMS with median frequency 54.0 Hz" in c["somatic"] and "supine" in c["somatic"]


def test_missing_features_say_not_measurable_and_invent_nothing() -> None:
    empty = dict.fromkeys(FEATURES)
    c = _canonical(empty)
    assert "heart rate was not measurable" in c["cardiac"]
    assert "EEG C3-A2 was not measurable" in c["brain"] and "EOG was not measurable" in c["brain"]
    assert "breathing rate was not measurable" in c["respiratory"] and "SpO2 was not measurable" in c["respiratory"]
    assert "Chin EMG was not measurable" in c["somatic"] and "Body position was not recorded" in c["somatic"]
    assert not any(ch.isdigit() for key in ("cardiac", "respiratory") for ch in c[key].replace("SpO2", ""))
    partial = {**FEATURES, "rmssd_ms": None, "eog_lr_correlation": None}
    c = _canonical(partial)
    assert "63.6 bpm" in c["cardiac"] and "variability was not measurable" in c["cardiac"]
    assert "correlation" not in c["brain"]


def test_stage_sentence_and_context_descriptors() -> None:
    c = _canonical(context=StageContext(Stage.N2, Stage.N2))
    assert c["stage_event"] == "Light sleep (N2), stable. No events."
    assert stage_descriptor(Stage.N2, StageContext(Stage.N1, Stage.N2)) == "Light sleep (N2), transition from N1"
    assert stage_descriptor(Stage.W, StageContext(Stage.R, Stage.W)) == "Wake (W), awakening from R"
    assert stage_descriptor(Stage.R, StageContext(Stage.R, Stage.W)) == "REM sleep (R), before a change to W"
    assert stage_descriptor(Stage.N3) == "Deep sleep (N3)"
    assert stage_descriptor(Stage.UNSCORED) == "Stage uncertain"
    estimated = caption_epoch(FEATURES, Stage.N3, [], 0.0, estimated=True)["stage_event"]
    assert estimated == "Deep sleep (N3) (rule-based estimate). No events."


def test_events_are_clipped_to_the_epoch_in_relative_seconds() -> None:
    events = [
        Event("hypopnea", 290.0, 15.6),  # starts 10 s before the epoch: 0.0-5.6
        Event("obstructive_apnea", 310.0, 40.0),  # runs past the end: 10.0-30.0
        Event("arousal", 400.0, 5.0),  # another epoch: not mentioned
        Event("position_change", 312.5, 0.0, subtype="left"),
    ]
    text = _canonical(events=events, start=300.0)["stage_event"]
    assert "Hypopnea 0.0-5.6 s." in text
    assert "Obstructive apnea 10.0-30.0 s." in text
    assert "Position change to left at 12.5 s." in text
    assert "Arousal" not in text
    assert text.index("Hypopnea") < text.index("Obstructive apnea") < text.index("Position change")


def test_varied_style_differs_across_seeds_and_canonical_is_stable() -> None:
    def varied(seed: int) -> dict[str, str]:
        return caption_epoch(FEATURES, Stage.N2, [], 0.0, style="varied", rng=np.random.default_rng(seed))

    variants = {tuple(varied(seed).values()) for seed in range(8)}
    assert len(variants) > 4
    assert varied(3) == varied(3)
    for v in (varied(s) for s in range(8)):  # every phrasing still carries the measured numbers
        assert "63.6" in v["cardiac"] and "24.41" in v["cardiac"] and "95.1" in v["respiratory"]
    assert _canonical() == _canonical()
    with pytest.raises(PSGError, match="rng"):
        caption_epoch(FEATURES, Stage.N2, [], 0.0, style="varied")
    with pytest.raises(PSGError, match="style"):
        caption_epoch(FEATURES, Stage.N2, [], 0.0, style="poetic")


def _small_recording(with_timeline: bool) -> Recording:
    fs, n_epochs = 128.0, 6
    t = np.arange(int(n_epochs * 30 * fs)) / fs
    rng = np.random.default_rng(0)
    alpha = 30 * np.sin(2 * np.pi * 10 * t) + rng.normal(0, 3, t.size)
    signals = {
        EEG_C3: Signal(EEG_C3, alpha, fs, "uV"),
        EEG_C4: Signal(EEG_C4, alpha, fs, "uV"),
        EOG_L: Signal(EOG_L, rng.normal(0, 10, t.size), fs, "uV"),
        EOG_R: Signal(EOG_R, rng.normal(0, 10, t.size), fs, "uV"),
        EMG_CHIN: Signal(EMG_CHIN, rng.normal(0, 15, t.size), fs, "uV"),
        POS: Signal(POS, np.full(n_epochs * 30, 2.0), 1.0, ""),
        AF: Signal(AF, np.sin(2 * np.pi * 0.25 * t[::4]), fs / 4, ""),  # the hypopnea below needs airflow
    }
    timeline = None
    if with_timeline:
        stages = np.array([Stage.W, Stage.N1, Stage.N2, Stage.N2, Stage.N2, Stage.W])
        timeline = Timeline("small", stages, [Event("hypopnea", 70.0, 25.0)])
    return Recording("small", signals, timeline=timeline)


def test_caption_night_uses_annotations_when_present() -> None:
    records, summary = caption_night(_small_recording(with_timeline=True))
    assert [r["epoch"] for r in records] == list(range(6)) and records[2]["start_s"] == 60.0
    assert [r["stage"] for r in records] == ["W", "N1", "N2", "N2", "N2", "W"]
    assert {r["stage_source"] for r in records} == {"annotation"}
    assert set(records[0]["features"]) >= set(NEURO_FEATURE_KEYS)
    assert [len(r["events"]) for r in records] == [0, 0, 1, 1, 0, 0]  # 70-95 s spans epochs 2 and 3
    assert records[3]["events"][0]["start_in_epoch_s"] == 0.0 and records[3]["events"][0]["end_in_epoch_s"] == 5.0
    assert "Hypopnea 10.0-30.0 s." in records[2]["captions"]["stage_event"]
    assert records[3]["captions"]["stage_event"].startswith("Light sleep (N2), stable.")
    assert summary["tst_min"] == 2.0 and summary["stage_source"] == "annotation"
    assert summary["caption"].startswith("Time in bed was 3.0 min")


def test_caption_night_falls_back_to_rules_and_says_so() -> None:
    records, summary = caption_night(_small_recording(with_timeline=False), style="varied", seed=1)
    assert {r["stage_source"] for r in records} == {"rules"}
    assert all(r["stage"] == "W" for r in records)  # strong alpha and waking chin tone
    assert all("estimate" in r["captions"]["stage_event"] for r in records)
    assert summary["stage_source"] == "rules" and summary["event_source"] == "detectors"
    assert summary["arousal_index"] is None  # the detectors do not score arousals: unknown, not 0
