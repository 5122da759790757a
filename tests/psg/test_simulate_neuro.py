"""The neuro renderer shows the stage physiology the AASM manual describes, deterministically per seed."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, hilbert, sosfiltfilt, welch

from psg.montage import CHANNELS, EEG_C3, EEG_C4, EMG_CHIN, EOG_L, EOG_R
from psg.simulate.neuro import render_neuro
from psg.simulate.plan import make_plan
from psg.timeline import Event, Stage, Timeline

FS = 256.0
BLOCK = 12  # epochs per stage block
ORDER = (Stage.W, Stage.N1, Stage.N2, Stage.N3, Stage.R)


def _blocks_timeline(events: list[Event] | None = None) -> Timeline:
    stages = np.repeat(np.array([int(s) for s in ORDER]), BLOCK)
    return Timeline("blocks", stages, events=events or [])


@pytest.fixture(scope="module")
def night():
    plan = make_plan(_blocks_timeline(), seed=3)
    return plan, render_neuro(plan)


def _stage_samples(label: str, stage: Stage, rendered) -> np.ndarray:
    """Samples of the stage block, trimmed by one epoch at each end (transitions are smoothed)."""
    b = ORDER.index(stage)
    i0, i1 = int(((b * BLOCK) + 1) * 30 * FS), int(((b + 1) * BLOCK - 1) * 30 * FS)
    return rendered.signals[label].data[i0:i1]


def _band_power(x: np.ndarray, lo: float, hi: float) -> float:
    f, p = welch(x, FS, nperseg=int(4 * FS))
    return float(p[(f >= lo) & (f < hi)].sum() * (f[1] - f[0]))


def test_channels_follow_the_montage(night):
    plan, rendered = night
    assert set(rendered.signals) == {EOG_L, EOG_R, EEG_C3, EEG_C4, EMG_CHIN}
    for label, sig in rendered.signals.items():
        assert sig.fs == CHANNELS[label].fs and sig.unit == CHANNELS[label].unit
        assert sig.data.size == plan.n_samples(FS)
        assert np.all(np.isfinite(sig.data))


def test_wake_alpha_peaks_at_subject_alpha(night):
    plan, rendered = night
    for label in (EEG_C3, EEG_C4):
        f, p = welch(_stage_samples(label, Stage.W, rendered), FS, nperseg=int(8 * FS))
        band = (f >= 7.0) & (f <= 13.0)
        assert abs(f[band][np.argmax(p[band])] - plan.subject.alpha_hz) < 0.6
        assert _band_power(_stage_samples(label, Stage.W, rendered), 8, 12) > 3 * _band_power(
            _stage_samples(label, Stage.N2, rendered), 8, 12
        )


def test_n1_theta_replaces_alpha(night):
    _, rendered = night
    n1, w = _stage_samples(EEG_C3, Stage.N1, rendered), _stage_samples(EEG_C3, Stage.W, rendered)
    assert _band_power(n1, 4, 8) > _band_power(n1, 8, 12)
    assert _band_power(w, 8, 12) > _band_power(w, 4, 8)


def _sigma_bursts_per_min(x: np.ndarray, threshold: float) -> float:
    sos = butter(4, (11.0, 16.0), "bandpass", fs=FS, output="sos")
    env = np.abs(hilbert(sosfiltfilt(sos, x)))
    above = np.diff(np.r_[0, (env > threshold).astype(np.int8), 0])
    starts, ends = np.flatnonzero(above == 1), np.flatnonzero(above == -1)
    n_bursts = np.sum((ends - starts) >= 0.3 * FS)
    return n_bursts / (x.size / FS / 60.0)


def test_spindles_in_n2_not_in_wake(night):
    _, rendered = night
    n2 = _stage_samples(EEG_C4, Stage.N2, rendered)
    threshold = 6.0  # uV sigma-band envelope: a spindle of >= ~12 uV peak-to-peak
    density_n2 = _sigma_bursts_per_min(n2, threshold)
    assert 1.5 <= density_n2 <= 12.0
    assert density_n2 > 3 * _sigma_bursts_per_min(_stage_samples(EEG_C4, Stage.W, rendered), threshold)


def _slow_wave_fraction(epoch: np.ndarray) -> float:
    """Fraction of the epoch covered by 0.5-2 Hz waves of > 75 uV peak-to-peak (AASM N3 criterion)."""
    x = sosfiltfilt(butter(2, (0.5, 2.0), "bandpass", fs=FS, output="sos"), epoch)
    ups = np.flatnonzero((x[:-1] < 0) & (x[1:] >= 0))
    covered = sum(b - a for a, b in zip(ups[:-1], ups[1:], strict=True) if np.ptp(x[a:b]) > 75.0)
    return covered / epoch.size


def test_n3_has_enough_slow_waves_and_n2_does_not(night):
    _, rendered = night
    epochs = int(30 * FS)
    n3 = _stage_samples(EEG_C4, Stage.N3, rendered)
    n2 = _stage_samples(EEG_C4, Stage.N2, rendered)
    n3_frac = [_slow_wave_fraction(n3[i : i + epochs]) for i in range(0, n3.size - epochs + 1, epochs)]
    n2_frac = [_slow_wave_fraction(n2[i : i + epochs]) for i in range(0, n2.size - epochs + 1, epochs)]
    assert np.mean(np.array(n3_frac) >= 0.2) >= 0.8
    assert np.median(n2_frac) < 0.2


def test_rem_has_the_lowest_chin_tone(night):
    _, rendered = night
    rms = {s: np.sqrt(np.mean(_stage_samples(EMG_CHIN, s, rendered) ** 2)) for s in ORDER}
    assert min(rms, key=rms.get) == Stage.R
    assert rms[Stage.W] == max(rms.values())


def test_eye_movements_are_anti_phase_but_frontal_eeg_in_phase(night):
    _, rendered = night
    rem = np.corrcoef(_stage_samples(EOG_L, Stage.R, rendered), _stage_samples(EOG_R, Stage.R, rendered))[0, 1]
    n3 = np.corrcoef(_stage_samples(EOG_L, Stage.N3, rendered), _stage_samples(EOG_R, Stage.N3, rendered))[0, 1]
    assert rem < -0.3
    assert n3 > 0.5


def test_spectral_slope_steepens_with_depth(night):
    _, rendered = night

    def slope(stage: Stage) -> float:
        f, p = welch(_stage_samples(EEG_C3, stage, rendered), FS, nperseg=int(4 * FS))
        band = (f >= 1.0) & (f <= 30.0)
        return float(np.polyfit(np.log10(f[band]), np.log10(p[band]), 1)[0])

    assert slope(Stage.N3) < slope(Stage.N2) < slope(Stage.W)


def test_arousal_brings_fast_eeg_and_chin_burst():
    stages = np.full(20, int(Stage.N2))
    arousal = Event("arousal", 300.0, 10.0)
    plan = make_plan(Timeline("arousal", stages, events=[arousal]), seed=5)
    rendered = render_neuro(plan)
    eeg, emg = rendered.signals[EEG_C3].data, rendered.signals[EMG_CHIN].data
    during, before = slice(int(302 * FS), int(308 * FS)), slice(int(280 * FS), int(296 * FS))
    assert _band_power(eeg[during], 8, 30) > 2 * _band_power(eeg[before], 8, 30)
    assert np.std(emg[during]) > 2 * np.std(emg[before])


def test_same_seed_same_signals_other_seed_differs():
    timeline = Timeline("short", np.array([0, 0, 1, 2, 2, 3, 3, 4, 4, 0], dtype=np.int8))
    a = render_neuro(make_plan(timeline, seed=11))
    b = render_neuro(make_plan(timeline, seed=11))
    c = render_neuro(make_plan(timeline, seed=12))
    for label in a.signals:
        np.testing.assert_array_equal(a.signals[label].data, b.signals[label].data)
        assert not np.allclose(a.signals[label].data, c.signals[label].data)


@pytest.mark.slow
def test_yasa_agrees_with_a_two_hour_synthetic_night():
    """YASA (trained on real PSG) stages a simulated 2-h night close to the timeline it came from."""
    yasa = pytest.importorskip("yasa")
    mne = pytest.importorskip("mne")
    cycle = [0] * 10 + [1] * 4 + [2] * 30 + [3] * 30 + [2] * 20 + [4] * 20 + [0] * 2 + [2] * 20 + [3] * 10
    cycle += [2] * 20 + [4] * 30 + [1] * 4 + [0] * 20
    timeline = Timeline("two_hours", np.array(cycle, dtype=np.int8))
    rendered = render_neuro(make_plan(timeline, seed=7))
    names = [EEG_C4, EOG_L, EMG_CHIN]
    raw = mne.io.RawArray(
        np.vstack([rendered.signals[n].data for n in names]) * 1e-6,
        mne.create_info(names, FS, ch_types=["eeg", "eog", "emg"]),
        verbose=False,
    )
    hypno = yasa.SleepStaging(raw, eeg_name=EEG_C4, eog_name=EOG_L, emg_name=EMG_CHIN).predict()
    labels = {"WAKE": "W", "REM": "R"}
    predicted = np.array([labels.get(str(v), str(v)) for v in hypno.hypno.to_numpy()])
    truth = np.array([Stage(int(s)).label for s in timeline.stages])
    assert np.mean(predicted == truth) >= 0.75
