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

import numpy as np
from scipy import signal as sps

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
    ratio = Fraction(MODEL_FS / fs).limit_denominator(1000)
    if ratio == 1:
        out = x
    else:
        out = sps.resample_poly(x, ratio.numerator, ratio.denominator, padtype="line")
    out = _fit_length(out)
    if missing.any():
        out[missing[_source_index(missing.size, fs)]] = np.nan
    return out


def hold_to_model_rate(data: np.ndarray, fs: float, missing_value: float = -1.0) -> np.ndarray:
    """Sample-and-hold upsampling of a code channel (POS); gaps hold the last code (``missing_value`` if none)."""
    x = np.asarray(data, dtype=np.float64)
    if x.size == 0:
        return np.full(MODEL_EPOCH_SAMPLES, missing_value)
    x = fill_hold(x, missing_value)
    return x[_source_index(x.size, fs)]


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
    finite = x64[np.isfinite(x64)]
    if finite.size < MIN_VALID_FRACTION * x64.size:
        return None
    median = float(np.median(finite))
    scale = MAD_TO_SD * float(np.median(np.abs(finite - median)))
    if not scale > 0:
        return None
    return median, scale


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
        for row, label in enumerate(MODEL_CHANNELS):
            if label not in channels:
                continue
            data, fs = channels[label]
            if label == POS:
                out[row] = hold_to_model_rate(data, fs)
                continue
            out[row] = self.normalise(epoch, label, to_model_rate(data, fs))
        return out

    def normalise(self, epoch: int, label: str, x64: np.ndarray) -> np.ndarray:
        """Record ``x64``'s statistics for ``epoch`` and return it z-scored by the window's estimate (NaN -> 0)."""
        per_epoch = self._stats.setdefault(label, {})
        stats = robust_stats(x64)
        if stats is None:
            per_epoch.pop(epoch, None)
        else:
            per_epoch[epoch] = stats
        first = epoch - self.window_epochs + 1
        for old in [e for e in per_epoch if e < first]:
            del per_epoch[old]
        window = [s for e, s in per_epoch.items() if first <= e <= epoch]
        if not window:
            return np.zeros(MODEL_EPOCH_SAMPLES, dtype=np.float32)
        centre = float(np.median([s[0] for s in window]))
        scale = float(np.median([s[1] for s in window]))
        z = (x64 - centre) / scale
        return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def _fit_length(x: np.ndarray) -> np.ndarray:
    """Exactly ``MODEL_EPOCH_SAMPLES`` samples (rates whose 30-s count is not whole differ by one)."""
    if x.size >= MODEL_EPOCH_SAMPLES:
        return np.array(x[:MODEL_EPOCH_SAMPLES], dtype=np.float64)
    return np.concatenate([x, np.full(MODEL_EPOCH_SAMPLES - x.size, x[-1] if x.size else 0.0)])


def _source_index(n_source: int, fs: float) -> np.ndarray:
    """For each 64-Hz output sample, the index of the native sample at or before it."""
    idx = np.floor(np.arange(MODEL_EPOCH_SAMPLES) * fs / MODEL_FS + 1e-9).astype(np.int64)
    return np.clip(idx, 0, max(n_source - 1, 0))


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
