"""Each AASM rule detector fires on small constructed signals at the right time, and not on clean ones."""

from __future__ import annotations

import numpy as np
import pytest

from psg.detectors import DetectedEvent, detect_events, to_events
from psg.detectors.agreement import match_events
from psg.detectors.cardiac import detect_cardiac_events
from psg.detectors.oximetry import detect_desaturations
from psg.detectors.respiratory import detect_respiratory_events
from psg.detectors.signal_loss import detect_signal_loss
from psg.recording import Recording, Signal
from psg.simulate.cardiorespiratory import render_cardiorespiratory
from psg.simulate.plan import make_plan
from psg.synthetic import synthetic_timeline
from psg.timeline import RESPIRATORY_EVENT_TYPES

FS = 32.0
DURATION_S = 600


def _breathing(flow_gain: np.ndarray, effort_gain: np.ndarray, paradox: np.ndarray) -> dict[str, Signal]:
    t = np.arange(flow_gain.size) / FS
    phase = 2 * np.pi * 0.25 * t
    noise = np.random.default_rng(0).normal(0, 0.003, (3, t.size))
    return {
        "AF": Signal("AF", flow_gain * np.sin(phase) + noise[0], FS, "a.u."),
        "THX": Signal("THX", effort_gain * -np.cos(phase) + noise[1], FS, "a.u."),
        "ABD": Signal("ABD", effort_gain * -np.cos(phase - paradox) + noise[2], FS, "a.u."),
    }


def _spo2(drops: list[tuple[float, float]]) -> Signal:
    x = np.full(DURATION_S, 96.0)
    for start, depth in drops:
        x[int(start) : int(start) + 15] -= np.linspace(0, depth, 15)
        x[int(start) + 15 : int(start) + 25] -= np.linspace(depth, 0, 10)
    return Signal("SpO2", np.round(x), 1.0, "%")


def _gains(spans: dict[tuple[float, float], tuple[float, float, float]]):
    n = int(DURATION_S * FS)
    flow, effort, paradox = np.ones(n), np.ones(n), np.zeros(n)
    for (a, b), (f, e, p) in spans.items():
        flow[int(a * FS) : int(b * FS)] = f
        effort[int(a * FS) : int(b * FS)] = e
        paradox[int(a * FS) : int(b * FS)] = p
    return flow, effort, paradox


def test_respiratory_types_fire_at_the_right_time():
    spans = {
        (150, 170): (0.02, 1.0, np.pi),  # obstructive
        (250, 268): (0.02, 0.02, 0.0),  # central
        (350, 374): (0.02, 0.02, 0.0),  # mixed: central first half ...
        (362, 374): (0.02, 1.0, np.pi),  # ... then obstructive efforts
        (450, 470): (0.5, 1.0, 0.0),  # hypopnea (with desaturation below)
    }
    signals = _breathing(*_gains(spans))
    signals["SpO2"] = _spo2([(470, 5.0)])
    found = detect_respiratory_events(Recording("r", signals))
    assert [e.type for e in found] == ["obstructive_apnea", "central_apnea", "mixed_apnea", "hypopnea"]
    for ev, (a, b) in zip(found, [(150, 170), (250, 268), (350, 374), (450, 470)], strict=True):
        assert abs(ev.onset_s - a) < 4 and abs(ev.end_s - b) < 4
    assert found[0].values["flow_drop_pct"] > 90 and found[3].values["spo2_drop_pct"] >= 3


def test_flow_drop_without_desaturation_is_not_a_hypopnea_and_clean_breathing_is_silent():
    signals = _breathing(*_gains({(300, 320): (0.5, 1.0, 0.0)}))
    signals["SpO2"] = _spo2([])
    assert detect_respiratory_events(Recording("r", signals)) == []


def test_desaturation_detector():
    found = detect_desaturations(_spo2([(100, 4.0), (300, 8.0), (450, 2.0)]))
    assert len(found) == 2  # the 2% dip is below the AASM 3% criterion
    assert all(abs(e.onset_s - start) <= 2 for e, start in zip(found, (100, 300), strict=True))
    assert found[1].values["spo2_nadir"] == 88.0


