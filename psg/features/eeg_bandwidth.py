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

The slope is measured per 30-s epoch (``epoch_beta_slopes``) and a recording's is the median over its
epochs, so a live bed's history gives the same number as the file of the same night (the median of the
epochs so far): on the real EEG we hold, the per-epoch median and the slope of the median spectrum differ
by at most 0.2. Where a recording has a low-passed and a full-band EEG, staging reads the full-band one
only (``full_band``); where every EEG is low-passed, it says ``uncertain``.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence

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
#: Slopes already measured, by the samples' fingerprint: a file's EEG is read by the channel report, the
#: YASA prior and the ``uncertain`` check (up to ~1 s each for 8 h at 512 Hz; the fingerprint ~0.06 s).
_MEASURED: OrderedDict[tuple[str, str, tuple[int, ...], float], float | None] = OrderedDict()
_MEASURED_MAX = 64
_MEASURED_LOCK = threading.Lock()


def epoch_beta_slopes(x: np.ndarray, fs: float) -> np.ndarray:
    """(n,): the slope over ``BETA_BAND`` of each whole 30-s epoch of ``x`` (log power per log frequency),
    NaN for an epoch with a non-finite sample or no power in the band (flat: the quality flags say so), and
    none at all where ``fs`` cannot carry the band."""
    per = int(round(EPOCH_S * fs))
    n = np.asarray(x).size // per
    if fs < MIN_FS or n == 0:
        return np.empty(0)
    epochs = np.asarray(x, dtype=np.float64)[: n * per].reshape(n, per)
    slopes = np.full(n, np.nan)
    finite = np.isfinite(epochs).all(axis=1)
    if not finite.any():
        return slopes
    freqs, power = sps.welch(epochs[finite], fs, nperseg=int(_WELCH_S * fs), axis=1)
    band = (freqs >= BETA_BAND[0]) & (freqs <= BETA_BAND[1])
    power = power[:, band]
    measurable = (power > 0).all(axis=1)
    fitted = np.full(len(power), np.nan)
    if measurable.any():
        fitted[measurable] = np.polyfit(np.log10(freqs[band]), np.log10(power[measurable]).T, 1)[0]
    slopes[finite] = fitted
    return slopes


def median_slope(slopes: np.ndarray) -> float | None:
    """A recording's beta slope: the median of its epochs' (NaN skipped), None where none was measured."""
    measured = np.asarray(slopes, dtype=np.float64)
    measured = measured[np.isfinite(measured)]
    return float(np.median(measured)) if measured.size else None


def beta_slope(sig: Signal) -> float | None:
    """``sig``'s beta slope (the median over its epochs), or None where its rate cannot carry the band or no
    epoch of finite, non-flat samples was measured. Remembered by the samples' content (not the object, which
    callers may change in place), so the layers that each ask for it measure it once per recording."""
    data = np.ascontiguousarray(sig.data)
    key = (
        hashlib.sha1(data.data.cast("B"), usedforsecurity=False).hexdigest(),
        data.dtype.str,
        data.shape,
        sig.fs,
    )
    with _MEASURED_LOCK:  # a server may read files from several threads
        if key in _MEASURED:
            _MEASURED.move_to_end(key)
            return _MEASURED[key]
    slope = median_slope(epoch_beta_slopes(data, sig.fs))
    with _MEASURED_LOCK:
        _MEASURED[key] = slope
        while len(_MEASURED) > _MEASURED_MAX:
            _MEASURED.popitem(last=False)
    return slope


def is_low_passed(slope: float | None) -> bool:
    """Whether a recording with this beta slope lost its beta band to a device filter."""
    return slope is not None and slope < LOW_PASSED_SLOPE


def readable(slopes: Sequence[float | None]) -> list[int]:
    """Indices of the EEG derivations (by their beta ``slopes``) staging should read: those not low-passed,
    or all of them when every one is (then staging says ``uncertain``, ``low_passed_everywhere``): YASA
    averages its derivations, and a low-passed one pulls the average towards sleep. One rule for a file
    (``full_band``) and a live bed's history (``psg.features.live_stage``)."""
    kept = [i for i, slope in enumerate(slopes) if not is_low_passed(slope)]
    return kept or list(range(len(slopes)))


def full_band(eegs: list[Signal]) -> list[Signal]:
    """The EEG derivations of a recording staging should read (``readable``)."""
    return [eegs[i] for i in readable([beta_slope(sig) for sig in eegs])]


def low_passed_everywhere(slopes: Sequence[float | None]) -> str:
    """The ``uncertain`` reason when every EEG derivation (by its beta ``slopes``) is low-passed, else ''."""
    if not slopes or not all(is_low_passed(slope) for slope in slopes):
        return ""
    return low_passed_reason(max(slope for slope in slopes if slope is not None))


def low_pass_slope(sig: Signal) -> float | None:
    """``sig``'s beta slope when its spectrum falls off above 14 Hz faster than EEG does (a device
    low-pass), else None: the one test the channel report and staging both apply."""
    slope = beta_slope(sig)
    return slope if is_low_passed(slope) else None


def low_passed_reason(slope: float) -> str:
    """The ``uncertain`` reason and channel note for an EEG with this beta slope."""
    return (
        f"EEG low-passed below YASA's band (its spectrum falls off with slope {slope:.1f} between "
        f"{BETA_BAND[0]:g} and {BETA_BAND[1]:g} Hz; EEG: -6 to +2): the beta band staging reads is missing"
    )
