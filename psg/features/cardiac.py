"""Per-epoch cardiac features from the ECG (R peaks by a published detector), or the monitor HR.

R peaks come from NeuroKit2's default QRS detector (``nk.ecg_peaks``, method "neurokit": gradient
steepness with adaptive thresholds, Makowski et al., Behav Res Methods 2021), run once over the whole
night in overlapping chunks (bounded memory, identical results at chunk seams), never per epoch
(live: once per 90-s window). NeuroKit2's steps run here with cached filter designs and one peak
search over all QRS complexes (``ecg_r_peak_indices``: bit-identical to its own calls, ~6x faster);
NeuroKit2 itself (MIT licence) is not imported, it is the train extra the tests compare with.
The lead's polarity is decided per chunk (``r_wave_polarity``: an inverted lead, or an electrode
placement with a dominant S or QS wave, makes the R waves point down, and NeuroKit2 looks for maxima),
and an ECG recorded below ``DETECTOR_FS`` (home and ambulatory montages store it at 50-128 Hz) is
upsampled to it first: NeuroKit2's smoothing kernels and mains filter assume a clinical rate, and at
50 Hz it places R peaks in the wrong deflection. Beat times are then mapped back to seconds.
Heart rate in an epoch is 60 / mean RR of the beats detected in it, which is exactly what a
clinician reads off the tachogram; RMSSD is the standard short-term HRV measure (Task Force of the
ESC/NASPE, Circulation 1996).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy import signal as sps
from scipy.ndimage import median_filter, uniform_filter1d

from psg.dsp import bandpass, butter_filter, runs, sosfiltfilt
from psg.montage import ECG, HR
from psg.recording import Recording, Signal
from psg.timeline import EPOCH_S

CHUNK_S = 600.0
OVERLAP_S = 5.0
#: A detected peak smaller than this fraction of its neighbours' median amplitude is not a beat.
MIN_PEAK_FRACTION = 0.3
PEAK_NEIGHBOURS = 15
#: NeuroKit2's "neurokit" cleaning and QRS detector settings (its defaults, which ``nk.ecg_clean`` and
#: ``nk.ecg_peaks`` use): 0.5 Hz order-5 Butterworth high-pass, a moving average over one 50 Hz mains
#: period; gradient smoothed over 0.1 s, threshold 1.5 x its 0.75-s average, QRS shorter than 0.4 x
#: the mean QRS ignored, peaks at least 0.3 s apart.
NK_HIGHPASS_HZ, NK_HIGHPASS_ORDER, NK_POWERLINE_HZ = 0.5, 5, 50
NK_SMOOTH_S, NK_AVG_S, NK_GRAD_WEIGHT, NK_MIN_LEN_WEIGHT, NK_MIN_DELAY_S = 0.1, 0.75, 1.5, 0.4, 0.3
#: ECG below this rate is upsampled (by an integer factor, polyphase) before the QRS detector runs.
DETECTOR_FS = 250.0
#: Band that keeps the QRS complex and drops P/T waves and baseline wander (the classic Pan-Tompkins band).
QRS_BAND_HZ = (5.0, 20.0)
#: Blocks over which the largest upward and downward QRS deflections are compared (one beat at least).
POLARITY_BLOCK_S = 2.0


def detect_r_peaks(ecg: Signal) -> np.ndarray:
    """R-peak times (s) of the whole ``ecg`` channel, whichever way its R waves point and at any rate.

    NeuroKit2 finds the QRS complexes (``ecg_r_peak_indices``) on each chunk turned R-up
    (``r_wave_polarity``) and brought to at least ``DETECTOR_FS``; peaks far smaller than their
    neighbours are then dropped (``plausible_peaks``): inside a sinus pause the detector otherwise
    picks up baseline wiggles of a hundredth of an R wave as "beats", which splits a real asystole
    into pauses too short to alarm on. Peaks are kept as sample indices at the detection rate until
    the end, so an ECG that needs neither flip nor upsampling gives exactly NeuroKit2's beats.
    """
    fs = ecg.fs
    n = ecg.data.size
    up = upsampling_factor(fs)
    chunk, overlap = int(CHUNK_S * fs), int(OVERLAP_S * fs)
    peaks: list[np.ndarray] = []
    for start in range(0, n, chunk):
        lo, hi = max(0, start - overlap), min(n, start + chunk + overlap)
        x = ecg.data[lo:hi]
        if hi - lo < int(2 * fs) or not np.any(np.diff(x)):
            continue
        x = x if r_wave_polarity(x, fs) > 0 else -x
        if up > 1:
            x = sps.resample_poly(x, up, 1)
        cleaned, local = ecg_r_peak_indices(x, fs * up)
        found = plausible_peaks(cleaned, local) + lo * up
        peaks.append(found[(found >= start * up) & (found < (start + chunk) * up)])
    return np.concatenate(peaks) / (fs * up) if peaks else np.empty(0)


def upsampling_factor(fs: float) -> int:
    """The smallest integer factor that brings ``fs`` to ``DETECTOR_FS`` (1 at or above it)."""
    return 1 if fs >= DETECTOR_FS else int(np.ceil(DETECTOR_FS / fs))


def qrs_band(x: np.ndarray, fs: float) -> np.ndarray:
    """``x`` band-passed to ``QRS_BAND_HZ`` (the upper corner kept below Nyquist for slow ECG)."""
    return bandpass(x, fs, QRS_BAND_HZ[0], min(QRS_BAND_HZ[1], 0.4 * fs))


def r_wave_polarity(x: np.ndarray, fs: float) -> int:
    """+1 when the QRS complexes of ``x`` deflect mostly upwards, -1 when mostly downwards.

    In the QRS band, each ``POLARITY_BLOCK_S`` block's highest and lowest values are its largest
    upward and downward deflections (the R and the S/QS wave); their medians over blocks compare the
    two without letting a few artifacts decide. Which deflection the detector follows matters little
    for the rate, but following the small one loses beats to ``plausible_peaks`` and to noise.
    """
    y = qrs_band(np.asarray(x, dtype=np.float64), fs)
    block = max(1, int(POLARITY_BLOCK_S * fs))
    n_blocks = y.size // block
    if n_blocks == 0:
        return 1
    blocks = y[: n_blocks * block].reshape(n_blocks, block)
    up, down = np.median(blocks.max(axis=1)), np.median(-blocks.min(axis=1))
    return -1 if down > up else 1


def ecg_r_peak_indices(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """``nk.ecg_clean(x, fs)`` and the R-peak indices ``nk.ecg_peaks`` finds in it (no artifact correction).

    The same algorithm, bit for bit (tested against NeuroKit2), at a fraction of the cost, because the
    live path runs it on every epoch's 90-s window: the filter designs are cached, and the QRS loop,
    which calls ``scipy.signal.find_peaks`` once per QRS complex (~1 ms per 10 s of ECG), is one
    ``find_peaks`` call over the complexes laid end to end between +inf separators (see
    ``_most_prominent_peaks``).

    Unusual input never raises (NeuroKit2 itself raises on most of it, and NeuroKit2 is no longer in the
    serving install): missing or non-finite samples split the ECG into finite runs, each detected alone
    (NeuroKit2 interpolated across a gap, which can put a beat on the interpolated edge); a run, or a
    whole input, too short for the filters and the 0.75-s threshold average has no beats; so has a rate
    whose 0.1-s smoothing kernel is under one sample (below 5 Hz no QRS can be told). ``cleaned`` is NaN
    wherever no cleaning ran.
    """
    x = np.asarray(x, dtype=np.float64)
    no_peaks = np.empty(0, dtype=np.int64)
    if not (np.isfinite(fs) and fs > 2 * NK_HIGHPASS_HZ and np.rint(NK_SMOOTH_S * fs) >= 1):
        return np.full(x.size, np.nan), no_peaks
    smooth, avg = int(np.rint(NK_SMOOTH_S * fs)), int(np.rint(NK_AVG_S * fs))  # avg > smooth
    # the filters' odd extensions need more samples than they pad, the threshold average its 0.75 s
    padlen = max(butter_filter(NK_HIGHPASS_ORDER, NK_HIGHPASS_HZ, "highpass", fs).edge, _powerline_filter(fs)[3])
    shortest = max(avg, padlen + 1)
    finite = np.isfinite(x)
    if x.size >= shortest and finite.all():  # the usual case: NeuroKit2's own result
        cleaned = _nk_clean(x, fs)
        return cleaned, _nk_find_peaks(cleaned, fs, smooth, avg)
    cleaned = np.full(x.size, np.nan)
    peaks = [no_peaks]
    for lo, hi in zip(*runs(finite), strict=True):
        if hi - lo >= shortest:
            cleaned[lo:hi] = _nk_clean(x[lo:hi], fs)
            peaks.append(_nk_find_peaks(cleaned[lo:hi], fs, smooth, avg) + lo)
    return cleaned, np.concatenate(peaks)


def _nk_clean(x: np.ndarray, fs: float) -> np.ndarray:
    """NeuroKit2's "neurokit" ECG cleaning (``_ecg_clean_nk``) with cached designs."""
    clean = sosfiltfilt(butter_filter(NK_HIGHPASS_ORDER, NK_HIGHPASS_HZ, "highpass", fs), x)
    b, a, zi, edge = _powerline_filter(fs)
    if clean.size <= edge:  # what scipy.signal.filtfilt raises
        raise ValueError(f"The length of the input vector x must be greater than padlen, which is {edge}.")
    ext = np.concatenate((2 * clean[:1] - clean[edge:0:-1], clean, 2 * clean[-1:] - clean[-2 : -(edge + 2) : -1]))
    y, _ = sps.lfilter(b, a, ext, zi=zi * ext[:1])
    y, _ = sps.lfilter(b, a, y[::-1], zi=zi * y[-1:])
    filtered: np.ndarray = y[::-1][edge:-edge]
    return filtered


