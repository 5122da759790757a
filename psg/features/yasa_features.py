"""YASA's sleep-staging features, without YASA: the inputs its shipped LightGBM classifiers were trained on.

Why: the stage head's real-data prior (``psg.features.yasa_prior``) is YASA's classifiers' probabilities,
but the ``yasa`` package drags MNE, antropy, numba and llvmlite (~410 MB) into the serving install (issue 18).
This module computes the same features as ``yasa.SleepStaging(raw, ...).get_features()`` of YASA 0.8.1 with
NumPy and SciPy only, vectorised over epochs, so the classifiers give the same probabilities
(``tests/psg/test_yasa_features.py`` compares both on simulated and real nights).

Ported, with their algorithms and constants unchanged, from three BSD-3-Clause projects:

- YASA 0.8.1, ``yasa/staging.py`` (``SleepStaging.fit``), ``yasa/spectral.py`` (``bandpower_from_psd_ndarray``),
  ``yasa/others.py`` (``sliding_window``): Copyright (c) 2018-2025, Raphael Vallat. All rights reserved.
- antropy 0.2.3, ``perm_entropy`` (order 3), ``higuchi_fd``, ``petrosian_fd``, ``num_zerocross``,
  ``hjorth_params``: Copyright (c) 2018-2021, Raphael Vallat. All rights reserved.
- MNE-Python 1.13, ``mne.filter.filter_data`` with its defaults (the zero-phase FIR band-pass YASA applies:
  ``create_filter``, ``_firwin_design``, ``_smart_pad`` and the overlap-add filter, here one FFT convolution):
  Copyright (c) 2011-2025, the MNE-Python developers. All rights reserved.

YASA's smoothing is pandas' rolling means and scikit-learn's ``robust_scale``; they are written here in
NumPy after pandas 3.1 (``roll_weighted_mean``, ``roll_mean``: Copyright (c) 2008-2011, AQR Capital
Management, LLC, Lambda Foundry, Inc. and PyData Development Team; 2011-2025, Open source contributors) and
scikit-learn 1.9 (``RobustScaler``: Copyright (c) 2007-2025 The scikit-learn developers), both BSD-3-Clause,
so that serving needs neither (issue 18: ~190 MB of the base install).

Their licence, the BSD 3-Clause License: Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met: (1) Redistributions of source
code must retain the above copyright notice, this list of conditions and the following disclaimer.
(2) Redistributions in binary form must reproduce the above copyright notice, this list of conditions and
the following disclaimer in the documentation and/or other materials provided with the distribution.
(3) Neither the name of the copyright holder nor the names of its contributors may be used to endorse or
promote products derived from this software without specific prior written permission. THIS SOFTWARE IS
PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING,
BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT,
INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF
SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON
ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE)
ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.

What differs from YASA: only the order of floating-point sums (an FFT convolution where MNE adds FFT
blocks, NumPy's pairwise sums where antropy's numba loops add in sequence), ~1e-12 relative. YASA resamples
any rate to 100 Hz with MNE; here the caller hands 100-Hz signals (``yasa_prior`` resamples them).

>>> names, values = staging_features({"eeg": eeg_uv, "eog": eog_uv})  # 100-Hz signals in uV
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft
from scipy import signal as sps
from scipy.integrate import simpson, trapezoid

from psg.features.night_reference import WINDOWS, NightReference, night_statistics

#: The rate every signal is given at (YASA resamples to it before computing its features).
FS = 100
EPOCH_SAMPLES = 30 * FS
#: The channel kinds YASA knows, in the order it computes them.
KINDS = ("eeg", "eog", "emg")
FREQ_BROAD = (0.4, 30.0)
BANDS = (
    (0.4, 1.0, "sdelta"),
    (1.0, 4.0, "fdelta"),
    (4.0, 8.0, "theta"),
    (8.0, 12.0, "alpha"),
    (12.0, 16.0, "sigma"),
    (16.0, 30.0, "beta"),
)
_WELCH_S = 5
_HAMMING_LENGTH_FACTOR = 3.3  # MNE's _length_factors["hamming"]
_HIGUCHI_KMAX = 10
_EPSILON = 1e-9  # antropy's regression guard
_CENTRED_WINDOW = 15  # YASA's 7.5-min centred smoothing, in epochs
PAST_WINDOW = 4  # YASA's 2-min past smoothing, in epochs


def staging_features(
    signals: dict[str, np.ndarray], reference: NightReference | None = None
) -> tuple[list[str], np.ndarray]:
    """YASA's ``SleepStaging`` features of 100-Hz signals in uV: (sorted feature names, (n_epochs, n) float32).

    ``signals`` maps ``"eeg"`` (required), ``"eog"`` and ``"emg"`` to 1-D arrays of one length, at least one
    30-s epoch; a trailing partial epoch is ignored, as YASA does. ``reference``: see ``feature_table``.
    """
    names, features = epoch_base_features(signals)
    return feature_table(names, features, reference=reference)


def epoch_base_features(signals: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """YASA's per-epoch features before its recording-relative smoothing: (names, (n_epochs, m) float64).

    Each epoch's row depends only on that epoch's band-passed samples, so a live bed can compute its
    newest epoch's row once, from a few epochs of context, and keep it (``psg.features.live_stage``).
    """
    if "eeg" not in signals or set(signals) - set(KINDS):
        raise ValueError(f"staging_features needs 'eeg' and only {KINDS}, got {sorted(signals)}")
    kinds = [k for k in KINDS if k in signals]
    data = np.stack([np.asarray(signals[k], dtype=np.float64) for k in kinds])
    if data.ndim != 2 or data.shape[1] < EPOCH_SAMPLES:
        raise ValueError(f"staging_features needs 1-D signals of at least {EPOCH_SAMPLES} samples, got {data.shape}")
    filtered = bandpass(data)
    n_epochs = data.shape[1] // EPOCH_SAMPLES
    names: list[str] = []
    columns: list[np.ndarray] = []
    for i, kind in enumerate(kinds):
        for name, values in _epoch_features(
            filtered[i, : n_epochs * EPOCH_SAMPLES].reshape(n_epochs, -1), kind
        ).items():
            names.append(f"{kind}_{name}")
            columns.append(np.asarray(values, dtype=np.float64))
    return names, np.stack(columns, axis=1)


def one_epoch_features(x: np.ndarray, kind: str, epoch: int) -> np.ndarray:
    """YASA's per-epoch features of epoch ``epoch`` of one 100-Hz channel of ``kind``, band-passed with the
    rest of ``x`` as its context: the live path's one new row per epoch (in ``epoch_base_features`` order)."""
    filtered = bandpass(np.asarray(x, dtype=np.float64)[None])[0]
    features = _epoch_features(filtered[epoch * EPOCH_SAMPLES : (epoch + 1) * EPOCH_SAMPLES][None], kind)
    return np.array([float(v[0]) for v in features.values()])


