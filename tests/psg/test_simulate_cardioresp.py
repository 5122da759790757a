"""The cardio-respiratory simulator renders the planned events where they are, deterministically."""

from __future__ import annotations

import numpy as np
import pytest

from psg.dsp import bandpass, peak_to_peak
from psg.simulate.cardiorespiratory import render_cardiorespiratory
from psg.simulate.plan import make_plan
from psg.timeline import Event, Stage, Timeline


def _night(events: list[Event], minutes: int = 20, beats: np.ndarray | None = None) -> Timeline:
    stages = np.full(minutes * 2, Stage.N2, dtype=np.int8)
    return Timeline("test", stages, events=events, beat_times_s=beats)


def _excursion(sig, start_s: float, end_s: float) -> float:
    x = bandpass(sig.data, sig.fs, 0.05, 2.0)
    return float(np.median(peak_to_peak(x, sig.fs, 5.0)[int(start_s * sig.fs) : int(end_s * sig.fs)]))


@pytest.fixture(scope="module")
def rendered():
    events = [
        Event("obstructive_apnea", 300.0, 25.0),
        Event("central_apnea", 500.0, 20.0),
        Event("hypopnea", 700.0, 25.0, subtype="obstructive"),
    ]
    plan = make_plan(_night(events), seed=4)
    return plan, render_cardiorespiratory(plan)


def test_channels_rates_and_units(rendered):
    plan, out = rendered
    expected = {"ECG": 256.0, "ABD": 32.0, "THX": 32.0, "AF": 32.0, "SpO2": 1.0, "HR": 1.0}
    assert {k: s.fs for k, s in out.signals.items()} == expected
    for sig in out.signals.values():
        assert sig.data.size == int(plan.duration_s * sig.fs)


def test_obstructive_apnea_flow_stops_while_effort_continues_paradoxically(rendered):
    _, out = rendered
    s = out.signals
    flow = _excursion(s["AF"], 304, 321) / _excursion(s["AF"], 200, 280)
    effort = _excursion(s["THX"], 304, 321) / _excursion(s["THX"], 200, 280)
    assert flow < 0.1 and effort > 0.5
    thx, abd = (bandpass(s[k].data, 32.0, 0.05, 2.0)[int(310 * 32) : int(324 * 32)] for k in ("THX", "ABD"))
    assert np.corrcoef(thx, abd)[0, 1] < 0.0  # paradoxical: belts move against each other
    normal = [bandpass(s[k].data, 32.0, 0.05, 2.0)[int(200 * 32) : int(280 * 32)] for k in ("THX", "ABD")]
    assert np.corrcoef(*normal)[0, 1] > 0.8


def test_central_apnea_flow_and_effort_stop(rendered):
    _, out = rendered
    s = out.signals
    for label in ("AF", "THX", "ABD"):
        assert _excursion(s[label], 504, 516) / _excursion(s[label], 420, 490) < 0.1


def test_hypopnea_reduces_flow_between_30_and_90_percent(rendered):
    _, out = rendered
    ratio = _excursion(out.signals["AF"], 704, 721) / _excursion(out.signals["AF"], 620, 690)
    assert 0.1 < ratio < 0.7


def test_desaturation_lags_each_event_by_15_to_30_s(rendered):
    plan, out = rendered
    spo2 = out.signals["SpO2"].data
    assert np.all(spo2 == np.round(spo2))  # whole percent, like clinical oximeters
    for ev, desat in zip(plan.respiratory_events, sorted(out.events, key=lambda e: e.onset_s), strict=True):
        assert 15.0 <= desat.onset_s - ev.onset_s <= 30.0
        nadir_t = int(ev.end_s) + int(np.argmin(spo2[int(ev.end_s) : int(ev.end_s) + 40]))
        assert 13.0 <= nadir_t - ev.end_s <= 32.0
        assert spo2[int(ev.onset_s)] - spo2[nadir_t] >= 3.0


def test_real_beat_times_are_used_exactly():
    rng = np.random.default_rng(0)
    beats = np.cumsum(rng.uniform(0.6, 1.2, 600))
    beats = np.concatenate([beats[:300], beats[300:] + 3.5])  # with a pause
    plan = make_plan(_night([], minutes=12, beats=beats), seed=1)
    out = render_cardiorespiratory(plan)
    covered = out.beat_times_s[out.beat_times_s <= beats[-1]]
    np.testing.assert_array_equal(covered, beats)  # no beat moved or added where the record has beats
    assert out.beat_times_s[-1] > plan.duration_s - 2.0  # the unannotated tail gets beats, not a flat line
    ecg = out.signals["ECG"].data
    r_samples = np.round(out.beat_times_s * 256).astype(int)
    local_max = [int(np.argmax(ecg[i - 10 : i + 11])) - 10 for i in r_samples[5:-5]]
    assert max(abs(d) for d in local_max) <= 1  # the R peak sits on the beat


def test_generated_heart_rate_is_slower_in_n3_than_wake():
    stages = np.array([Stage.W] * 20 + [Stage.N3] * 20, dtype=np.int8)
    out = render_cardiorespiratory(make_plan(Timeline("hr", stages), seed=2))
    rr = np.diff(out.beat_times_s)
    mid = np.searchsorted(out.beat_times_s[1:], 600.0)
    assert 60 / rr[mid + 60 :].mean() < 60 / rr[30:mid].mean()


def test_deterministic_per_seed(rendered):
    plan, out = rendered
    again = render_cardiorespiratory(make_plan(plan.timeline, seed=4))
    other = render_cardiorespiratory(make_plan(plan.timeline, seed=5))
    for label, sig in out.signals.items():
        np.testing.assert_array_equal(sig.data, again.signals[label].data)
    assert not np.array_equal(out.signals["AF"].data, other.signals["AF"].data)


def test_annotation_gaps_are_filled_at_the_local_rate_but_real_pauses_kept() -> None:
    from psg.simulate.cardiac import MAX_ANNOTATED_PAUSE_S, fill_annotation_gaps

    # a real 3.1-s pause (59.4 -> 62.5 s), then a 337-s unannotated hole, then 20 s without beats at the end
    real = np.concatenate([np.arange(5.0, 60.0, 0.8), [62.5], np.arange(400.0, 500.0, 0.8)])
    filled = fill_annotation_gaps(real, 520.0, np.random.default_rng(0))
    assert np.all(np.isin(real, filled))  # every real beat is kept, in place
    rr = np.diff(filled)
    assert rr.max() <= MAX_ANNOTATED_PAUSE_S and filled[-1] > 518.0
    assert filled[0] == 5.0  # a 5-s lead-in is within a plausible pause: left as recorded
    hole = filled[(filled > 63.0) & (filled < 399.0)]
    assert hole.size > 400 and np.median(np.diff(hole)) == pytest.approx(0.8, rel=0.05)  # the local real rate
    assert rr[np.searchsorted(filled, 62.5) - 1] == pytest.approx(3.1)  # the real pause survives
