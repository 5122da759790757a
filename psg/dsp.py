"""Small signal-processing helpers shared by the simulator, the features and the detectors.

Only what more than one module needs lives here: zero-phase filters (``scipy.signal.sosfiltfilt``, so
event edges are not shifted in time, which matters when detected spans are matched to scored ones),
run finding on boolean masks, and the breath-by-breath peak-to-peak envelope that AASM respiratory
rules are stated in ("peak signal excursion").
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal


def bandpass(x: np.ndarray, fs: float, low_hz: float | None, high_hz: float | None, order: int = 2) -> np.ndarray:
    """Zero-phase Butterworth band-pass (or low/high-pass when one corner is None)."""
    nyq = fs / 2.0
    if low_hz is not None and high_hz is not None:
        sos = signal.butter(order, [low_hz / nyq, high_hz / nyq], btype="bandpass", output="sos")
    elif high_hz is not None:
        sos = signal.butter(order, high_hz / nyq, btype="lowpass", output="sos")
    elif low_hz is not None:
        sos = signal.butter(order, low_hz / nyq, btype="highpass", output="sos")
    else:
        return np.asarray(x, dtype=np.float64)
    if x.size <= 3 * (2 * order + 1) * 2:
        return np.asarray(x, dtype=np.float64) - np.mean(x)
    return signal.sosfiltfilt(sos, x)


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start (inclusive) and end (exclusive) indices of every run of True in a 1-D boolean mask."""
    m = np.concatenate(([False], np.asarray(mask, dtype=bool), [False]))
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return edges[0::2], edges[1::2]


def peak_to_peak(x: np.ndarray, fs: float, window_s: float) -> np.ndarray:
    """Centred running max minus running min over ``window_s``.

    With a window of about one breath this is the "peak signal excursion" of the breath around each
    sample (AASM Manual 2.6, respiratory rules): it stays high between the peaks of normal breaths and
    falls only where breaths really shrink. The price is that a reduction shows up ``window_s / 2``
    late and ends ``window_s / 2`` early, which callers undo by widening detected spans.
    """
    size = max(1, int(round(window_s * fs)))
    return ndimage.maximum_filter1d(x, size, mode="nearest") - ndimage.minimum_filter1d(x, size, mode="nearest")


def dominant_period_s(x: np.ndarray, fs: float, low_hz: float = 0.1, high_hz: float = 0.6) -> float | None:
    """Period of the strongest rhythm between ``low_hz`` and ``high_hz`` (Welch spectrum), or None."""
    if x.size < int(64 * fs) or not np.any(np.diff(x)):
        return None
    f, p = signal.welch(x, fs=fs, nperseg=int(64 * fs))
    band = (f >= low_hz) & (f <= high_hz)
    if not np.any(band) or not np.any(p[band] > 0):
        return None
    return float(1.0 / f[band][np.argmax(p[band])])
