"""Quality flags checked a stream at a time equal the channel-by-channel checks, and the NumPy Welch
spectra behind them equal the SciPy ones the checks were written with."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from psg.quality.epoch_flags import (
    LINE_HZ,
    NOISE_BAND_HZ,
    NOISE_WINDOW_S,
    QUALITY_CHANNELS,
    channel_flags,
    epoch_quality,
    is_noise_only,
    line_noise_fraction,
)
from psg.recording import Recording, Signal
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline

RNG = np.random.default_rng(11)


@pytest.fixture(scope="module")
def nights() -> list[Recording]:
    timeline = synthetic_timeline(hours=0.2, seed=3, ahi=20)
    return [simulate(timeline, seed=seed, artifacts=True) for seed in (7, 28)]


def _perturb(sig: Signal, kind: int) -> Signal:
    x = sig.data.copy()
    t = np.arange(x.size) / sig.fs
    if kind == 1:
        x[:] = 0.0
    elif kind == 2:
        x = np.clip(x * 20, -3, 3)
    elif kind == 3:
        x = x + 200 * np.sin(2 * np.pi * 50 * t)
    elif kind == 4:
        x = RNG.normal(size=x.size) * 0.01  # a sensor off the patient: noise only
    elif kind == 5:
        x[: RNG.integers(1, 10)] = np.nan
    elif kind == 6:
        x = x * 1e-6
    elif kind == 7:
        x = x * 8  # beyond the EEG/EOG swing limit
    return Signal(sig.label, x, sig.fs, sig.unit)


def _epochs(nights: list[Recording]) -> list[dict[str, Signal]]:
    out = []
    for night in nights:
        for e in range(night.n_epochs):
            kinds = RNG.integers(0, 12, size=len(night.signals))  # mostly untouched
            out.append(
                {
                    label: _perturb(Signal(label, s.window(30 * e, 30 * e + 30).copy(), s.fs, s.unit), int(kind))
                    for (label, s), kind in zip(night.signals.items(), kinds, strict=True)
                }
            )
    return out


def test_stream_at_a_time_equals_channel_by_channel(nights: list[Recording]) -> None:
    seen: set[str] = set()
    for channels in _epochs(nights):
        del channels["HR"]  # a missing channel
        flags = epoch_quality(channels)
        assert list(flags) == list(QUALITY_CHANNELS)
        expected = {label: channel_flags(channels[label]) if label in channels else ["missing"] for label in flags}
        assert flags == expected
        seen.update(f for fl in flags.values() for f in fl)
    assert seen == {"missing", "gap", "flat", "clipped", "noisy"}  # every path was exercised


def _scipy_line_noise(x: np.ndarray, fs: float) -> float:
    freqs, psd = signal.welch(x - np.mean(x), fs=fs, nperseg=int(2 * fs))
    total = psd[freqs >= 0.5].sum()
    line = np.zeros(freqs.size, dtype=bool)
    for hz in LINE_HZ:
        line |= np.abs(freqs - hz) <= 1.0
    return float(psd[line].sum() / total)


def _scipy_noise_band_fractions(sig: Signal) -> list[float]:
    n = int(NOISE_WINDOW_S * sig.fs)
    out = []
    for start in range(0, sig.data.size - n + 1, n // 2):
        w = sig.data[start : start + n]
        freqs, psd = signal.welch(w - w.mean(), fs=sig.fs, nperseg=n // 2)
        above = freqs >= NOISE_BAND_HZ[0]
        out.append(psd[above & (freqs <= NOISE_BAND_HZ[1])].sum() / psd[above].sum())
    return out


def test_spectral_checks_equal_scipy_welch(nights: list[Recording]) -> None:
    for channels in _epochs(nights)[::3]:
        for label in ("EEG C3-A2", "EMG Chin", "ECG"):
            x = channels[label].data
            if np.isfinite(x).all() and np.ptp(x) > 0:
                assert line_noise_fraction(x, 256.0) == pytest.approx(_scipy_line_noise(x, 256.0), rel=1e-9)
        for label in ("AF", "THX", "ABD"):
            sig = channels[label]
            if np.isfinite(sig.data).all() and np.ptp(sig.data) > 0:
                fractions = _scipy_noise_band_fractions(sig)
                assert all(abs(f - 0.25) > 1e-9 for f in fractions)  # no case decided by round-off
                assert is_noise_only(sig) == any(f < 0.25 for f in fractions)
