"""Is the EEG's beta band there? A device low-pass below YASA's band, told from the recording's own spectrum.

Why: YASA's features read the top of its 0.4-30 Hz band (beta power, entropy, fractal dimensions, zero
crossings), and missing beta looks like sleep. A 50-Hz file's anti-alias edge (~21 Hz) is filled by
``band_extension``; an amplifier low-pass lower than that is not, and placed on the reference night of
``night_reference``, real wake EEG low-passed at 15 Hz was called N3 in 9 of 22 epochs
(``benchmarks/real_rates.py --device-lowpass 15``). So the staging that reads YASA says ``uncertain`` for such
a recording rather than a confident stage, and the channel report says why.

The test: the log-log slope of the recording's median spectrum between 14 and 21 Hz (above alpha and most
spindle power, below a 50-Hz file's anti-alias edge). Measured (``benchmarks/RESULTS.md``, "A piece of a
night"): real EEG -0.7 to -5.8 (the steepest the real N3 epoch), simulated 30-min excerpts -5.8 to +1.5
clean or perturbed; a 15-Hz 4th-order low-pass -10.5 to -20.8, a 20-Hz one -2.6 to -10.2 (only partly
told apart, and harmless there: no wake called N3). A recording steeper than ``LOW_PASSED_SLOPE`` is flagged.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps

from psg.montage import EPOCH_S
from psg.recording import Signal

#: The band (Hz) whose spectral slope is read: above alpha, below a 50-Hz recording's anti-alias edge.
BETA_BAND = (14.0, 21.0)
#: Steeper than this (log power per log frequency) is a filter, not physiology.
LOW_PASSED_SLOPE = -9.0
#: The slope needs the whole band under 0.42 x the rate (the anti-alias edge, as ``band_extension``).
MIN_FS = BETA_BAND[1] / 0.42
_WELCH_S = 4.0


def beta_slope(sig: Signal) -> float | None:
    """The slope of ``sig``'s median 30-s spectrum over ``BETA_BAND`` in log-log units, or None where its
    rate cannot carry the band or it holds under one epoch of finite samples."""
    x = np.asarray(sig.data, dtype=np.float64)
    per = int(round(EPOCH_S * sig.fs))
    n = x.size // per
    if sig.fs < MIN_FS or n == 0:
        return None
    epochs = x[: n * per].reshape(n, per)
    epochs = epochs[np.isfinite(epochs).all(axis=1)]
    if not len(epochs):
        return None
    freqs, power = sps.welch(epochs, sig.fs, nperseg=int(_WELCH_S * sig.fs), axis=1)
    median = np.median(power, axis=0)
    band = (freqs >= BETA_BAND[0]) & (freqs <= BETA_BAND[1])
    if not np.all(median[band] > 0):
        return None  # a flat channel: the quality flags say so
    return float(np.polyfit(np.log10(freqs[band]), np.log10(median[band]), 1)[0])


def low_pass_slope(sig: Signal) -> float | None:
    """``sig``'s beta slope when its spectrum falls off above 14 Hz faster than EEG does (a device
    low-pass), else None: the one test the channel report and staging both apply."""
    slope = beta_slope(sig)
    return slope if slope is not None and slope < LOW_PASSED_SLOPE else None


def low_passed_reason(slope: float) -> str:
    """The ``uncertain`` reason and channel note for an EEG with this beta slope."""
    return (
        f"EEG low-passed below YASA's band (its spectrum falls off with slope {slope:.1f} between "
        f"{BETA_BAND[0]:g} and {BETA_BAND[1]:g} Hz; EEG: -6 to +2): the beta band staging reads is missing"
    )
