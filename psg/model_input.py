"""Model input of one epoch: resample every channel to 64 Hz and robust-z-score it with a per-bed running estimate.

DESIGN: the model takes 10 channels x 1920 samples (30 s at 64 Hz), each robustly z-scored per bed
with a running estimate so that live and offline agree. How that is done here, and why:

* **Resampling** (``to_model_rate``) uses ``scipy.signal.resample_poly`` (polyphase FIR with a Kaiser
  anti-alias filter) on *the epoch alone*, padded by a fitted line at both ends (``padtype='line'``)
  so the epoch edges do not ring. One epoch in, exactly ``MODEL_EPOCH_SAMPLES`` out: an epoch's model
  signal depends on nothing but its own samples, which is what makes a replay after a crash rebuild
  it bit for bit. NaN samples (gaps) are bridged by linear interpolation for the filter and are 0 in
  the output after normalisation (the channel's running median).
* **POS** is a code channel (0 right .. 4 upright, -1 unknown): resampling or z-scoring a code would
  invent positions between codes, so it is upsampled by sample-and-hold and passed through unchanged
  (a gap holds the last known code, -1 when there is none).
* **Normalisation** (``RunningNormaliser``): each epoch contributes its own robust statistics per
  channel (median, and MAD scaled by 1.4826 so it estimates the standard deviation of Gaussian data;
  Rousseeuw & Croux, JASA 1993). The centre and scale used for an epoch are the medians of those
  statistics over the last ``window_epochs`` epochs of the bed, this one included. Medians of
  per-epoch medians/MADs shrug off a movement burst or a lead-off in a few epochs, and a bounded window
  of epochs *by index* keeps the estimate a pure function of the last ``window_epochs`` epochs' data:
  the epocher holds the Kafka offsets of those epochs un-acked, so a restarted worker replays them and
  reaches the same estimate (an exponential update would depend on the whole night and could never be
  rebuilt after a crash). Offline, running the same code over a file gives the same numbers.
  Channels whose epoch is flat, mostly missing or missing contribute nothing; a channel with no
  statistics in the window (never seen alive) is zeros, like a missing channel.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from math import gcd

import numpy as np
from scipy import signal as sps

from psg.dsp import median
from psg.montage import EPOCH_S, MODEL_CHANNELS, MODEL_EPOCH_SAMPLES, MODEL_FS, POS
from psg.recording import Recording

#: MAD -> standard deviation for Gaussian data.
MAD_TO_SD = 1.4826
#: An epoch contributes statistics only where at least this fraction of its samples is real.
MIN_VALID_FRACTION = 0.5
#: Default running window: 20 epochs = 10 min, long enough that one stage's amplitude (N3 slow
#: waves, REM atonia) does not rescale itself away, short enough to follow electrode drift.
DEFAULT_WINDOW_EPOCHS = 20
#: The window the live path and the model corpus use: 6 epochs (3 min), so a restarted worker replays
#: at most ~3 min per bed; the model is trained on inputs normalised exactly like the ones it serves.
SERVING_WINDOW_EPOCHS = 6


def to_model_rate(data: np.ndarray, fs: float) -> np.ndarray:
    """One epoch of one channel at ``fs`` Hz -> ``MODEL_EPOCH_SAMPLES`` float64 samples at 64 Hz.

    NaN samples are interpolated for the filter and NaN again in the output (nearest output samples).
    An all-NaN epoch stays all NaN.
    """
    x = np.asarray(data, dtype=np.float64)
    missing = ~np.isfinite(x)
    if missing.all():
        return np.full(MODEL_EPOCH_SAMPLES, np.nan)
    if missing.any():
        x = fill_linear(x)
    up, down = _rate_ratio(fs)
    if up == down:
        out = x
    else:
        out = sps.resample_poly(x, up, down, padtype="line", window=_anti_alias_fir(up, down))
    out = _fit_length(out)
    if missing.any():
        out[missing[_source_index(missing.size, fs)]] = np.nan
    return out


def to_model_rate_many(channels: dict[str, tuple[np.ndarray, float]]) -> dict[str, np.ndarray]:
    """``to_model_rate`` of every channel but POS (``{label: (epoch samples, fs)}``).

    Channels of one rate and length without missing samples (a device stream's) are resampled as one
    2-D array: ``resample_poly`` filters each row exactly as it filters a 1-D input, and most of its
    cost per call is fixed.
    """
    out: dict[str, np.ndarray] = {}
    groups: dict[tuple[float, int], list[tuple[str, np.ndarray]]] = {}
    for label, (data, fs) in channels.items():
        if label == POS:
            continue
        x = np.asarray(data, dtype=np.float64)
        if x.size and np.isfinite(x).all() and _rate_ratio(fs)[0] != _rate_ratio(fs)[1]:
            groups.setdefault((fs, x.size), []).append((label, x))
        else:
            out[label] = to_model_rate(x, fs)
    for (fs, _), members in groups.items():
        up, down = _rate_ratio(fs)
        stacked = np.stack([x for _, x in members])
        filtered = sps.resample_poly(stacked, up, down, axis=-1, padtype="line", window=_anti_alias_fir(up, down))
        for (label, _), row in zip(members, filtered, strict=True):
            out[label] = _fit_length(row)
    return out


@lru_cache(maxsize=32)
def _rate_ratio(fs: float) -> tuple[int, int]:
    """64 Hz / ``fs`` as (up, down), the fraction with denominator <= 1000 closest to it."""
    ratio = Fraction(MODEL_FS / fs).limit_denominator(1000)
    return ratio.numerator, ratio.denominator


@lru_cache(maxsize=32)
def _anti_alias_fir(up: int, down: int) -> np.ndarray:
    """The FIR that ``scipy.signal.resample_poly(x, up, down)`` designs by default (``firwin`` with a
    Kaiser window, beta 5, cutoff at the lower Nyquist), designed once: ``firwin`` costs more than the
    filtering of an epoch. Passed back as ``window``, SciPy uses it as is, so the output is unchanged."""
    g = gcd(up, down)
    up, down = up // g, down // g
    max_rate = max(up, down)
    half_len = 10 * max_rate
    h: np.ndarray = sps.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0))
    h.setflags(write=False)
    return h


def hold_to_model_rate(data: np.ndarray, fs: float, missing_value: float = -1.0) -> np.ndarray:
    """Sample-and-hold upsampling of a code channel (POS); gaps hold the last code (``missing_value`` if none)."""
    x = np.asarray(data, dtype=np.float64)
    if x.size == 0:
        return np.full(MODEL_EPOCH_SAMPLES, missing_value)
    x = fill_hold(x, missing_value)
    held: np.ndarray = x[_source_index(x.size, fs)]
    return held


def fill_linear(x: np.ndarray) -> np.ndarray:
    """``x`` with NaN runs replaced by a straight line between their neighbours (nearest value at the ends)."""
    out = np.asarray(x, dtype=np.float64).copy()
    ok = np.isfinite(out)
    if ok.all() or not ok.any():
        return out
    idx = np.arange(out.size)
    out[~ok] = np.interp(idx[~ok], idx[ok], out[ok])
    return out


def fill_hold(x: np.ndarray, missing_value: float = -1.0) -> np.ndarray:
    """``x`` with each NaN replaced by the last finite value before it (``missing_value`` if none)."""
    out = np.asarray(x, dtype=np.float64).copy()
    ok = np.isfinite(out)
    if ok.all():
        return out
    last = np.maximum.accumulate(np.where(ok, np.arange(out.size), -1))
    return np.where(last >= 0, out[np.maximum(last, 0)], missing_value)


def robust_stats(x64: np.ndarray) -> tuple[float, float] | None:
    """(median, 1.4826 x MAD) of an epoch's finite samples, or None where they are too few or constant."""
    finite_mask = np.isfinite(x64)
    finite = x64 if finite_mask.all() else x64[finite_mask]
    if finite.size < MIN_VALID_FRACTION * x64.size:
        return None
    centre = median(finite)
    scale = MAD_TO_SD * median(np.abs(finite - centre))
    if not scale > 0:
        return None
    return centre, scale


def _list_median(values: list[float]) -> float:
    """``float(np.median(values))`` of a short non-empty list of finite floats (the same arithmetic)."""
    ordered = sorted(values)
    half = len(ordered) // 2
    return ordered[half] if len(ordered) % 2 else (ordered[half - 1] + ordered[half]) / 2.0


class RunningNormaliser:
    """Per-bed robust z-scoring over a window of epochs, keyed by epoch index (see the module docstring).

    Feeding the same epoch twice (a replay) replaces its statistics instead of counting them twice.
    """

    def __init__(self, window_epochs: int = DEFAULT_WINDOW_EPOCHS) -> None:
        if window_epochs < 1:
            raise ValueError(f"window_epochs must be >= 1, got {window_epochs}")
        self.window_epochs = window_epochs
        self._stats: dict[str, dict[int, tuple[float, float]]] = {}

    def model_signals(self, epoch: int, channels: dict[str, tuple[np.ndarray, float]]) -> np.ndarray:
        """``{label: (native samples of this epoch, fs)}`` -> (10, 1920) float32 in ``MODEL_CHANNELS`` order.

        A label absent from ``channels`` is zeros (the epoch's quality flags say 'missing').
        """
        out = np.zeros((len(MODEL_CHANNELS), MODEL_EPOCH_SAMPLES), dtype=np.float32)
        present = [label for label in MODEL_CHANNELS if label in channels]
        resampled = to_model_rate_many({label: channels[label] for label in present})
        normalised = self.normalise_many(epoch, {label: resampled[label] for label in present if label != POS})
        for row, label in enumerate(MODEL_CHANNELS):
            if label == POS and label in channels:
                data, fs = channels[label]
                out[row] = hold_to_model_rate(data, fs)
            elif label in normalised:
                out[row] = normalised[label]
        return out

    def normalise(self, epoch: int, label: str, x64: np.ndarray) -> np.ndarray:
        """Record ``x64``'s statistics for ``epoch`` and return it z-scored by the window's estimate (NaN -> 0)."""
        return self.normalise_many(epoch, {label: x64})[label]

    def normalise_many(self, epoch: int, channels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``normalise`` of several channels' model-rate epochs at once (``{label: x64}``, each
        ``MODEL_EPOCH_SAMPLES`` long): the statistics of the complete ones from one partition of all,
        the z-scores as one array operation. The same numbers as one channel at a time."""
        stats = _robust_stats_rows(channels)
        out: dict[str, np.ndarray] = {}
        scored: list[tuple[str, float, float]] = []
        for label in channels:
            estimate = self._record(epoch, label, stats[label])
            if estimate is None:
                out[label] = np.zeros(MODEL_EPOCH_SAMPLES, dtype=np.float32)
            else:
                scored.append((label, *estimate))
        if scored:
            x = np.stack([channels[label] for label, _, _ in scored])
            centre = np.array([c for _, c, _ in scored])[:, None]
            scale = np.array([s for _, _, s in scored])[:, None]
            z = np.nan_to_num((x - centre) / scale, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
            out.update(zip((label for label, _, _ in scored), z, strict=True))
        return out

    def _record(self, epoch: int, label: str, stats: tuple[float, float] | None) -> tuple[float, float] | None:
        """Store ``label``'s statistics of ``epoch`` (or drop them: None) and return the window's
        (centre, scale), None when the window has none."""
        per_epoch = self._stats.setdefault(label, {})
        if stats is None:
            per_epoch.pop(epoch, None)
        else:
            per_epoch[epoch] = stats
        first = epoch - self.window_epochs + 1
        for old in [e for e in per_epoch if e < first]:
            del per_epoch[old]
        window = [s for e, s in per_epoch.items() if first <= e <= epoch]
        if not window:
            return None
        return _list_median([s[0] for s in window]), _list_median([s[1] for s in window])


def _robust_stats_rows(channels: dict[str, np.ndarray]) -> dict[str, tuple[float, float] | None]:
    """``robust_stats`` of each channel; those of equal length without a missing sample from one
    ``np.partition`` per statistic over all of them (each row's order statistics are its own)."""
    out: dict[str, tuple[float, float] | None] = {}
    complete: dict[int, list[str]] = {}
    for label, x in channels.items():
        if x.size >= 2 and np.isfinite(x).all():
            complete.setdefault(x.size, []).append(label)
        else:
            out[label] = robust_stats(x)
    for labels in complete.values():
        x = np.stack([channels[label] for label in labels])
        centre = _row_medians(x)
        scale = MAD_TO_SD * _row_medians(np.abs(x - centre[:, None]))
        for label, c, s in zip(labels, centre.tolist(), scale.tolist(), strict=True):
            out[label] = (c, s) if s > 0 else None
    return out


def _row_medians(x: np.ndarray) -> np.ndarray:
    """``np.median(x, axis=1)`` of finite rows (at least 2 columns), from one partition."""
    half = x.shape[1] // 2
    if x.shape[1] % 2:
        return np.partition(x, half, axis=1)[:, half]
    part = np.partition(x, (half - 1, half), axis=1)
    return (part[:, half - 1] + part[:, half]) / 2.0


def _fit_length(x: np.ndarray) -> np.ndarray:
    """Exactly ``MODEL_EPOCH_SAMPLES`` samples (rates whose 30-s count is not whole differ by one)."""
    if x.size >= MODEL_EPOCH_SAMPLES:
        return np.array(x[:MODEL_EPOCH_SAMPLES], dtype=np.float64)
    return np.concatenate([x, np.full(MODEL_EPOCH_SAMPLES - x.size, x[-1] if x.size else 0.0)])


def _source_index(n_source: int, fs: float) -> np.ndarray:
    """For each 64-Hz output sample, the index of the native sample at or before it."""
    idx = np.floor(np.arange(MODEL_EPOCH_SAMPLES) * fs / MODEL_FS + 1e-9).astype(np.int64)
    clipped: np.ndarray = np.clip(idx, 0, max(n_source - 1, 0))
    return clipped


def recording_model_epochs(recording: Recording, window_epochs: int = SERVING_WINDOW_EPOCHS) -> np.ndarray:
    """Every whole epoch of ``recording`` as model input: (n_epochs, 10, 1920) float32.

    The offline twin of the live epocher: each epoch is cut from the native-rate channels, resampled on
    its own and normalised by a ``RunningNormaliser`` fed epoch by epoch, so a file and a live bed give
    the model the same numbers.
    """
    n = recording.n_epochs
    normaliser = RunningNormaliser(window_epochs)
    out = np.zeros((n, len(MODEL_CHANNELS), MODEL_EPOCH_SAMPLES), dtype=np.float32)
    present = [label for label in MODEL_CHANNELS if recording.get(label) is not None]
    for epoch in range(n):
        start, end = epoch * EPOCH_S, (epoch + 1) * EPOCH_S
        channels = {}
        for label in present:
            sig = recording.signals[label]
            data = sig.window(start, end)
            if data.size:
                channels[label] = (data, sig.fs)
        out[epoch] = normaliser.model_signals(epoch, channels)
    return out
