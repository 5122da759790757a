"""Oxygen desaturation events (AASM Manual 2.6 / 3.0: a drop of >= 3% from the pre-event baseline).

The baseline is the highest reading since the previous desaturation ended (looking back at most
``BASELINE_WINDOW_S``, the 2 minutes the AASM uses for pre-event baselines); a desaturation starts at
the last sample at that baseline level once SpO2 has fallen ``DESAT_PCT`` below it, and ends when
SpO2 has come back up ``RECOVERY_PCT`` from its nadir (a full return to baseline is not required:
inside clusters of apneas SpO2 rarely gets back to baseline between events).
Readings outside the oximeter's valid range (probe off) are ignored.
"""

from __future__ import annotations

import numpy as np

from psg.detectors.base import DetectedEvent
from psg.quality.signal_loss import usable_mask
from psg.recording import Signal

DESAT_PCT = 3.0
RECOVERY_PCT = 2.0
BASELINE_WINDOW_S = 120.0


def detect_desaturations(spo2: Signal) -> list[DetectedEvent]:
    """Every >= 3% desaturation in ``spo2`` with its baseline and nadir as evidence."""
    fs = spo2.fs
    x = spo2.data
    ok = usable_mask(spo2, x.size, fs)
    window = int(BASELINE_WINDOW_S * fs)
    out: list[DetectedEvent] = []
    ref_i = -1
    i = 0
    values = x.tolist()
    while i < x.size:
        if not ok[i]:
            ref_i = -1
            i += 1
            continue
        if ref_i < 0 or values[i] >= values[ref_i]:
            ref_i = i
        elif i - ref_i > window:
            ref_i = _last_max(values, ok, i - window, i)
        if values[ref_i] - values[i] >= DESAT_PCT:
            nadir_i, j = i, i
            while j < x.size and ok[j] and values[j] < values[nadir_i] + RECOVERY_PCT:
                if values[j] < values[nadir_i]:
                    nadir_i = j
                j += 1
            baseline, nadir = values[ref_i], values[nadir_i]
            out.append(
                DetectedEvent(
                    "desaturation",
                    ref_i / fs,
                    (nadir_i - ref_i) / fs + 1.0 / fs,
                    spo2.label,
                    {"spo2_baseline": baseline, "spo2_nadir": nadir, "drop_pct": baseline - nadir},
                )
            )
            i = j
            ref_i = j if j < x.size else -1
            continue
        i += 1
    return out


def _last_max(values: list[float], ok: np.ndarray, start: int, stop: int) -> int:
    """Index of the last occurrence of the highest usable value in values[start:stop + 1]."""
    best = start
    for k in range(start, stop + 1):
        if ok[k] and values[k] >= values[best]:
            best = k
    return best


def desaturation_drop(spo2: Signal, onset_s: float, end_s: float, lag_window_s: float = 40.0) -> tuple[float, float]:
    """(drop %, nadir %) that follows a respiratory event spanning onset_s..end_s.

    The nadir is the lowest reading from 5 s after onset to ``lag_window_s`` after the event end (the
    lung-to-finger circulation delay puts it 15-30 s after the end); the drop is measured from the
    highest reading between 10 s before onset and that nadir, i.e. the pre-event baseline.
    """
    x = spo2.data
    fs = spo2.fs
    i0 = max(0, int((onset_s + 5.0) * fs))
    i1 = min(x.size, int((end_s + lag_window_s) * fs) + 1)
    if i1 <= i0:
        return 0.0, float("nan")
    seg = np.where(usable_mask(spo2, x.size, fs)[i0:i1], x[i0:i1], np.inf)
    if not np.isfinite(seg).any():
        return 0.0, float("nan")
    nadir_i = i0 + int(np.argmin(seg))
    b0 = max(0, int((onset_s - 10.0) * fs))
    baseline = float(np.max(x[b0 : nadir_i + 1]))
    return baseline - float(x[nadir_i]), float(x[nadir_i])
