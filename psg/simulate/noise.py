"""Vectorised building blocks for the biosignal renderers: spectrally shaped noise, slow modulation
tracks, control-rate upsampling and sparse transient placement.

A whole night at 256 Hz is ~7.4 million samples per channel, so everything here works on whole arrays:
noise is shaped in the frequency domain with one inverse real FFT (a stationary Gaussian process
with the requested spectrum), slowly varying amplitudes are computed at a low control rate and
linearly upsampled, and transients (spindles, K-complexes, blinks, ...) are added by a loop over
*events*, never over samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.fft

#: Control rate (Hz) of amplitude and stage tracks; 4 Hz resolves the few-second stage transitions
#: and the 1-s ramps of arousals while keeping the tracks ~100k samples long for a night.
CTRL_FS = 4.0


def shaped_noise(
    rng: np.random.Generator, n: int, fs: float, amplitude: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Unit-variance Gaussian noise whose amplitude spectrum is ``amplitude(freqs)``.

    Random complex Fourier coefficients times the target amplitude spectrum, inverted with one real
    FFT: a stationary process with exactly that power spectrum shape (the standard spectral
    synthesis of coloured noise, e.g. Timmer & Koenig 1995, A&A 300:707).
    """
    freqs = scipy.fft.rfftfreq(n, 1.0 / fs)
    shape = np.asarray(amplitude(freqs), dtype=np.float32)
    spec = np.empty(freqs.size, dtype=np.complex64)
    spec.real = rng.standard_normal(freqs.size, dtype=np.float32)
    spec.imag = rng.standard_normal(freqs.size, dtype=np.float32)
    spec *= shape
    x: np.ndarray = scipy.fft.irfft(spec, n)
    std = float(np.std(x))
    return x / std if std > 0 else x


def bandpass_shape(lo: float, hi: float, slope: float = 0.0, order: int = 4) -> Callable[[np.ndarray], np.ndarray]:
    """Amplitude spectrum ``f**-slope/2`` between smooth Butterworth-like edges at ``lo`` and ``hi`` Hz.

    ``slope`` is the power-law exponent of the *power* spectrum (1 = pink, 2 = brown), as used to
    describe the aperiodic EEG component (He 2014, Trends Cogn Sci 18:480).
    """

    def amp(f: np.ndarray) -> np.ndarray:
        f = np.maximum(f, 1e-3)
        edges = 1.0 / np.sqrt(1.0 + (lo / f) ** (2 * order)) / np.sqrt(1.0 + (f / hi) ** (2 * order))
        return edges * f ** (-slope / 2.0)

    return amp


def peak_shape(centre: float, width: float) -> Callable[[np.ndarray], np.ndarray]:
    """Gaussian spectral peak (a rhythm such as alpha or theta) centred at ``centre`` Hz, SD ``width`` Hz."""

    def amp(f: np.ndarray) -> np.ndarray:
        return np.exp(-0.25 * ((f - centre) / width) ** 2)  # amplitude = sqrt of a Gaussian power peak

    return amp


def slow_gaussian(rng: np.random.Generator, n: int, tau_s: float) -> np.ndarray:
    """Unit-SD Gaussian track at ``CTRL_FS`` with a Lorentzian (Ornstein-Uhlenbeck) spectrum of time scale ``tau_s``."""
    return shaped_noise(rng, n, CTRL_FS, lambda f: 1.0 / np.sqrt(1.0 + (f * tau_s * 2 * np.pi) ** 2))


def slow_modulation(rng: np.random.Generator, n: int, sd: float, tau_s: float) -> np.ndarray:
    """Log-normal multiplicative fluctuation at the control rate: mean ~1, log-SD ``sd``, time scale ``tau_s``.

    Models the waxing and waning of EEG rhythms and muscle tone on a scale of seconds to minutes.
    """
    if sd <= 0 or n == 0:
        return np.ones(n)
    return np.exp(sd * slow_gaussian(rng, n, tau_s) - 0.5 * sd**2)


def upsample(track: np.ndarray, fs: float, n: int) -> np.ndarray:
    """Linearly interpolate a ``CTRL_FS`` track to ``n`` samples at ``fs`` (integer rate ratio, vectorised)."""
    factor = int(round(fs / CTRL_FS))
    frac = (np.arange(factor, dtype=np.float32) / factor)[None, :]
    padded = np.append(track, track[-1]).astype(np.float32)
    out = (padded[:-1, None] * (1.0 - frac) + padded[1:, None] * frac).ravel()
    if out.size < n:
        out = np.append(out, np.full(n - out.size, out[-1] if out.size else 0.0, dtype=np.float32))
    return out[:n]


def poisson_times(rng: np.random.Generator, rate_per_s: np.ndarray, refractory_s: float = 0.0) -> np.ndarray:
    """Event times (s) of an inhomogeneous Poisson process with rate ``rate_per_s`` sampled at ``CTRL_FS``.

    Events closer than ``refractory_s`` to the previous kept event are dropped (spindles, for example,
    have a refractory period of a few seconds; Antony et al. 2018, Curr Biol 28:1736).
    """
    counts = rng.poisson(np.maximum(rate_per_s, 0.0) / CTRL_FS)
    starts = np.repeat(np.arange(counts.size), counts) / CTRL_FS
    times = np.sort(starts + rng.uniform(0.0, 1.0 / CTRL_FS, size=starts.size))
    if refractory_s <= 0 or times.size < 2:
        return times
    keep = np.ones(times.size, dtype=bool)
    last = -np.inf
    for i, t in enumerate(times):  # loop over events (a few thousand a night), not samples
        if t - last < refractory_s:
            keep[i] = False
        else:
            last = t
    return times[keep]


def add_transients(
    x: np.ndarray, fs: float, onsets_s: Sequence[float] | np.ndarray, kernels: Sequence[np.ndarray]
) -> None:
    """Add each kernel into ``x`` starting at its onset (in place; kernels running off the end are cut)."""
    n = x.size
    for onset, kernel in zip(onsets_s, kernels, strict=True):
        i0 = int(round(onset * fs))
        if i0 >= n or i0 + kernel.size <= 0:
            continue
        start, stop = max(0, i0), min(n, i0 + kernel.size)
        x[start:stop] += kernel[start - i0 : stop - i0]
