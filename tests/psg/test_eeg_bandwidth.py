"""A device low-pass below YASA's band is told from EEG's own fall-off (``psg.features.eeg_bandwidth``).

Why: missing beta reads as sleep to YASA; a recording whose EEG was low-passed near 15 Hz is staged
``uncertain`` rather than N3. The threshold sits between the steepest physiological slopes measured
(-5.8, real N3 EEG) and a 15-Hz filter's (-10.5 and steeper); these tests pin both sides on synthetic EEG.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from psg.features.eeg_bandwidth import (
    LOW_PASSED_SLOPE,
    beta_slope,
    epoch_beta_slopes,
    full_band,
    is_low_passed,
    low_pass_slope,
    low_passed_reason,
)
from psg.recording import Signal


def _pink_eeg(fs: float, minutes: float = 5.0, exponent: float = 2.0, seed: int = 0) -> np.ndarray:
    """Random-phase noise with a 1/f^exponent spectrum: EEG's aperiodic background."""
    n = int(minutes * 60 * fs)
    freqs = np.fft.rfftfreq(n, 1 / fs)
    amplitude = np.where(freqs > 0, np.maximum(freqs, 0.5) ** (-exponent / 2), 0.0)
    phase = np.exp(2j * np.pi * np.random.default_rng(seed).random(freqs.size))
    return np.fft.irfft(amplitude * phase, n=n) * 1e3


@pytest.mark.parametrize("exponent", [1.0, 2.0, 3.0])
def test_eeg_backgrounds_are_not_flagged(exponent: float) -> None:
    sig = Signal("EEG", _pink_eeg(100.0, exponent=exponent), 100.0, "uV")
    slope = beta_slope(sig)
    assert slope == pytest.approx(-exponent, abs=0.5)
    assert low_pass_slope(sig) is None


@pytest.mark.parametrize("fs", [50.0, 100.0, 256.0])
def test_a_15_hz_device_low_pass_is_flagged_at_any_rate(fs: float) -> None:
    x = sps.sosfiltfilt(sps.butter(4, 15.0, fs=fs, output="sos"), _pink_eeg(fs))
    sig = Signal("EEG", x, fs, "uV")
    slope = beta_slope(sig)
    assert slope is not None and slope < LOW_PASSED_SLOPE
    assert low_pass_slope(sig) == slope
    assert f"slope {slope:.1f}" in low_passed_reason(slope)


def test_what_cannot_carry_the_band_is_not_judged() -> None:
    assert beta_slope(Signal("EEG", _pink_eeg(40.0), 40.0, "uV")) is None  # rate under 50 Hz
    assert beta_slope(Signal("EEG", np.zeros(3000), 100.0, "uV")) is None  # flat
    assert beta_slope(Signal("EEG", _pink_eeg(100.0)[:2000], 100.0, "uV")) is None  # under one epoch
    assert low_pass_slope(Signal("EEG", np.full(6000, np.nan), 100.0, "uV")) is None


def test_the_recording_slope_is_the_median_of_its_epochs() -> None:
    """One measure for a file and a live bed: a bed's slope so far is the median of its epochs' slopes."""
    x = _pink_eeg(100.0, minutes=3.0)
    slopes = epoch_beta_slopes(x, 100.0)
    assert slopes.shape == (6,) and np.isfinite(slopes).all()
    assert beta_slope(Signal("EEG", x, 100.0, "uV")) == pytest.approx(float(np.median(slopes)))
    x[3000:3010] = np.nan  # an epoch with a gap is not measured, the rest are
    assert np.isnan(epoch_beta_slopes(x, 100.0)[1]) and np.isfinite(np.delete(epoch_beta_slopes(x, 100.0), 1)).all()
    assert epoch_beta_slopes(x, 40.0).size == 0


def test_a_low_passed_derivation_is_left_out_beside_a_full_band_one() -> None:
    full = Signal("C3", _pink_eeg(100.0), 100.0, "uV")
    filtered = sps.sosfiltfilt(sps.butter(4, 15.0, fs=100.0, output="sos"), _pink_eeg(100.0, seed=1))
    cut = Signal("C4", filtered, 100.0, "uV")
    assert not is_low_passed(beta_slope(full)) and is_low_passed(beta_slope(cut))
    assert full_band([cut, full]) == [full]
    assert full_band([cut]) == [cut]  # every EEG low-passed: all kept, and staging says uncertain


def test_a_recordings_slope_is_measured_once_and_again_when_its_samples_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The channel report, the YASA prior and the uncertain check each ask for a file's slope; it is measured
    once. Remembered by content, so samples changed in place are measured afresh, never answered stale."""
    import psg.features.eeg_bandwidth as eeg_bandwidth

    measured = []
    real = eeg_bandwidth.epoch_beta_slopes
    monkeypatch.setattr(eeg_bandwidth, "epoch_beta_slopes", lambda x, fs: measured.append(fs) or real(x, fs))
    x = _pink_eeg(100.0, minutes=2.0, seed=7)
    first = beta_slope(Signal("EEG", x, 100.0, "uV"))
    assert beta_slope(Signal("EEG", x.copy(), 100.0, "uV")) == first and len(measured) == 1
    x[:] = sps.sosfiltfilt(sps.butter(4, 15.0, fs=100.0, output="sos"), x)  # the same array, low-passed
    changed = beta_slope(Signal("EEG", x, 100.0, "uV"))
    assert len(measured) == 2 and changed is not None and first is not None and changed < LOW_PASSED_SLOPE < first
