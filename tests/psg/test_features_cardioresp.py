"""Cardiac and respiratory epoch features measure what was rendered."""

from __future__ import annotations

import numpy as np
import pytest

from psg.features.cardiac import beat_epoch_features, cardiac_epoch_features, detect_r_peaks
from psg.features.respiratory import respiratory_epoch_features
from psg.recording import Recording, Signal
from psg.simulate.cardiorespiratory import render_cardiorespiratory
from psg.simulate.plan import make_plan
from psg.timeline import Event, Stage, Timeline

CARDIAC_KEYS = {"hr_bpm", "hr_min_bpm", "hr_max_bpm", "rmssd_ms", "n_beats"}
RESP_KEYS = {
    "resp_rate_bpm",
    "resp_rate_abd_bpm",
    "resp_rate_thx_bpm",
    "resp_rate_af_bpm",
    "flow_amplitude",
    "flow_flatness",
    "spo2_mean",
    "spo2_min",
    "spo2_trend",
}


@pytest.fixture(scope="module")
def night():
    rng = np.random.default_rng(3)
    beats = np.cumsum(rng.uniform(0.55, 1.3, 1100))  # irregular rhythm, ectopic-like short beats
    stages = np.full(30, Stage.N2, dtype=np.int8)
    events = [Event("obstructive_apnea", 400.0, 30.0), Event("hypopnea", 600.0, 30.0, subtype="obstructive")]
    timeline = Timeline("feat", stages, events=events, beat_times_s=beats)
    plan = make_plan(timeline, seed=7)
    out = render_cardiorespiratory(plan)
    return plan, Recording("feat", out.signals), out


def test_r_peaks_match_the_beats(night):
    _, rec, out = night
    found = detect_r_peaks(rec.require("ECG"))
    assert found.size == out.beat_times_s.size
    assert np.max(np.abs(found - out.beat_times_s)) < 0.01


def test_cardiac_features_equal_real_rr(night):
    _, rec, out = night
    feats = cardiac_epoch_features(rec, rec.n_epochs)
    truth = beat_epoch_features(out.beat_times_s, rec.n_epochs)
    assert set(feats[0]) == CARDIAC_KEYS
    for f, t in zip(feats, truth, strict=True):
        assert f["n_beats"] == t["n_beats"]
        assert abs(f["hr_bpm"] - t["hr_bpm"]) < 0.5
        assert f["hr_min_bpm"] <= f["hr_bpm"] <= f["hr_max_bpm"]


def test_cardiac_falls_back_to_monitor_hr_without_ecg(night):
    _, rec, _ = night
    no_ecg = Recording("x", {k: v for k, v in rec.signals.items() if k != "ECG"})
    feats = cardiac_epoch_features(no_ecg, 4)
    assert 40 < feats[2]["hr_bpm"] < 120 and feats[2]["rmssd_ms"] is None


def test_respiratory_features(night):
    plan, rec, _ = night
    feats = respiratory_epoch_features(rec, rec.n_epochs)
    assert set(feats[0]) == RESP_KEYS
    quiet = feats[5]
    expected = plan.subject.breathing_rate_bpm * 0.94  # N2 rate factor
    assert abs(quiet["resp_rate_bpm"] - expected) < 2.5
    assert 0.8 < quiet["flow_amplitude"] < 1.2
    assert feats[int(410 // 30)]["flow_amplitude"] < 0.2  # inside the apnea
    assert feats[int(610 // 30)]["flow_flatness"] > quiet["flow_flatness"] + 0.03  # flow limitation
    assert 85 <= quiet["spo2_min"] <= quiet["spo2_mean"] <= 100


def test_missing_or_flat_channels_give_none():
    flat = Signal("AF", np.zeros(32 * 120), 32.0, "a.u.")
    feats = respiratory_epoch_features(Recording("x", {"AF": flat}), 4)
    assert all(v is None for f in feats for v in f.values())
    assert all(v is None for v in cardiac_epoch_features(Recording("x", {}), 2)[0].values())
