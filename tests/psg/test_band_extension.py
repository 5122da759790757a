"""The band extension restores the top of YASA's band for slow recordings, and touches nothing else."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import signal as sps

from psg.features.band_extension import extend_band

FS, EPOCH = 100.0, 3000


def _power_law_eeg(seconds: int, fs: float, exponent: float, seed: int) -> np.ndarray:
    """Noise whose spectrum falls as 1/f**exponent (the aperiodic EEG background)."""
    n = int(seconds * fs)
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    amplitude = np.where(freqs > 0, np.maximum(freqs, 0.5) ** (-exponent / 2), 0.0)
    phase = np.exp(2j * np.pi * np.random.default_rng(seed).random(freqs.size))
    return np.fft.irfft(amplitude * phase, n=n)


def _resample(x: np.ndarray, source: float, target: float) -> np.ndarray:
    ratio = Fraction(target / source).limit_denominator(1000)
    return sps.resample_poly(x, ratio.numerator, ratio.denominator)


def _band_power(x: np.ndarray, lo: float, hi: float) -> float:
    freqs, psd = sps.welch(x, fs=FS, nperseg=500)
    return float(psd[(freqs >= lo) & (freqs < hi)].sum())


def test_a_50_hz_recording_gets_its_missing_band_back_at_the_original_level() -> None:
    original = _power_law_eeg(300, FS, exponent=2.0, seed=1)
    slow = _resample(_resample(original, FS, 50.0), 50.0, FS)  # recorded at 50 Hz, upsampled for YASA
    extended = extend_band(slow, FS, 50.0, EPOCH)
    truth, missing, restored = (_band_power(x, 26.0, 30.0) for x in (original, slow, extended))
    assert missing < truth / 20  # the anti-alias filter took it
    assert 0.5 < restored / truth < 2.0  # the power law continued
    added = np.fft.rfft((extended - slow).reshape(-1, EPOCH), axis=1)  # epoch by epoch, as it was added
    below_edge = np.fft.rfftfreq(EPOCH, 1.0 / FS) < 0.42 * 50.0
    assert np.abs(added[:, below_edge]).max() < 1e-9 * np.abs(added).max()  # nothing added below the edge


def test_full_band_recordings_and_partial_epochs_are_left_alone() -> None:
    x = _power_law_eeg(90, FS, exponent=1.5, seed=2)
    assert extend_band(x, FS, 100.0, EPOCH) is x
    np.testing.assert_array_equal(extend_band(x[: EPOCH - 1], FS, 50.0, EPOCH), x[: EPOCH - 1])
    tail = extend_band(x[: EPOCH + 10], FS, 50.0, EPOCH)
    np.testing.assert_array_equal(tail[EPOCH:], x[EPOCH : EPOCH + 10])  # the trailing partial epoch


def test_the_same_recording_always_gets_the_same_noise() -> None:
    x = _resample(_power_law_eeg(60, 50.0, exponent=2.0, seed=3), 50.0, FS)
    np.testing.assert_array_equal(extend_band(x, FS, 50.0, EPOCH), extend_band(x, FS, 50.0, EPOCH))
