"""Resampling to the model rate, the running robust z-score, and the per-channel quality checks."""

from __future__ import annotations

import numpy as np
import pytest

from psg.model_input import RunningNormaliser, hold_to_model_rate, robust_stats, to_model_rate
from psg.montage import MODEL_CHANNELS, MODEL_EPOCH_SAMPLES, POS
from psg.quality.epoch_flags import channel_flags, epoch_quality, has_gap
from psg.recording import Signal

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("fs", [512.0, 256.0, 200.0, 100.0, 64.0, 32.0, 25.0])
def test_to_model_rate_gives_exactly_one_epoch_at_64_hz(fs: float) -> None:
    t = np.arange(int(30 * fs)) / fs
    out = to_model_rate(40.0 * np.sin(2 * np.pi * 1.5 * t), fs)
    assert out.shape == (MODEL_EPOCH_SAMPLES,)
    expected = 40.0 * np.sin(2 * np.pi * 1.5 * np.arange(MODEL_EPOCH_SAMPLES) / 64.0)
    assert np.max(np.abs(out[64:-64] - expected[64:-64])) < 0.5  # 1.5 Hz passes untouched away from the edges


def test_gaps_stay_gaps_and_codes_are_held() -> None:
    x = RNG.normal(size=7680)
    x[2560:3840] = np.nan  # seconds 10-15
    out = to_model_rate(x, 256.0)
    assert np.isnan(out[640:960]).all() and np.isfinite(out[:630]).all() and np.isfinite(out[970:]).all()
    codes = np.repeat([2.0, 2.0, np.nan, 1.0], [10, 5, 5, 10])  # 1 Hz POS with a 5-s hole
    held = hold_to_model_rate(codes, 1.0)
    assert set(np.unique(held)) == {1.0, 2.0} and (held[: 20 * 64] == 2.0).all() and (held[20 * 64 :] == 1.0).all()
    assert (hold_to_model_rate(np.full(30, np.nan), 1.0) == -1.0).all()


def test_running_normaliser_is_robust_scale_free_and_replay_safe() -> None:
    epochs = [RNG.normal(size=(7680,)) * 20.0 for _ in range(8)]
    a, b = RunningNormaliser(window_epochs=4), RunningNormaliser(window_epochs=4)
    for i, x in enumerate(epochs):
        za = a.model_signals(i, {"EEG C3-A2": (x, 256.0)})
        zb = b.model_signals(i, {"EEG C3-A2": (10.0 * x + 5.0, 256.0)})
        np.testing.assert_allclose(za, zb, atol=1e-4)  # offset and gain of the amplifier do not matter
        row = za[MODEL_CHANNELS.index("EEG C3-A2")]
        assert abs(float(np.median(row))) < 0.1 and 0.8 < float(np.std(row)) < 1.2
    assert za.dtype == np.float32 and za.shape == (10, MODEL_EPOCH_SAMPLES)
    missing = [r for r, label in enumerate(MODEL_CHANNELS) if label != "EEG C3-A2"]
    assert not za[missing].any()  # channels not sent are zeros
    # A replayed epoch replaces its statistics: the same output again, and the window stays bounded.
    again = a.model_signals(7, {"EEG C3-A2": (epochs[7], 256.0)})
    np.testing.assert_array_equal(again, za)
    assert len(a._stats["EEG C3-A2"]) == 4
    # A movement burst in one epoch barely moves the scale of the next (medians, not means).
    burst = epochs[0].copy()
    burst[:2000] *= 50
    a.model_signals(8, {"EEG C3-A2": (burst, 256.0)})
    after = a.model_signals(9, {"EEG C3-A2": (epochs[1], 256.0)})[MODEL_CHANNELS.index("EEG C3-A2")]
    assert 0.8 < float(np.std(after)) < 1.3


def test_pos_is_not_z_scored_and_flat_channels_give_no_statistics() -> None:
    n = RunningNormaliser()
    out = n.model_signals(0, {POS: (np.full(30, 3.0), 1.0), "ECG": (np.zeros(7680), 256.0)})
    assert (out[MODEL_CHANNELS.index(POS)] == 3.0).all()
    assert not out[MODEL_CHANNELS.index("ECG")].any()
    assert robust_stats(np.zeros(100)) is None and robust_stats(np.full(100, np.nan)) is None


def _eeg(seconds: float = 30.0, fs: float = 256.0) -> np.ndarray:
    t = np.arange(int(seconds * fs)) / fs
    return 30.0 * np.sin(2 * np.pi * 10 * t) + RNG.normal(scale=10.0, size=t.size)