def feature_table(
    names: list[str],
    features: np.ndarray,
    past: np.ndarray | None = None,
    clock: RecordingClock | None = None,
    reference: NightReference | None = None,
) -> tuple[list[str], np.ndarray]:
    """The classifier's table from per-epoch features (``epoch_base_features``): YASA's smoothing added,
    columns sorted by name. ``past``: the past 4-epoch means when the caller kept them (a live bed computes
    each once, ``past_mean`` of its last rows); None computes them here. ``clock``: where the rows lie in
    the night when they are not the whole recording from its start (a live bed's history, below).
    ``reference``: scale the shape features of a recording shorter than a night partly to a reference night
    (``psg.features.night_reference``); None scales every feature to the recording alone, as YASA does."""
    n_epochs = len(features)
    # YASA's smoothing: a centred triangular 15-epoch (7.5-min) mean and a past 4-epoch (2-min) mean, each
    # scaled to the recording's 5-95 % range
    scaled = []
    for window, rolled in smoothed_blocks(features, past).items():
        stats = night_statistics(rolled)
        if reference is not None:
            stats = reference.blend(window, names, stats, n_epochs)
        scaled.append(robust_scale_with(rolled, stats))
    rollc, rollp = scaled
    if clock is None:
        times = np.arange(n_epochs) * 30.0
        time_norm = times / times[-1] if times[-1] > 0 else np.zeros_like(times)
    else:
        times, time_norm = clock.times_s, clock.time_norm()
    names = [*names, *(f"{n}_c7min_norm" for n in names), *(f"{n}_p2min_norm" for n in names), "time_hour", "time_norm"]
    table = np.concatenate([features, rollc, rollp, np.stack([times / 3600, time_norm], axis=1)], axis=1)
    order = sorted(range(len(names)), key=names.__getitem__)  # pandas' sort_index(axis=1): by column name
    return [names[j] for j in order], table[:, order].astype(np.float32)