def test_cardiac_rhythm_events():
    rr = np.concatenate(
        [np.full(60, 0.9), np.full(20, 1.8), np.full(60, 0.9), [4.0], np.full(80, 0.55), np.full(20, 0.9)]
    )
    beats = np.cumsum(rr)
    found = detect_cardiac_events(beats)
    kinds = {e.type: e for e in found}
    assert set(kinds) == {"bradycardia", "asystole", "tachycardia"}
    assert abs(kinds["bradycardia"].onset_s - beats[60]) < 4 and kinds["bradycardia"].values["hr_bpm"] < 40
    assert kinds["asystole"].values["pause_s"] == pytest.approx(4.0)
    assert kinds["tachycardia"].values["hr_bpm"] > 90
    assert detect_cardiac_events(np.cumsum(np.full(300, 0.9))) == []


def test_signal_loss_reasons():
    t = np.arange(256 * 60) / 256
    ecg = np.sin(2 * np.pi * 1.2 * t) + 0.01 * np.random.default_rng(1).standard_normal(t.size)
    ecg[256 * 10 : 256 * 20] = 0.0  # lead off
    ecg[256 * 30 : 256 * 35] = 5.0  # clipped at the rail
    thx = np.sin(2 * np.pi * 0.25 * np.arange(32 * 60) / 32)
    thx[32 * 40 :] = 0.7  # stuck
    spo2 = np.full(60, 96.0)
    spo2[20:40] = 0.0  # probe off
    rec = Recording(
        "q",
        {
            "ECG": Signal("ECG", ecg, 256.0, "mV"),
            "THX": Signal("THX", thx, 32.0, "a.u."),
            "SpO2": Signal("SpO2", spo2, 1.0, "%"),
        },
    )
    found = {(e.channel, e.reason): e for e in detect_signal_loss(rec)}
    assert found[("ECG", "lead_off")].onset_s == pytest.approx(10.0)
    assert found[("ECG", "clipped")].onset_s == pytest.approx(30.0)
    assert found[("THX", "flat")].onset_s == pytest.approx(40.0)
    assert found[("SpO2", "lead_off")].duration_s == pytest.approx(20.0)
    assert ("AF", "missing") in found
    assert found[("ECG", "lead_off")].to_dict()["reason"] == "lead_off"


def test_a_trace_beyond_our_range_is_not_clipped_against_it():
    """A lab's flow in its own units (x100: +-100) passes our +-5 a.u.: ours is not its rail, and nothing is lost;
    the same trace pinned at our rail while inside our range is clipped, as before."""
    t = np.arange(32 * 60) / 32
    flow = np.sin(2 * np.pi * 0.25 * t) + 0.01 * np.random.default_rng(2).standard_normal(t.size)
    foreign = Recording("lab", {"AF": Signal("AF", 100.0 * flow, 32.0, "a.u.")})
    assert [e for e in detect_signal_loss(foreign) if e.channel == "AF"] == []
    assert len(detect_respiratory_events(foreign)) == 0  # steady breathing: no event, and the flow was read
    pinned = np.clip(4.0 * flow, -5.0, 5.0)
    pinned[32 * 30 : 32 * 35] = 5.0
    ours = {
        (e.channel, e.reason) for e in detect_signal_loss(Recording("ours", {"AF": Signal("AF", pinned, 32.0, "a.u.")}))
    }
    assert ("AF", "clipped") in ours


