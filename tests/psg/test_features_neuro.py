"""Brain/somatic epoch features on signals whose answer is known: sinusoids, white noise, flat leads."""

from __future__ import annotations

import numpy as np
import pytest

from psg.features import epoch_features
from psg.features.neuro import BANDS, NEURO_FEATURE_KEYS, epoch_matrix, neuro_epoch_features
from psg.montage import EEG_C3, EEG_C4, EMG_CHIN, EOG_L, EOG_R, POS
from psg.recording import Recording, Signal
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline

FS = 256.0
N_EPOCHS = 4


def _t(n_epochs: int = N_EPOCHS, fs: float = FS) -> np.ndarray:
    return np.arange(int(n_epochs * 30 * fs)) / fs


def _recording(**channels: np.ndarray) -> Recording:
    labels = {"c3": EEG_C3, "c4": EEG_C4, "eogl": EOG_L, "eogr": EOG_R, "emg": EMG_CHIN, "pos": POS}
    signals = {
        labels[key]: Signal(labels[key], data, 1.0 if key == "pos" else FS, "" if key == "pos" else "uV")
        for key, data in channels.items()
    }
    return Recording("test", signals)


@pytest.mark.parametrize(
    ("freq", "band"), [(2.0, "delta"), (6.0, "theta"), (10.0, "alpha"), (14.0, "sigma"), (22.0, "beta")]
)
def test_sinusoid_lands_in_its_band(freq: float, band: str) -> None:
    rng = np.random.default_rng(1)
    eeg = 30 * np.sin(2 * np.pi * freq * _t()) + rng.normal(0, 1, _t().size)
    f = neuro_epoch_features(_recording(c3=eeg), N_EPOCHS)
    for epoch in f:
        assert epoch[f"c3_{band}"] > 0.95
        assert sum(epoch[f"c3_{b}"] for b in BANDS) == pytest.approx(1.0)


def test_white_noise_spreads_power_by_band_width() -> None:
    rng = np.random.default_rng(2)
    f = neuro_epoch_features(_recording(c4=rng.normal(0, 20, _t().size)), N_EPOCHS)
    total = 30.0 - 0.5
    for band, (lo, hi) in BANDS.items():
        assert np.mean([e[f"c4_{band}"] for e in f]) == pytest.approx((hi - lo) / total, abs=0.02)


def test_slow_wave_coverage_follows_the_75_uv_rule() -> None:
    t = _t()
    big = 50 * np.sin(2 * np.pi * 1.0 * t)  # 100 uV peak-to-peak
    small = 30 * np.sin(2 * np.pi * 1.0 * t)  # 60 uV peak-to-peak
    half = np.where((t % 30) < 15, big, small)
    f_big, f_small, f_half = (neuro_epoch_features(_recording(c3=x), N_EPOCHS) for x in (big, small, half))
    assert all(e["c3_slow_wave_pct"] > 95 for e in f_big)
    assert all(e["c3_slow_wave_pct"] == 0 for e in f_small)
    assert all(40 < e["c3_slow_wave_pct"] < 60 for e in f_half)


def test_conjugate_slow_eye_movements() -> None:
    sem = 40 * np.sin(2 * np.pi * 0.4 * _t())
    f = neuro_epoch_features(_recording(eogl=sem, eogr=-sem), N_EPOCHS)
    for e in f:
        assert e["eog_lr_correlation"] == pytest.approx(-1.0, abs=1e-6)
        assert e["eog_slow_power"] == pytest.approx(80**2 / 2, rel=0.05)  # variance of E1 - E2
        assert e["eog_rapid_power"] < 0.01 * e["eog_slow_power"]


def test_rapid_eye_movements_and_in_phase_eeg() -> None:
    rng = np.random.default_rng(3)
    rapid = 30 * np.sin(2 * np.pi * 2.5 * _t())
    eeg = 20 * np.sin(2 * np.pi * 1.5 * _t())  # frontal EEG reaches both leads in phase
    f = neuro_epoch_features(_recording(eogl=rapid + eeg + rng.normal(0, 1, _t().size), eogr=-rapid + eeg), N_EPOCHS)
    for e in f:
        assert e["eog_rapid_power"] == pytest.approx(60**2 / 2, rel=0.05)  # EEG cancels in E1 - E2
        assert -0.9 < e["eog_lr_correlation"] < 0.0
    f_eeg = neuro_epoch_features(_recording(eogl=eeg + rng.normal(0, 1, _t().size), eogr=eeg), N_EPOCHS)
    assert all(e["eog_lr_correlation"] > 0.95 for e in f_eeg)