def smoothed_blocks(features: np.ndarray, past: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """YASA's two smoothed blocks of per-epoch ``features`` before scaling, by their column suffix: the
    centred 7.5-min triangular mean and the past 2-min mean (``past`` when the caller kept it)."""
    blocks = (centred_triangular_mean(features), past_mean(features) if past is None else past)
    return dict(zip(WINDOWS, blocks, strict=True))


@dataclass(frozen=True)
class RecordingClock:
    """The times of a live bed's history rows (their epochs' starts, s), and the night length assumed for
    YASA's ``time_norm`` (time over the recording's length, which a live bed does not know yet).

    Why: read off the history as if it were the whole recording, the newest epoch's ``time_norm`` is always 1
    (the night's last epoch) and, after a worker restart, ``time_hour`` starts again at 0 (the night's first).
    On held-out simulated nights an assumed 8-h night gives YASA at lag 0 nearly what the true length gives
    (``benchmarks/RESULTS.md``, "How much history the live stage head needs")."""

    times_s: np.ndarray
    night_s: float = 8 * 3600.0

    def time_norm(self) -> np.ndarray:
        """Time over the assumed night, or over the time so far once the night has run longer."""
        length = max(self.night_s, float(self.times_s[-1]) if self.times_s.size else 0.0)
        return np.asarray(self.times_s / length)


def centred_triangular_mean(x: np.ndarray, window: int = _CENTRED_WINDOW) -> np.ndarray:
    """``DataFrame.rolling(window, center=True, min_periods=1, win_type="triang").mean()`` of (n, m) ``x``.

    pandas' ``roll_weighted_mean`` step for step (so the sums round as pandas' do): the input padded with
    ``(window - 1) // 2`` trailing NaN, each weight's products added in window order, NaN skipped (weight and
    count too), the sum divided by the weights present, and the first ``(window - 1) // 2`` rows dropped.
    """
    weights = sps.windows.triang(window)  # scipy's symmetric window, as pandas asks for it: k/8 for 15
    offset = (window - 1) // 2
    padded = np.concatenate([x, np.full((offset, x.shape[1]), np.nan)])
    n_in = len(padded)
    present = ~np.isnan(padded)
    values = np.where(present, padded, 0.0)
    total, weight, count = np.zeros_like(padded), np.zeros_like(padded), np.zeros_like(padded)
    for i, w in enumerate(weights):
        lag = window - 1 - i  # the output row this weight's input row lands on, minus that input row
        if lag >= n_in:
            continue
        total[lag:] += values[: n_in - lag] * w
        weight[lag:] += present[: n_in - lag] * w
        count[lag:] += present[: n_in - lag]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where((count >= 1) & (weight != 0), total / weight, np.nan)
    return np.asarray(mean[offset:])


def past_mean(x: np.ndarray, window: int = PAST_WINDOW) -> np.ndarray:
    """``DataFrame.rolling(window, min_periods=1).mean()`` of (n, m) ``x``: the mean of each row and the
    ``window - 1`` before it, NaN skipped.

    pandas' ``roll_mean`` step for step, all columns at once: a running Kahan sum that adds each new row
    and takes out the row leaving the window (each with its own compensation), the mean set to the value
    itself while the window holds one repeated value, and to 0 when rounding left a sign no value has.
    """
    n, m = x.shape
    out = np.empty((n, m))
    total, comp_add, comp_remove = np.zeros(m), np.zeros(m), np.zeros(m)
    nobs, negative, repeated = np.zeros(m, dtype=np.int64), np.zeros(m, dtype=np.int64), np.zeros(m, dtype=np.int64)
    previous = x[0].copy()
    for i in range(n):
        if i >= window:
            leaving = x[i - window]
            ok = ~np.isnan(leaving)
            y = -leaving - comp_remove
            t = total + y
            comp_remove = np.where(ok, (t - total) - y, comp_remove)
            total = np.where(ok, t, total)
            nobs -= ok
            negative -= ok & np.signbit(leaving)
        value = x[i]
        ok = ~np.isnan(value)
        y = value - comp_add
        t = total + y
        comp_add = np.where(ok, (t - total) - y, comp_add)
        total = np.where(ok, t, total)
        nobs += ok
        negative += ok & np.signbit(value)
        repeated = np.where(ok, np.where(value == previous, repeated + 1, 1), repeated)
        previous = np.where(ok, value, previous)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / nobs
        mean = np.where(((negative == 0) & (mean < 0)) | ((negative == nobs) & (mean > 0)), 0.0, mean)
        mean = np.where(repeated >= nobs, previous, mean)
        out[i] = np.where(nobs >= 1, mean, np.nan)
    return out


def robust_scale_with(x: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """(n, m) ``x`` centred and scaled by (3, m) ``stats`` (median, 5th, 95th percentile): with ``x``'s own
    ``night_statistics`` this is ``sklearn.preprocessing.robust_scale(x, quantile_range=(5, 95))`` (1 where
    the 5-95 range is under 10 machine epsilons, NaN ignored)."""
    center, low, high = stats
    scale = high - low
    scale[scale < 10 * np.finfo(np.float64).eps] = 1.0
    return np.asarray((x - center) / scale)


def _epoch_features(epochs: np.ndarray, kind: str) -> dict[str, np.ndarray]:
    """YASA's per-epoch features of one channel kind, (n_epochs, 3000) band-passed epochs -> name: (n_epochs,)."""
    hmob, hcomp = hjorth_params(epochs)
    q = np.quantile(epochs, [0.25, 0.75], axis=1)
    dev = epochs - epochs.mean(axis=1, keepdims=True)
    dev2 = dev**2
    m2 = dev2.mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):  # NaN for flat epochs, as in YASA
        skew = (dev2 * dev).mean(axis=1) / m2**1.5
        kurt = (dev2**2).mean(axis=1) / m2**2 - 3
    feat = {
        "std": np.std(epochs, ddof=1, axis=1),
        "iqr": q[1] - q[0],
        "skew": skew,
        "kurt": kurt,
        "nzc": num_zerocross(epochs),
        "hmob": hmob,
        "hcomp": hcomp,
    }
    freqs, psd = sps.welch(epochs, FS, window="hamming", nperseg=_WELCH_S * FS, average="median")
    if kind != "emg":
        bp = _relative_bandpower(psd, freqs)
        for j, (_, _, band) in enumerate(BANDS):
            feat[band] = bp[j]
    if kind == "eeg":
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = feat["sdelta"] + feat["fdelta"]
            feat["dt"] = delta / feat["theta"]
            feat["ds"] = delta / feat["sigma"]
            feat["db"] = delta / feat["beta"]
            feat["at"] = feat["alpha"] / feat["theta"]
    broad = (freqs >= FREQ_BROAD[0]) & (freqs <= FREQ_BROAD[1])
    feat["abspow"] = trapezoid(psd[:, broad], dx=freqs[1] - freqs[0])
    feat["perm"] = perm_entropy3(epochs)
    feat["higuchi"] = higuchi_fd(epochs)
    feat["petrosian"] = petrosian_fd(epochs)
    return feat


def _relative_bandpower(psd: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """YASA's ``bandpower_from_psd_ndarray``: (n_bands, n_epochs) Simpson power per band over the 0.4-30 Hz total."""
    good = (freqs >= BANDS[0][0]) & (freqs <= BANDS[-1][1])
    f, p = freqs[good], psd[:, good]
    res = f[1] - f[0]
    total = simpson(p, dx=res, axis=-1)
    bp = np.stack([simpson(p[:, (f >= lo) & (f <= hi)], dx=res, axis=-1) for lo, hi, _ in BANDS])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(bp / total)


def bandpass(data: np.ndarray) -> np.ndarray:
    """``mne.filter.filter_data(data, 100, 0.4, 30)`` with MNE's defaults: zero-phase FIR, reflect-limited edges.

    (n_channels, n_times) -> the same shape, n_times >= one epoch. MNE's overlap-add, block for block (its FFT
    length, its blocks, SciPy's FFT), all channels and blocks at once: a zero crossing of a near-silent
    channel then falls where MNE's does.
    """
    h = _mne_bandpass_fir()
    n_h, (n_ch, n_times) = h.size, data.shape
    n_edge = min(n_h, n_times) - 1
    # MNE's "reflect_limited" pad: odd reflection about the end samples (a signal of one epoch is longer)
    left = 2 * data[:, :1] - data[:, n_edge:0:-1]
    right = 2 * data[:, -1:] - data[:, -2 : -n_edge - 2 : -1]
    x_ext = np.concatenate([left, data, right], axis=1)
    n_x = x_ext.shape[1]
    # MNE's FFT length: the power of two minimising its cost model (multiplications + a long-FFT penalty)
    sizes = 2 ** np.arange(np.ceil(np.log2(2 * n_h - 1)), np.ceil(np.log2(n_x)) + 1, dtype=int)
    cost = np.ceil(n_x / (sizes - n_h + 1).astype(np.float64)) * sizes * (np.log2(sizes) + 1) + 4e-5 * sizes * n_x
    n_fft = int(sizes[np.argmin(cost)])
    n_seg = n_fft - n_h + 1
    n_segments = -(-n_x // n_seg)
    h_fft = sp_fft.rfft(h, n=n_fft)
    shift = (n_h - 1) // 2 + n_edge
    out = np.empty((n_ch, n_times))
    for c in range(n_ch):  # one channel at a time: a night's blocks are ~30 MB per channel
        blocks = np.zeros((n_segments, n_fft))
        blocks[:, :n_seg] = np.pad(x_ext[c], (0, n_segments * n_seg - n_x)).reshape(n_segments, n_seg)
        prod = sp_fft.irfft(sp_fft.rfft(blocks, axis=-1) * h_fft, n_fft, axis=-1)
        # each block's output added at its place; blocks overlap by n_h - 1 < n_seg samples, so an output
        # sample sums at most two blocks (a + b, exact in either order, as MNE's running sum)
        full = np.zeros((n_segments + 1) * n_seg)
        full[: n_segments * n_seg] = prod[:, :n_seg].ravel()
        full[n_seg:].reshape(n_segments, n_seg)[:, : n_h - 1] += prod[:, n_seg:]
        out[c] = full[shift : shift + n_times]
    return out


def _mne_bandpass_fir() -> np.ndarray:
    """MNE's ``create_filter`` for a 0.4-30 Hz band-pass at 100 Hz, its 'auto' choices and ``_firwin_design``.

    Transition bands 'auto': low min(max(0.25 * 0.4, 2), 0.4) = 0.4 Hz (stop at 0 Hz), high
    min(max(0.25 * 30, 2), 50 - 30) = 7.5 Hz; length 3.3 / 0.4 s = 825 samples (odd). The filter is built as
    MNE does: an all-stop start plus one windowed-sinc low-pass per gain step, each as long as its own
    transition needs, centred.
    """
    nyq = FS / 2.0
    l_freq, h_freq = FREQ_BROAD
    l_trans = min(max(0.25 * l_freq, 2.0), l_freq)
    h_trans = min(max(0.25 * h_freq, 2.0), nyq - h_freq)
    n = max(math.ceil(_HAMMING_LENGTH_FACTOR / min(l_trans, h_trans) * FS), 1)
    n += (n - 1) % 2
    freq = [l_freq - l_trans, l_freq, h_freq, h_freq + h_trans]
    gain = [0, 1, 1, 0]
    if freq[-1] != nyq:
        freq, gain = [*freq, nyq], [*gain, 0]
    if freq[0] != 0:
        freq, gain = [0.0, *freq], [0, *gain]
    f = np.asarray(freq) / nyq
    h = np.zeros(n)
    if gain[-1] == 1:
        h[n // 2] = 1
    prev_f, prev_g = f[-1], gain[-1]
    for this_f, this_g in zip(f[::-1][1:], gain[::-1][1:], strict=True):
        if this_g != prev_g:
            transition = (prev_f - this_f) / 2.0
            this_n = int(round(_HAMMING_LENGTH_FACTOR / transition))
            this_n += 1 - this_n % 2
            lowpass = sps.firwin(this_n, (prev_f + this_f) / 2.0, window="hamming", pass_zero=True, fs=2.0)
            offset = (n - this_n) // 2
            h[offset : n - offset] += -lowpass if this_g == 0 else lowpass
        prev_g, prev_f = this_g, this_f
    return h


def hjorth_params(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """antropy's Hjorth mobility and complexity along the last axis."""
    dx = np.diff(x, axis=-1)
    ddx = np.diff(dx, axis=-1)
    x_var, dx_var, ddx_var = np.var(x, axis=-1), np.var(dx, axis=-1), np.var(ddx, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mob = np.sqrt(dx_var / x_var)
        com = np.sqrt(ddx_var / dx_var) / mob
    return mob, com


def num_zerocross(x: np.ndarray) -> np.ndarray:
    """antropy's number of zero crossings (sign-bit changes) along the last axis."""
    return np.asarray(np.diff(np.signbit(x), axis=-1).sum(axis=-1))


def petrosian_fd(x: np.ndarray) -> np.ndarray:
    """antropy's Petrosian fractal dimension along the last axis."""
    n = x.shape[-1]
    nzc_deriv = num_zerocross(np.diff(x, axis=-1))
    return np.asarray(np.log10(n) / (np.log10(n) + np.log10(n / (n + 0.4 * nzc_deriv))))


# antropy's order-3 table: the three '<=' comparisons of an ordinal pattern -> its argsort hash -> 0..5
# (the '<=' breaks ties by position, as a stable argsort does)
_PE3_LOOKUP = np.zeros(8, dtype=np.int64)
for _key, _hash in ((0b111, 21), (0b110, 15), (0b100, 11), (0b000, 5), (0b001, 7), (0b011, 19)):
    _PE3_LOOKUP[_key] = (5, 7, 11, 15, 19, 21).index(_hash)


def perm_entropy3(x: np.ndarray) -> np.ndarray:
    """antropy's normalised permutation entropy, order 3, delay 1, of each row of (n_epochs, n_times) ``x``."""
    n, m = x.shape
    n_embed = m - 2
    valid = (x == x).all(axis=1)  # an epoch with NaN has no ordering: NaN, as antropy
    result = np.full(n, np.nan)
    if not valid.any():
        return result
    v = x[valid]
    c0, c1, c2 = v[:, :n_embed], v[:, 1 : 1 + n_embed], v[:, 2 : 2 + n_embed]
    bits = ((c0 <= c1).astype(np.uint8) << 2) | ((c0 <= c2).astype(np.uint8) << 1) | (c1 <= c2).astype(np.uint8)
    keys = _PE3_LOOKUP[bits]
    offsets = (np.arange(len(v), dtype=np.int64) * 6)[:, None]
    counts = np.bincount((keys + offsets).ravel(), minlength=len(v) * 6).reshape(len(v), 6)
    p = counts / n_embed
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = np.where(p > 0, np.log2(p), 0.0)
    pe = -(p * log_p).sum(axis=1) / np.log2(math.factorial(3))
    result[valid] = np.minimum(np.maximum(pe, 0.0), 1.0)
    return result


def higuchi_fd(x: np.ndarray, kmax: int = _HIGUCHI_KMAX) -> np.ndarray:
    """antropy's Higuchi fractal dimension of each row of (n_epochs, n_times) ``x``, vectorised over rows.

    For each lag k, the k sub-series starting at m = 0..k-1 are the samples i = m (mod k) of the lag-k
    absolute differences; their normalised lengths are averaged, and the dimension is the least-squares
    slope of log L(k) on log(1/k) (antropy's regression, with its 1e-9 guard in the denominator).
    """
    n_rows, n_times = x.shape
    lk = np.empty((n_rows, kmax))
    for k in range(1, kmax + 1):
        diffs = np.abs(x[:, k:] - x[:, :-k])  # (n_rows, n_times - k); column i belongs to sub-series i % k
        n_max = np.array([(n_times - m - 1) // k for m in range(k)], dtype=np.float64)
        padded = np.pad(diffs, ((0, 0), (0, -diffs.shape[1] % k)))
        sums = padded.reshape(n_rows, -1, k).sum(axis=1)  # (n_rows, k): one sum per start m
        lm = sums / k * ((n_times - 1) / (k * n_max))
        lk[:, k - 1] = lm.mean(axis=1)
    x_reg = np.log(1.0 / np.arange(1, kmax + 1))
    with np.errstate(divide="ignore"):
        y_reg = np.where(lk > 0, np.log(np.where(lk > 0, lk, 1.0)), -np.inf)
    sx2, sx = (x_reg**2).sum(), x_reg.sum()
    sxy, sy = (y_reg * x_reg).sum(axis=1), y_reg.sum(axis=1)
    den = kmax * sx2 - sx**2
    with np.errstate(invalid="ignore"):
        return np.asarray((kmax * sxy - sx * sy) / (den + _EPSILON))
