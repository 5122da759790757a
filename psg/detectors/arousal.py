"""EEG arousals by the AASM rule (Manual 2.6 / 3.0, arousal rule 1), from the central EEG.

"Score an arousal during sleep stages N1, N2, N3, or R if there is an abrupt shift of EEG frequency
including alpha, theta and/or frequencies greater than 16 Hz (but not spindles) that lasts at least
3 seconds, with at least 10 seconds of stable sleep preceding the change."

Here: the power of the fast bands (``ALPHA_HZ`` and ``BETA_HZ``, leaving out the sigma band where
spindles live) is taken in ``WINDOW_S`` Hann windows every ``STEP_S`` (Welch-style spectrogram,
``scipy.signal.spectrogram``, as YASA's band-power code does), summed over the central EEG channels
present and smoothed over ``SMOOTH_S``. The "preceding baseline" is the median of that power over
the ``BASELINE_S`` before each instant; an arousal is a run of at least ``MIN_AROUSAL_S`` where the
power is ``POWER_RATIO`` times its baseline, starting at least ``BASELINE_S`` after the previous one
ended (the 10 s of stable sleep) and only where that baseline looks like sleep: the fast bands carry
less than ``MAX_SLEEP_FAST_SHARE`` of the 0.5-30 Hz power (in simulated nights the median share is
0.05 in N2, 0.10 in REM, 0.30 in wake; eyes opening and closing in wake swings alpha by the
arousal's factor, and the AASM does not score arousals from wake). Theta is not used: slow-wave sleep
carries as much theta as an arousal and would dilute the shift. Works at any EEG rate from 50 Hz up
(the beta band is cut below the Nyquist frequency). The detector sees no hypnogram; the sleep-like
baseline stands in for it.

The respiratory detector uses these arousals as the AASM hypopnea rule's alternative to a >= 3 %
desaturation.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy import signal as sps

from psg.detectors.base import DetectedEvent
from psg.dsp import runs
from psg.montage import EEG_C3, EEG_C4
from psg.quality.signal_loss import usable_mask
from psg.recording import Recording, Signal

ALPHA_HZ = (8.0, 11.0)
BETA_HZ = (16.0, 30.0)
WINDOW_S = 2.0
STEP_S = 0.5
SMOOTH_S = 2.0
BASELINE_S = 10.0
#: How far the fast bands must rise over their preceding baseline, set on simulated nights, whose arousals
#: peak at a median 14x. Real arousals may be weaker (real wake carries 0.5-4.4x the fast power of real sleep),
#: but 2.5x and 3x, tried, confirmed a false hypopnea on the real awake Nox A1 recording with its flow at 4 and
#: 1 Hz (an "arousal" of 2.98x in awake EEG): benchmarks/RESULTS.md, "The arousal threshold".
POWER_RATIO = 4.0
MIN_AROUSAL_S = 3.0
TOTAL_HZ = (0.5, 30.0)
MAX_SLEEP_FAST_SHARE = 0.2
#: Shifts closer than this are one arousal (the power dips for a moment inside one).
MERGE_GAP_S = 1.0
#: Below this rate the EEG has no band above 16 Hz: no arousal can be scored from it.
MIN_EEG_FS = 40.0


def detect_arousals(recording: Recording) -> list[DetectedEvent]:
    """Arousals in ``recording``'s central EEG (C3/C4), in time order; none without a usable EEG."""
    channels = [
        s
        for s in (recording.get(EEG_C3), recording.get(EEG_C4))
        if s is not None and s.fs >= MIN_EEG_FS and s.data.size >= WINDOW_S * s.fs and np.ptp(s.data) > 0
    ]
    if not channels:
        return []
    times, power, share, ok = _fast_power(channels)
    step = times[1] - times[0] if times.size > 1 else STEP_S
    size = int(round(BASELINE_S / step))
    baseline = _preceding_median(power, size)
    asleep = _preceding_median(share, size) < MAX_SLEEP_FAST_SHARE
    shifted = (power > POWER_RATIO * baseline) & ok & asleep
    out: list[DetectedEvent] = []
    last_end = -np.inf
    for start, stop in _merged_runs(shifted, int(round(MERGE_GAP_S / step))):
        onset, end = float(times[start]) - WINDOW_S / 2, float(times[stop - 1]) + WINDOW_S / 2 - STEP_S
        if end - onset < MIN_AROUSAL_S or onset - last_end < BASELINE_S:
            last_end = max(last_end, end) if end - onset >= MIN_AROUSAL_S else last_end
            continue
        ratio = float(np.max(power[start:stop] / baseline[start:stop]))
        out.append(DetectedEvent("arousal", onset, end - onset, channels[0].label, {"fast_power_ratio": ratio}))
        last_end = end
    return out


def _fast_power(channels: list[Signal]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per step: window centre times (s), the smoothed fast-band power summed over ``channels``, its
    share of the ``TOTAL_HZ`` power, and whether every channel is usable there."""
    fast: np.ndarray | None = None
    total: np.ndarray | None = None
    usable: np.ndarray | None = None
    times = np.empty(0)
    for sig in channels:
        nper = int(WINDOW_S * sig.fs)
        freqs, times, sxx = sps.spectrogram(
            sig.data, sig.fs, window="hann", nperseg=nper, noverlap=nper - int(STEP_S * sig.fs), detrend="constant"
        )
        beta_top = min(BETA_HZ[1], 0.45 * sig.fs)
        band = ((freqs >= ALPHA_HZ[0]) & (freqs <= ALPHA_HZ[1])) | ((freqs >= BETA_HZ[0]) & (freqs <= beta_top))
        power = sxx[band].sum(axis=0)
        broad = sxx[(freqs >= TOTAL_HZ[0]) & (freqs <= min(TOTAL_HZ[1], beta_top))].sum(axis=0)
        ok = usable_mask(sig, sig.data.size, sig.fs)[np.clip((times * sig.fs).astype(np.int64), 0, sig.data.size - 1)]
        n = power.size if fast is None or total is None else min(fast.size, power.size)
        fast = power[:n] if fast is None else fast[:n] + power[:n]
        total = broad[:n] if total is None else total[:n] + broad[:n]
        usable = ok[:n] if usable is None else usable[:n] & ok[:n]
        times = times[:n]
    assert fast is not None and total is not None and usable is not None
    smooth = max(1, int(round(SMOOTH_S / STEP_S)))
    fast, total = (ndimage.uniform_filter1d(x, smooth, mode="nearest") for x in (fast, total))
    return times, fast, fast / np.maximum(total, 1e-12), usable


def _preceding_median(x: np.ndarray, size: int) -> np.ndarray:
    """Median of the ``size`` values before each index (the first ones: of the first ``size`` values)."""
    size = max(1, min(size, x.size))
    centred: np.ndarray = ndimage.median_filter(x, size=size, mode="nearest")
    out = np.empty_like(x)
    shift = size // 2 + 1  # the window centred at i - shift ends at i - 1
    out[shift:] = centred[:-shift] if shift < x.size else centred[:0]
    out[:shift] = centred[min(size // 2, x.size - 1)]
    floored: np.ndarray = np.maximum(out, 1e-12)
    return floored


def _merged_runs(mask: np.ndarray, gap: int) -> list[tuple[int, int]]:
    """Runs of ``mask`` as [start, stop), joining runs separated by at most ``gap`` steps."""
    out: list[tuple[int, int]] = []
    for s, e in zip(*runs(mask), strict=True):
        if out and s - out[-1][1] <= gap:
            out[-1] = (out[-1][0], int(e))
        else:
            out.append((int(s), int(e)))
    return out
