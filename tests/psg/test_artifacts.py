"""Artifacts change the signals exactly where their events say, in the way each kind looks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch

from psg.montage import ABD, CHANNELS, EEG_C3, EEG_C4, EMG_CHIN, EOG_L, SPO2
from psg.recording import Signal
from psg.simulate.artifacts import apply_artifacts
from psg.simulate.neuro import render_neuro
from psg.simulate.plan import make_plan
from psg.timeline import Event, Timeline

FS = 256.0


def _signals(plan) -> dict[str, Signal]:
    signals = dict(render_neuro(plan).signals)
    t = np.arange(int(plan.duration_s * 32)) / 32.0
    signals[ABD] = Signal(ABD, np.sin(2 * np.pi * 0.25 * t), 32.0, "a.u.")
    signals[SPO2] = Signal(SPO2, np.full(int(plan.duration_s), 96.0), 1.0, "%")
    return signals


@pytest.fixture(scope="module")
def applied():
    plan = make_plan(Timeline("artifacts", np.full(12, 2, dtype=np.int8)), seed=2)
    plan.artifacts = [
        Event("artifact", 20.0, 1.0, subtype="electrode_pop", channel=EEG_C3),
        Event("artifact", 40.0, 30.0, subtype="lead_off", channel=EOG_L),
        Event("artifact", 50.0, 20.0, subtype="lead_off", channel=SPO2),
        Event("artifact", 90.0, 10.0, subtype="clipping", channel=EEG_C4),
        Event("artifact", 120.0, 8.0, subtype="movement", channel=EEG_C3),
        Event("artifact", 200.0, 60.0, subtype="mains", channel=EMG_CHIN),
        Event("artifact", 300.0, 5.0, subtype="lead_off", channel="ECG"),  # channel not rendered: skipped
    ]
    before = _signals(plan)
    after = {label: Signal(s.label, s.data.copy(), s.fs, s.unit) for label, s in before.items()}
    apply_artifacts(plan, after)
    return plan, before, after


def _win(signals, label, t0, t1):
    return signals[label].window(t0, t1)


def test_electrode_pop_is_a_step_that_decays(applied):
    _, before, after = applied
    diff = _win(after, EEG_C3, 20.0, 21.0) - _win(before, EEG_C3, 20.0, 21.0)
    assert abs(diff[0]) > 0.25 * CHANNELS[EEG_C3].physical_max
    assert abs(diff[-1]) < 0.1 * abs(diff[0])
    assert np.all(np.sign(diff) == np.sign(diff[0]))


def test_lead_off_is_flat_near_zero_and_spo2_reads_zero(applied):
    _, _, after = applied
    assert np.std(_win(after, EOG_L, 40.0, 70.0)) < 5.0
    assert abs(np.mean(_win(after, EOG_L, 40.0, 70.0))) < 1.0
    assert np.all(_win(after, SPO2, 50.0, 70.0) == 0.0)


def test_clipping_sits_on_the_rails(applied):
    _, _, after = applied
    seg = _win(after, EEG_C4, 90.0, 100.0)
    spec = CHANNELS[EEG_C4]
    assert seg.max() == spec.physical_max and seg.min() == spec.physical_min
    assert np.mean((seg == spec.physical_max) | (seg == spec.physical_min)) > 0.1


def test_movement_hits_every_neuro_channel_and_the_belts(applied):
    _, before, after = applied
    for label in (EEG_C3, EEG_C4, EOG_L, EMG_CHIN, ABD):
        assert np.std(_win(after, label, 121.0, 127.0)) > 2 * np.std(_win(before, label, 121.0, 127.0))


def test_mains_hum_at_the_subject_mains_frequency(applied):
    plan, _, after = applied
    f, p = welch(_win(after, EMG_CHIN, 200.0, 260.0), FS, nperseg=int(4 * FS))
    assert abs(f[np.argmax(p)] - plan.subject.mains_hz) <= 0.5


def test_nothing_changes_outside_the_events(applied):
    plan, before, after = applied
    for label, sig in after.items():
        inside = np.zeros(sig.data.size, dtype=bool)
        for ev in plan.artifacts:
            if ev.subtype == "movement" or ev.channel == label:
                inside[int(ev.onset_s * sig.fs) : int(np.ceil(ev.end_s * sig.fs))] = True
        np.testing.assert_array_equal(sig.data[~inside], before[label].data[~inside])


def test_artifacts_are_deterministic_per_seed():
    timeline = Timeline("det", np.full(40, 2, dtype=np.int8))
    plans = [make_plan(timeline, seed=9, artifacts=True) for _ in range(2)]
    assert plans[0].artifacts
    results = []
    for plan in plans:
        signals = _signals(plan)
        apply_artifacts(plan, signals)
        results.append(signals)
    for label in results[0]:
        np.testing.assert_array_equal(results[0][label].data, results[1][label].data)