def test_a_recording_s_own_range_decides_what_is_lost():
    """A belt in volts (50 uV swings) on its file's +-0.5 mV range breathes; with no range known it is judged
    on our +-5 a.u. and reads at zero (lead-off). An EEG at 700 uV on a +-3.3 mV amplifier is not clipped;
    pinned at a +-700 uV file's rail, it is; passing a range its header declares (0..100 uV, as a malformed
    test file does), that range was no rail."""
    t = np.arange(32 * 60) / 32
    belt = 5e-5 * np.sin(2 * np.pi * 0.25 * t) + 1e-6 * np.random.default_rng(4).standard_normal(t.size)
    own = Recording("lab", {"THX": Signal("THX", belt, 32.0, "a.u.", (-5e-4, 5e-4))})
    assert [e for e in detect_signal_loss(own) if e.channel == "THX"] == []
    assumed = Recording("lab", {"THX": Signal("THX", belt, 32.0, "a.u.")})
    assert {e.reason for e in detect_signal_loss(assumed) if e.channel == "THX"} == {"lead_off"}
    eeg = 50.0 * np.sin(2 * np.pi * 10 * np.arange(256 * 60) / 256)
    eeg[256 * 20 : 256 * 24] = 700.0  # 4 s: under the 5 s a stuck trace needs to be "flat"
    for rails, lost in (((-3276.0, 3276.0), set()), ((-700.0, 700.0), {"clipped"}), ((0.0, 100.0), set())):
        rec = Recording("lab", {"EEG C3-A2": Signal("EEG C3-A2", eeg, 256.0, "uV", rails)})
        assert {e.reason for e in detect_signal_loss(rec) if e.channel == "EEG C3-A2"} == lost


def test_detect_events_and_conversion_on_a_clean_simulated_night():
    plan = make_plan(synthetic_timeline(hours=0.5, seed=2, ahi=0.0), seed=1)
    rec = Recording("clean", render_cardiorespiratory(plan).signals)
    found = [e for e in detect_events(rec) if e.type != "signal_loss"]
    assert all(e.type not in RESPIRATORY_EVENT_TYPES + ("desaturation", "asystole") for e in found)
    as_events = to_events([DetectedEvent("hypopnea", 10.0, 12.0, "AF", {"flow_drop_pct": 50.0})])
    assert as_events[0].type == "hypopnea" and as_events[0].end_s == 22.0


def test_simulated_apnea_night_f1():
    """A 2-h ucddb-like night (AHI 30, the ucddb type mix) rendered and re-detected."""
    timeline = synthetic_timeline(hours=2.0, seed=11, ahi=30.0)
    plan = make_plan(timeline, seed=5)
    rec = Recording("night", render_cardiorespiratory(plan).signals)
    detected = [d.to_event() for d in detect_respiratory_events(rec)]
    truth = timeline.events_of(*RESPIRATORY_EVENT_TYPES)
    assert len(truth) > 20
    assert match_events(detected, truth).f1 >= 0.85
    assert match_events(detected, truth, typed=True).f1 >= 0.85


def test_every_sinus_pause_is_one_asystole_of_its_length() -> None:
    """Pauses of 3.5-5.9 s at real beat times: each found once, with its length (NeuroKit2 alone picks up
    baseline wiggles inside a pause as beats and missed 13 of 32 such pauses before ``plausible_peaks``)."""
    from psg.simulate import simulate
    from psg.timeline import Stage, Timeline

    rng = np.random.default_rng(1)
    beats, pauses = [0.5], []
    while beats[-1] < 1200:
        if len(beats) % 150 == 0:
            pauses.append((beats[-1], float(rng.uniform(3.5, 5.9))))
            beats.append(beats[-1] + pauses[-1][1])
        else:
            beats.append(beats[-1] + 60 / rng.uniform(55, 75))
    timeline = Timeline("pauses", np.full(40, Stage.N2, dtype=np.int8), [], beat_times_s=np.array(beats))
    found = [e for e in detect_events(simulate(timeline, seed=1)) if e.type == "asystole"]
    assert len(found) == len(pauses) == 8
    for (onset, length), event in zip(pauses, sorted(found, key=lambda e: e.onset_s), strict=True):
        assert abs(event.onset_s - onset) < 0.05 and abs(event.duration_s - length) < 0.05