@lru_cache(maxsize=16)
def _powerline_filter(fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """NeuroKit2's mains filter (a moving average over one mains period) as ``scipy.signal.filtfilt``
    prepares it: (b, a, steady state ``lfilter_zi``, odd-extension length)."""
    b = np.ones(int(fs / NK_POWERLINE_HZ)) if fs >= 100 else np.ones(2)
    a = np.atleast_1d(np.asarray([len(b)]))
    return b, a, sps.lfilter_zi(b, a), 3 * max(len(a), len(b))


def _nk_find_peaks(cleaned: np.ndarray, fs: float, smooth: int, avg: int) -> np.ndarray:
    """NeuroKit2's "neurokit" QRS detector (``_ecg_findpeaks_neurokit``, default settings) on ``cleaned``."""
    smoothgrad = uniform_filter1d(np.abs(np.gradient(cleaned)), smooth, mode="nearest")
    avggrad = uniform_filter1d(smoothgrad, avg, mode="nearest")
    qrs = smoothgrad > NK_GRAD_WEIGHT * avggrad
    beg = np.flatnonzero(~qrs[:-1] & qrs[1:])
    end = np.flatnonzero(qrs[:-1] & ~qrs[1:])
    if beg.size == 0:
        return np.empty(0, dtype=np.int64)
    end = end[end > beg[0]]
    n = min(beg.size, end.size)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    beg, end = beg[:n], end[:n]
    long_enough = (end - beg) >= np.mean(end - beg) * NK_MIN_LEN_WEIGHT
    candidates = _most_prominent_peaks(cleaned, beg[long_enough], end[long_enough])
    min_delay = int(np.rint(fs * NK_MIN_DELAY_S))
    peaks, last = [], 0  # NeuroKit2 starts from a virtual peak at sample 0
    for peak in candidates.tolist():
        if peak - last > min_delay:
            peaks.append(peak)
            last = peak
    return np.asarray(peaks, dtype=np.int64)


def _most_prominent_peaks(x: np.ndarray, beg: np.ndarray, end: np.ndarray) -> np.ndarray:
    """For each segment ``x[beg[i]:end[i]]`` with a local maximum, the index of its most prominent one
    (``scipy.signal.find_peaks(segment, prominence=(None, None))``, first of equals), in segment order.

    The segments are laid end to end with a +inf sample before, between and after them, and
    ``find_peaks`` runs once: a segment's edge samples still cannot be peaks (their outer neighbour is
    higher), and a prominence search stops at the first higher sample, i.e. at the latest at the
    separator, exactly where it stops at the edge of the segment alone. The separators themselves are
    maxima too; they are dropped before ``peak_prominences`` (their search would run to the ends).
    """
    lengths = end - beg
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    first = np.concatenate(([0], np.cumsum(lengths)[:-1]))  # each segment's offset in the samples laid out
    start = first + np.arange(1, lengths.size + 1)  # ... and in the buffer, after its separator
    k = np.arange(total)
    owner = np.repeat(np.arange(lengths.size), lengths)
    buf = np.full(total + lengths.size + 1, np.inf)
    buf[k + owner + 1] = x[k - first[owner] + beg[owner]]
    locmax, _ = sps.find_peaks(buf)
    locmax = locmax[np.isfinite(buf[locmax])]  # the separators are maxima too: never ask their prominence
    if locmax.size == 0:
        return np.empty(0, dtype=np.int64)
    prominence = sps.peak_prominences(buf, locmax)[0]
    segment = np.searchsorted(start, locmax, side="right") - 1
    order = np.lexsort((locmax, -prominence, segment))  # by segment, most prominent first, then position
    best = order[np.concatenate(([True], segment[order][1:] != segment[order][:-1]))]
    peaks: np.ndarray = beg[segment[best]] + locmax[best] - start[segment[best]]
    return peaks


def plausible_peaks(cleaned: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """The ``peaks`` whose cleaned amplitude is at least ``MIN_PEAK_FRACTION`` of the median of the
    ``PEAK_NEIGHBOURS`` peaks around them. Real beats vary in amplitude with breathing and position by
    tens of percent, ectopic beats are usually larger; a "peak" at under a third of its neighbours is
    noise (measured: spurious peaks in simulated pauses are ~1 % of the R wave)."""
    if peaks.size < 3:
        return peaks
    amplitude = np.abs(cleaned[peaks])
    typical = median_filter(amplitude, size=PEAK_NEIGHBOURS, mode="nearest")
    kept: np.ndarray = peaks[amplitude >= MIN_PEAK_FRACTION * typical]
    return kept


def cardiac_epoch_features(
    recording: Recording,
    n_epochs: int,
    epochs: Sequence[int] | None = None,
    r_peaks: np.ndarray | None = None,
) -> list[dict[str, float | None]]:
    """``hr_bpm``, ``hr_min_bpm``, ``hr_max_bpm``, ``rmssd_ms``, ``n_beats`` for each 30-s epoch.

    ``epochs`` limits the result to those epoch indices (default: all ``n_epochs``); ``r_peaks`` are
    ``detect_r_peaks`` of the recording's ECG when the caller already has them (the live path shares
    one detection between features, detectors and the aux heart rate).
    """
    selected = range(n_epochs) if epochs is None else epochs
    ecg = recording.get(ECG)
    if ecg is not None and np.ptp(ecg.data) > 0:
        beats = detect_r_peaks(ecg) if r_peaks is None else r_peaks
        return beat_epoch_features(beats, n_epochs, selected)
    hr = recording.get(HR)
    out = []
    for e in selected:
        values = hr.window(e * EPOCH_S, (e + 1) * EPOCH_S) if hr is not None else np.empty(0)
        values = values[values > 0]
        out.append(
            {
                "hr_bpm": float(np.mean(values)) if values.size else None,
                "hr_min_bpm": None,
                "hr_max_bpm": None,
                "rmssd_ms": None,
                "n_beats": None,
            }
        )
    return out


def beat_epoch_features(
    beats_s: np.ndarray, n_epochs: int, epochs: Sequence[int] | None = None
) -> list[dict[str, float | None]]:
    """Epoch features from beat times: RR intervals are taken between beats inside the same epoch
    (for the epoch indices ``epochs``, default all ``n_epochs``)."""
    edges = np.searchsorted(beats_s, np.arange(n_epochs + 1) * EPOCH_S)
    out: list[dict[str, float | None]] = []
    for e in range(n_epochs) if epochs is None else epochs:
        beats = beats_s[edges[e] : edges[e + 1]]
        rr = np.diff(beats)
        feats: dict[str, float | None] = {
            "hr_bpm": None,
            "hr_min_bpm": None,
            "hr_max_bpm": None,
            "rmssd_ms": None,
            "n_beats": float(beats.size),
        }
        if rr.size:
            feats.update(
                hr_bpm=60.0 / float(rr.mean()), hr_min_bpm=60.0 / float(rr.max()), hr_max_bpm=60.0 / float(rr.min())
            )
        if rr.size >= 2:
            feats["rmssd_ms"] = 1000.0 * float(np.sqrt(np.mean(np.diff(rr) ** 2)))
        out.append(feats)
    return out