def test_single_eog_lead_gives_powers_but_no_correlation() -> None:
    f = neuro_epoch_features(_recording(eogl=30 * np.sin(2 * np.pi * 0.3 * _t())), N_EPOCHS)
    assert f[0]["eog_slow_power"] == pytest.approx(30**2 / 2, rel=0.05)
    assert f[0]["eog_lr_correlation"] is None


def test_emg_tone_is_band_limited_rms() -> None:
    rng = np.random.default_rng(4)
    tone = np.where(_t() < 60, 20.0, 2.0)  # waking tone, then atonia
    f = neuro_epoch_features(_recording(emg=rng.normal(0, 1, _t().size) * tone), N_EPOCHS)
    in_band = np.sqrt(90.0 / 128.0)  # white noise: 10-100 Hz share of the 0-128 Hz variance
    assert f[0]["emg_tone_uv"] == pytest.approx(20 * in_band, rel=0.05)
    assert f[3]["emg_tone_uv"] == pytest.approx(2 * in_band, rel=0.05)
    assert f[0]["emg_median_freq_hz"] == pytest.approx(55.0, abs=3.0)  # flat spectrum: mid-band


def test_position_mode_and_names() -> None:
    pos = np.full(N_EPOCHS * 30, 2.0)
    pos[:20] = 1.0  # left for 20 of the first 30 s
    pos[30:40] = 0.0  # right for 10 s of epoch 1: supine wins
    pos[60:90] = 7.0  # not a position code
    f = neuro_epoch_features(_recording(pos=pos), N_EPOCHS)
    assert [(e["position"], e["position_name"]) for e in f] == [
        (1, "left"),
        (2, "supine"),
        (-1, "unknown"),
        (2, "supine"),
    ]
    assert isinstance(f[0]["position"], int)


def test_missing_flat_and_broken_channels_give_none() -> None:
    rng = np.random.default_rng(5)
    c3 = rng.normal(0, 20, _t().size)
    c3[int(30 * FS) + 10] = np.nan  # one bad sample spoils epoch 1 only
    c4 = np.zeros(_t().size)  # flat lead
    emg = rng.normal(0, 5, int(2.5 * 30 * FS))  # stops in epoch 2
    f = neuro_epoch_features(_recording(c3=c3, c4=c4, emg=emg), N_EPOCHS)
    assert set(f[0]) == set(NEURO_FEATURE_KEYS)
    assert f[0]["c3_alpha"] is not None and f[1]["c3_alpha"] is None and f[2]["c3_alpha"] is not None
    assert all(e["c4_delta"] is None and e["c4_slow_wave_pct"] is None for e in f)
    assert [e["emg_tone_uv"] is None for e in f] == [False, False, True, True]
    assert all(e["eog_slow_power"] is None and e["position"] is None for e in f)


def test_empty_recording_and_zero_epochs() -> None:
    assert neuro_epoch_features(_recording(), 0) == []
    f = neuro_epoch_features(_recording(), 2)
    assert all(value is None for e in f for value in e.values())


def test_epoch_matrix_handles_non_integer_epoch_lengths() -> None:
    sig = Signal("x", np.arange(1000, dtype=float), 10.0 / 3.0, "uV")  # 100 samples per 30 s
    x, valid = epoch_matrix(sig, 3)
    assert x.shape == (3, 100) and valid.all()
    assert x[1, 0] == 100.0 and x[2, 0] == 200.0


def test_epoch_features_merges_all_modalities_and_tolerates_missing_channels() -> None:
    recording = simulate(synthetic_timeline(hours=0.5, seed=1), seed=1)
    features = epoch_features(recording)
    assert len(features) == recording.n_epochs == 60
    for key in (
        "c3_delta",
        "eog_lr_correlation",
        "emg_tone_uv",
        "position_name",
        "hr_bpm",
        "rmssd_ms",
        "resp_rate_bpm",
        "flow_amplitude",
        "spo2_mean",
    ):
        assert sum(f[key] is not None for f in features) > 50, key
    only_eeg = epoch_features(Recording("eeg-only", {EEG_C3: recording.signals[EEG_C3]}))
    assert len(only_eeg) == 60 and set(only_eeg[0]) == set(features[0])
    assert only_eeg[0]["c3_alpha"] is not None
    assert all(f["hr_bpm"] is None and f["spo2_mean"] is None and f["emg_tone_uv"] is None for f in only_eeg)