def test_quality_flags_on_constructed_epochs() -> None:
    good = Signal("EEG C3-A2", _eeg(), 256.0, "uV")
    assert channel_flags(good) == []
    assert channel_flags(Signal("EEG C3-A2", np.full(7680, 3.0), 256.0, "uV")) == ["flat"]
    half_off = _eeg()
    half_off[:2560] = 0.0  # 10 s of a lead reading zero
    assert channel_flags(Signal("EEG C3-A2", half_off, 256.0, "uV")) == ["flat"]
    clipped = np.clip(_eeg(), -25.0, 25.0)
    assert channel_flags(Signal("EEG C3-A2", clipped, 256.0, "uV")) == ["clipped"]
    t = np.arange(7680) / 256.0
    assert channel_flags(Signal("EEG C3-A2", _eeg() + 200 * np.sin(2 * np.pi * 60 * t), 256.0, "uV")) == ["noisy"]
    movement = _eeg() + 350 * np.sin(2 * np.pi * 0.7 * t)  # 700 uV swings: beyond any EEG, inside the rails
    assert channel_flags(Signal("EEG C3-A2", movement, 256.0, "uV")) == ["noisy"]
    holed = _eeg()
    holed[100:400] = np.nan
    assert channel_flags(Signal("EEG C3-A2", holed, 256.0, "uV")) == ["gap"]
    assert channel_flags(Signal("EEG C3-A2", np.full(7680, np.nan), 256.0, "uV")) == ["gap"]
    # Constant SpO2 is a healthy sleeper, not a flat lead; a probe off the finger reads 0: no reading.
    assert channel_flags(Signal("SpO2", np.full(30, 97.0), 1.0, "%")) == []
    assert channel_flags(Signal("SpO2", np.r_[np.full(20, 97.0), np.zeros(10)], 1.0, "%")) == ["gap"]
    quality = epoch_quality({"EEG C3-A2": good})
    assert quality["EEG C3-A2"] == [] and quality["ECG"] == ["missing"] and len(quality) == 12


def test_seam_jitter_is_not_a_gap() -> None:
    x = np.ones(7680)
    x[1000] = np.nan  # one sample lost between two chunks rounded onto the grid
    assert not has_gap(x, 256.0)
    x[2000:2003] = np.nan
    assert has_gap(x, 256.0)
    assert has_gap(np.r_[np.ones(10), np.nan, np.ones(19)], 1.0)  # a missing second of SpO2 is a gap


def test_an_airflow_sensor_reading_only_noise_is_flat_but_an_apnea_is_not() -> None:
    fs, t = 32.0, np.arange(0, 30, 1 / 32.0)
    rng = np.random.default_rng(4)
    breathing = 0.4 * np.sin(2 * np.pi * 0.25 * t) + 0.01 * rng.standard_normal(t.size)
    # an apnea: residual efforts and the cardiogenic oscillation of an open airway, plus sensor noise
    apnea = (
        0.01 * np.sin(2 * np.pi * 0.3 * t) + 0.008 * np.sin(2 * np.pi * 1.2 * t) + 0.004 * rng.standard_normal(t.size)
    )
    lead_off = breathing.copy()
    lead_off[12 * 32 :] = 0.02 * rng.standard_normal(t.size - 12 * 32)  # cannula off after 12 s: noise only
    assert channel_flags(Signal("AF", breathing, fs, "a.u.")) == []
    assert channel_flags(Signal("AF", apnea, fs, "a.u.")) == []
    assert channel_flags(Signal("AF", lead_off, fs, "a.u.")) == ["flat"]
    assert channel_flags(Signal("THX", lead_off, fs, "a.u.")) == ["flat"]
    assert channel_flags(Signal("ECG", lead_off, 32.0, "mV")) != ["flat"]  # only airflow and effort


def test_a_1_hz_flow_with_two_breaths_at_the_same_peak_is_not_clipped() -> None:
    """A coarse 1-Hz trace (30 samples an epoch; 5 % is 2) whose two breaths peak at the same integer value
    is breathing, as the real Sleep-EDF flow; five samples on one value are a rail, batched or not."""
    t = np.arange(30.0)
    flow = np.round(600 * np.sin(2 * np.pi * 0.27 * t + 0.3)) + np.random.default_rng(7).permutation(30)
    flow[[5, 20]] = flow.max() + 5  # two breaths share the top value
    pinned = flow.copy()
    pinned[10:15] = flow.max()
    for data, expected in ((flow, []), (pinned, ["clipped"])):
        sig = Signal("AF", data, 1.0, "a.u.", (-2048.0, 2047.0))
        assert channel_flags(sig) == expected
        assert epoch_quality({"AF": sig})["AF"] == [*expected, "band_limited"]
