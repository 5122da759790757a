"""Fill the band a slow recording never had, so YASA's features read a 50-Hz EEG as they read a 100-Hz one.

Why: YASA's classifiers (``psg.features.yasa_prior``) were trained on EEG carrying its whole 0.4-30 Hz band;
many of their features (beta power, permutation entropy, Higuchi and Petrosian dimensions, zero crossings,
Hjorth parameters) read the top of it. A recording at 50 Hz has nothing above ~22 Hz (its anti-alias
filter), and to the classifiers that missing beta looks like sleep: the real awake EEG we hold, resampled
to 50 Hz, went from 12 / 12 W to 4 / 12, the Sleep-EDF wake from 10 / 10 to 7 / 10
(``benchmarks/real_rates.py``). The EEG spectrum above ~12 Hz is close to a power law (the aperiodic 1/f
component), so each epoch's missing band is filled with random-phase noise whose spectrum continues the
power law fitted to the epoch's own upper band (0.24-0.40 of the native rate: 12-20 Hz at 50 Hz), where the
recorded spectrum falls below it. Below the anti-alias edge nothing changes. The noise is seeded, so the
same file always gives the same probabilities.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps

#: Native rates below this miss part of YASA's 0.4-30 Hz band and are extended.
FULL_BAND_FS = 60.0
#: The power law is fitted between these fractions of the native rate (below the anti-alias roll-off) ...
FIT_BAND = (0.24, 0.40)
#: ... and continued from this fraction of it (where a resampler's anti-alias filter starts to cut) ...
EDGE = 0.42
#: ... up to this frequency (Hz), past YASA's 30-Hz edge and its band-pass filter's transition.
TOP_HZ = 45.0
_SMOOTH_BINS = 51  # a 1.7-Hz running fit of a 30-s epoch's periodogram (0.033 Hz bins) before the power law
_FLOOR = 1e-30


def extend_band(x: np.ndarray, fs: float, native_fs: float, epoch_samples: int, seed: int = 0) -> np.ndarray:
    """``x`` (at ``fs``, recorded at ``native_fs``) with each whole epoch's band above the native anti-alias edge
    filled by power-law noise; unchanged when ``native_fs`` carries the full band or ``x`` has no whole epoch."""
    n = x.size // epoch_samples
    if native_fs >= FULL_BAND_FS or n == 0:
        return x
    epochs = x[: n * epoch_samples].reshape(n, epoch_samples)
    freqs = np.fft.rfftfreq(epoch_samples, 1.0 / fs)
    power = sps.savgol_filter(np.abs(np.fft.rfft(epochs, axis=1)) ** 2, _SMOOTH_BINS, 1, axis=1)
    fit = (freqs >= FIT_BAND[0] * native_fs) & (freqs < FIT_BAND[1] * native_fs)
    slope, intercept = np.polyfit(np.log10(freqs[fit]), np.log10(np.maximum(power[:, fit], _FLOOR)).T, 1)
    log_f = np.log10(np.maximum(freqs, freqs[1]))
    wanted = 10.0 ** (intercept[:, None] + slope[:, None] * log_f[None, :])
    band = (freqs >= EDGE * native_fs) & (freqs <= TOP_HZ)
    missing = np.where(band[None, :], np.maximum(wanted - power, 0.0), 0.0)
    phase = np.exp(2j * np.pi * np.random.default_rng(seed).random(missing.shape))
    out = x.copy()
    out[: n * epoch_samples] += np.fft.irfft(np.sqrt(missing) * phase, n=epoch_samples, axis=1).ravel()
    return out
