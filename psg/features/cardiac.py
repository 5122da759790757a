"""Per-epoch cardiac features from the ECG (R peaks by a published detector), or the monitor HR.

R peaks come from NeuroKit2's default QRS detector (``nk.ecg_peaks``, method "neurokit": gradient
steepness with adaptive thresholds, Makowski et al., Behav Res Methods 2021), run once over the whole
night in overlapping chunks (bounded memory, identical results at chunk seams), never per epoch.
Heart rate in an epoch is 60 / mean RR of the beats detected in it, which is exactly what a
clinician reads off the tachogram; RMSSD is the standard short-term HRV measure (Task Force of the
ESC/NASPE, Circulation 1996).
"""

from __future__ import annotations

import neurokit2 as nk
import numpy as np
from scipy.ndimage import median_filter

from psg.montage import ECG, HR
from psg.recording import Recording, Signal
from psg.timeline import EPOCH_S

CHUNK_S = 600.0
OVERLAP_S = 5.0
#: A detected peak smaller than this fraction of its neighbours' median amplitude is not a beat.
MIN_PEAK_FRACTION = 0.3
PEAK_NEIGHBOURS = 15


def detect_r_peaks(ecg: Signal) -> np.ndarray:
    """R-peak times (s) of the whole ``ecg`` channel.

    NeuroKit2 finds the QRS complexes; peaks far smaller than their neighbours are then dropped
    (``plausible_peaks``): inside a sinus pause the detector otherwise picks up baseline wiggles of a
    hundredth of an R wave as "beats", which splits a real asystole into pauses too short to alarm on.
    """
    fs = ecg.fs
    n = ecg.data.size
    chunk, overlap = int(CHUNK_S * fs), int(OVERLAP_S * fs)
    peaks: list[np.ndarray] = []
    for start in range(0, n, chunk):
        lo, hi = max(0, start - overlap), min(n, start + chunk + overlap)
        x = ecg.data[lo:hi]
        if hi - lo < int(2 * fs) or not np.any(np.diff(x)):
            continue
        cleaned = nk.ecg_clean(x, sampling_rate=fs)
        _, info = nk.ecg_peaks(cleaned, sampling_rate=fs, correct_artifacts=False)
        local = plausible_peaks(cleaned, np.asarray(info["ECG_R_Peaks"], dtype=np.int64))
        found = local + lo
        peaks.append(found[(found >= start) & (found < start + chunk)])
    return np.concatenate(peaks) / fs if peaks else np.empty(0)


def plausible_peaks(cleaned: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """The ``peaks`` whose cleaned amplitude is at least ``MIN_PEAK_FRACTION`` of the median of the
    ``PEAK_NEIGHBOURS`` peaks around them. Real beats vary in amplitude with breathing and position by
    tens of percent, ectopic beats are usually larger; a "peak" at under a third of its neighbours is
    noise (measured: spurious peaks in simulated pauses are ~1 % of the R wave)."""
    if peaks.size < 3:
        return peaks
    amplitude = np.abs(cleaned[peaks])
    typical = median_filter(amplitude, size=PEAK_NEIGHBOURS, mode="nearest")
    return peaks[amplitude >= MIN_PEAK_FRACTION * typical]


def cardiac_epoch_features(recording: Recording, n_epochs: int) -> list[dict[str, float | None]]:
    """``hr_bpm``, ``hr_min_bpm``, ``hr_max_bpm``, ``rmssd_ms``, ``n_beats`` for each 30-s epoch."""
    ecg = recording.get(ECG)
    if ecg is not None and np.ptp(ecg.data) > 0:
        return beat_epoch_features(detect_r_peaks(ecg), n_epochs)
    hr = recording.get(HR)
    out = []
    for e in range(n_epochs):
        values = hr.window(e * EPOCH_S, (e + 1) * EPOCH_S) if hr is not None else np.empty(0)
        values = values[values > 0]
        out.append({"hr_bpm": float(np.mean(values)) if values.size else None,
                    "hr_min_bpm": None, "hr_max_bpm": None, "rmssd_ms": None, "n_beats": None})
    return out


def beat_epoch_features(beats_s: np.ndarray, n_epochs: int) -> list[dict[str, float | None]]:
    """Epoch features from beat times: RR intervals are taken between beats inside the same epoch."""
    edges = np.searchsorted(beats_s, np.arange(n_epochs + 1) * EPOCH_S)
    out: list[dict[str, float | None]] = []
    for e in range(n_epochs):
        beats = beats_s[edges[e]:edges[e + 1]]
        rr = np.diff(beats)
        feats: dict[str, float | None] = {"hr_bpm": None, "hr_min_bpm": None, "hr_max_bpm": None,
                                          "rmssd_ms": None, "n_beats": float(beats.size)}
        if rr.size:
            feats.update(hr_bpm=60.0 / float(rr.mean()), hr_min_bpm=60.0 / float(rr.max()),
                         hr_max_bpm=60.0 / float(rr.min()))
        if rr.size >= 2:
            feats["rmssd_ms"] = 1000.0 * float(np.sqrt(np.mean(np.diff(rr) ** 2)))
        out.append(feats)
    return out
