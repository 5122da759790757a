"""Per-epoch staging features that survive a real amplifier: relative spectra, shape and recording context.

Why these and not the raw samples: a model trained on simulated nights learns whatever the simulator
draws. Relative band powers, the aperiodic slope, spectral entropy and Hjorth parameters do not depend on
the amplifier's gain, and restricting every spectrum to 0.5-20 Hz makes them the same at 50 Hz and at
512 Hz (Nyquist of the slowest real EEG we read is 25 Hz). Where an absolute number matters (N3 slow-wave
amplitude, chin tone, eye-movement power), it also enters *relative to the recording's own epochs*
(a robust z-score over the recording), which is how YASA (Vallat & Walker, eLife 2021) makes its
features portable across labs; a log of the excerpt length tells the model how much that z-score can be
trusted (one epoch has no context; a night has plenty). Centred rolling means over 5 and 15 epochs give
the temporal context a scorer uses (AASM continuity rules).

The features are computed from whatever EEG, EOG and chin-EMG slots the recording has (EEG required);
several EEG derivations are averaged feature by feature, so whether a lab records C3-M2, Cz-A1 or Fpz-Cz,
the model sees the same kind of number. EOG and EMG that are absent, or sampled too slowly to carry
their band, are zeros with their availability flag off.

A real-data prior joins them: YASA's stage probabilities per epoch (``psg.features.yasa_prior``), the
last ``N_PRIOR`` columns of the model input (zeros with their flag off where YASA could not stage).

>>> raw = stage_feature_matrix(recording)      # (n_epochs, N_RAW) per-epoch measurements
>>> x = raw.model_input()                      # (n_epochs, N_INPUT) with context and the YASA prior
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import signal as sps

from psg.features.yasa_prior import N_PRIOR, yasa_prior
from psg.montage import EEG_C3, EEG_C4, EMG_CHIN, EOG_L, EOG_R, EPOCH_S
from psg.recording import ORIGIN, Recording, Signal

#: Every channel is analysed at this rate: 50-Hz EEG (Nyquist 25 Hz) and 512-Hz EEG give the same spectra.
ANALYSIS_FS = 64.0
SAMPLES = int(EPOCH_S * ANALYSIS_FS)
#: EEG spectrum analysed: 0.5-20 Hz, below the anti-alias roll-off of a 50-Hz recording.
EEG_RANGE = (0.5, 20.0)
#: Relative-power bands (Hz), finer than the clinical five so the slow-wave/delta and alpha/sigma splits show.
EEG_BANDS: tuple[tuple[float, float], ...] = (
    (0.5, 1.0),
    (1.0, 2.0),
    (2.0, 4.0),
    (4.0, 6.0),
    (6.0, 8.0),
    (8.0, 10.0),
    (10.0, 12.0),
    (12.0, 14.0),
    (14.0, 16.0),
    (16.0, 20.0),
)
EOG_SLOW = (0.3, 4.0)
EMG_BAND = (12.0, 30.0)
#: Lowest native rates that carry each group's band (EMG needs its 12-30 Hz).
MIN_FS = {"eeg": 40.0, "eog": 16.0, "emg": 60.0}
_WINDOW = 256  # 4-s Welch segments: 0.25 Hz resolution, as YASA uses
_FLAT_STD_UV = 0.1
_FLOOR = 1e-12

EEG_NAMES: tuple[str, ...] = (
    *(f"eeg_rel_{lo:g}_{hi:g}" for lo, hi in EEG_BANDS),
    "eeg_slope",
    "eeg_entropy",
    "eeg_mobility",
    "eeg_complexity",
    "eeg_kurtosis",
    "eeg_log_power",
    "eeg_log_amplitude",
)
#: Features that depend on the amplifier's gain: used only relative to the recording (z-scored). The EEG's
#: 1-99 % amplitude in uV is not among them: AASM N3 is defined by absolute slow-wave amplitude (> 75 uV),
#: files carry their units (``psg.channels`` converts them), and one epoch has no recording to be relative to.
GAIN_DEPENDENT: tuple[str, ...] = ("eeg_log_power", "eog_log_power", "emg_log_power")
#: ``eog_eeg_slow_ratio``: 0.3-4 Hz power of the EOG over that of the EEG. Eye movements are far larger on
#: the EOG than on the EEG, slow waves the other way round; it tells a frontal derivation's ocular slow
#: activity in wake from the slow waves of N3.
RAW_NAMES: tuple[str, ...] = (*EEG_NAMES, "eog_log_power", "eog_rel_slow", "eog_eeg_slow_ratio", "emg_log_power")
_EOG = slice(len(EEG_NAMES), len(EEG_NAMES) + 3)
_EMG = slice(len(EEG_NAMES) + 3, len(EEG_NAMES) + 4)
CONTEXT_WINDOWS = (5, 15)
#: Robust z-scores use at least this spread (log10 units), so a near-constant feature is not blown up.
MIN_SCALE = 0.05
N_SPECTRAL = (len(RAW_NAMES) - len(GAIN_DEPENDENT)) + len(RAW_NAMES) * (1 + len(CONTEXT_WINDOWS)) + 2 + 1
#: The model input: our spectral block, then the YASA prior block (its last ``N_PRIOR`` columns).
N_INPUT = N_SPECTRAL + N_PRIOR
PRIOR_COLUMNS = slice(N_SPECTRAL, N_INPUT)


@dataclass
class StageFeatures:
    """Per-epoch measurements: ``values`` (n, len(RAW_NAMES)), ``available`` (n, 2) EOG/EMG present,
    ``eeg_ok`` (n,) whether the epoch had usable EEG at all, ``prior`` (n, N_PRIOR) YASA's probabilities
    (None: not computed, zeros in the model input), ``origin`` the recording's ``psg.recording.ORIGIN``
    (None when unknown: an in-memory recording no reader or simulator marked)."""

    values: np.ndarray
    available: np.ndarray
    eeg_ok: np.ndarray
    prior: np.ndarray | None = None
    origin: str | None = None

    def model_input(self) -> np.ndarray:
        """``stage_model_input`` of these measurements: the stage model's (n, N_INPUT) input."""
        return stage_model_input(self.values, self.available, self.prior)


def stage_feature_matrix(recording: Recording, prior: bool = True) -> StageFeatures:
    """Per-epoch staging measurements of every whole epoch of ``recording`` (montage-labelled signals);
    ``prior``: also YASA's probabilities (``psg.features.yasa_prior``, ~2.5 ms per epoch and EEG)."""
    n = recording.n_epochs
    values = np.zeros((n, len(RAW_NAMES)))
    available = np.zeros((n, 2))
    eeg = [_epochs(s, n) for s in _usable(recording, (EEG_C3, EEG_C4), "eeg")]
    eeg_feats = [_eeg_features(x) for x in eeg]
    eeg_ok = np.zeros(n, dtype=bool)
    if eeg_feats:
        stacked = np.stack([f for f, _ in eeg_feats])
        ok = np.stack([o for _, o in eeg_feats])
        weights = ok[..., None].astype(float)
        counts = weights.sum(axis=0)
        values[:, : len(EEG_NAMES)] = (np.nan_to_num(stacked) * weights).sum(axis=0) / np.maximum(counts, 1)
        eeg_ok = counts[:, 0] > 0
    eog = [_epochs(s, n) for s in _usable(recording, (EOG_L, EOG_R), "eog")]
    if eog:
        eeg_slow = np.mean([_slow_power(x) for x in eeg], axis=0) if eeg else np.full(n, np.nan)
        f, ok = _mean_of([_eog_features(x, eeg_slow) for x in eog])
        values[:, _EOG], available[:, 0] = f, ok
    emg = [_epochs(s, n) for s in _usable(recording, (EMG_CHIN,), "emg")]
    if emg:
        f, ok = _mean_of([_emg_features(x) for x in emg])
        values[:, _EMG], available[:, 1] = f, ok
    return StageFeatures(
        values, available, eeg_ok, yasa_prior(recording, n) if prior else None, recording.metadata.get(ORIGIN)
    )


def stage_model_input(values: np.ndarray, available: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
    """Per-epoch measurements of one recording -> the stage model's input (n, N_INPUT).

    Columns: the gain-free measurements as they are; every measurement robustly z-scored over the
    recording; centred rolling means of those z-scores (5 and 15 epochs); the EOG/EMG availability
    flags; log10 of the number of epochs (how far the z-scores can be trusted); the YASA prior block
    (``prior``, zeros when None).
    """
    n = len(values)
    free = [i for i, name in enumerate(RAW_NAMES) if name not in GAIN_DEPENDENT]
    z = _robust_z(values, available)
    context = [_centred_mean(z, w) for w in CONTEXT_WINDOWS]
    length = np.full((n, 1), np.log10(max(n, 1)) / 3.0)
    block = np.zeros((n, N_PRIOR)) if prior is None else prior
    return np.concatenate([values[:, free], z, *context, available, length, block], axis=1).astype(np.float32)


def _usable(recording: Recording, labels: tuple[str, ...], group: str) -> list[Signal]:
    return [s for label in labels if (s := recording.get(label)) is not None and s.fs >= MIN_FS[group] and s.data.size]


def _epochs(sig: Signal, n: int) -> np.ndarray:
    """(n, SAMPLES) of ``sig`` at ANALYSIS_FS; NaN (gaps) and missing tails are NaN rows."""
    x = np.asarray(sig.data, dtype=np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        x = np.where(bad, 0.0, x)
    ratio = Fraction(ANALYSIS_FS / sig.fs).limit_denominator(1000)
    y = x if ratio == 1 else sps.resample_poly(x, ratio.numerator, ratio.denominator, padtype="line")
    out = np.full((n, SAMPLES), np.nan)
    usable = min(n, y.size // SAMPLES)
    out[:usable] = y[: usable * SAMPLES].reshape(usable, SAMPLES)
    if bad.any():
        per_epoch = int(round(EPOCH_S * sig.fs))
        for i in range(usable):
            if bad[i * per_epoch : (i + 1) * per_epoch].mean() > 0.5:
                out[i] = np.nan
    return out


def _spectra(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = sps.detrend(np.nan_to_num(x), axis=-1)
    freqs: np.ndarray
    psd: np.ndarray
    freqs, psd = sps.welch(x, fs=ANALYSIS_FS, nperseg=_WINDOW, noverlap=_WINDOW // 2, axis=-1)
    return freqs, psd


def _band(freqs: np.ndarray, psd: np.ndarray, lo: float, hi: float) -> np.ndarray:
    mask = (freqs >= lo) & (freqs < hi)
    total: np.ndarray = psd[:, mask].sum(axis=1)
    return total


def _eeg_features(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, len(EEG_NAMES)) features and (n,) usable mask of one EEG derivation's epochs."""
    ok = np.isfinite(x).all(axis=1) & (np.nanstd(x, axis=1) > _FLAT_STD_UV)
    freqs, psd = _spectra(x)
    total = _band(freqs, psd, *EEG_RANGE) + _FLOOR
    rel = np.stack([_band(freqs, psd, lo, hi) / total for lo, hi in EEG_BANDS], axis=1)
    in_range = (freqs >= EEG_RANGE[0]) & (freqs < EEG_RANGE[1])
    f, p = freqs[in_range], psd[:, in_range] + _FLOOR
    slope_mask = f >= 1.0
    logf = np.log10(f[slope_mask])
    logp = np.log10(p[:, slope_mask])
    slope = np.polyfit(logf, logp.T, 1)[0]
    pn = p / p.sum(axis=1, keepdims=True)
    entropy = -(pn * np.log2(pn)).sum(axis=1) / np.log2(pn.shape[1])
    filtered = _bandpassed(x)
    mobility, complexity = _hjorth(filtered)
    centred = filtered - filtered.mean(axis=1, keepdims=True)
    var = (centred**2).mean(axis=1) + _FLOOR
    kurt = np.log10(((centred**4).mean(axis=1) / var**2) + _FLOOR)
    amplitude = np.percentile(filtered, 99, axis=1) - np.percentile(filtered, 1, axis=1)
    feats = np.column_stack(
        [
            np.log10(rel + 1e-6),
            slope,
            entropy,
            mobility,
            complexity,
            kurt,
            np.log10(total),
            np.log10(amplitude + 1e-3),
        ]
    )
    return np.where(ok[:, None], feats, np.nan), ok


def _slow_power(x: np.ndarray) -> np.ndarray:
    freqs, psd = _spectra(x)
    return _band(freqs, psd, *EOG_SLOW) + _FLOOR


def _eog_features(x: np.ndarray, eeg_slow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(x).all(axis=1) & (np.nanstd(x, axis=1) > _FLAT_STD_UV) & np.isfinite(eeg_slow)
    freqs, psd = _spectra(x)
    slow = _band(freqs, psd, *EOG_SLOW) + _FLOOR
    total = _band(freqs, psd, 0.3, 20.0) + _FLOOR
    ratio = np.log10(slow / np.where(np.isfinite(eeg_slow), eeg_slow, 1.0))
    return np.column_stack([np.log10(slow), np.log10(slow / total), ratio]), ok


def _emg_features(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(x).all(axis=1) & (np.nanstd(x, axis=1) > _FLAT_STD_UV)
    freqs, psd = _spectra(x)
    return np.log10(_band(freqs, psd, *EMG_BAND) + _FLOOR)[:, None], ok


def _mean_of(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Feature-wise mean over channels, counting only each channel's usable epochs."""
    feats = np.stack([np.where(ok[:, None], f, 0.0) for f, ok in parts])
    oks = np.stack([ok for _, ok in parts]).astype(float)
    count = oks.sum(axis=0)
    return feats.sum(axis=0) / np.maximum(count, 1)[:, None], (count > 0).astype(float)


_SOS = sps.butter(4, EEG_RANGE, btype="bandpass", fs=ANALYSIS_FS, output="sos")


def _bandpassed(x: np.ndarray) -> np.ndarray:
    filtered: np.ndarray = sps.sosfiltfilt(_SOS, np.nan_to_num(x), axis=-1)
    return filtered


def _hjorth(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hjorth mobility and complexity (1970): gain-free measures of the dominant frequency and its spread."""
    d1 = np.diff(x, axis=1)
    d2 = np.diff(d1, axis=1)
    v0, v1, v2 = x.var(axis=1) + _FLOOR, d1.var(axis=1) + _FLOOR, d2.var(axis=1) + _FLOOR
    mobility = np.sqrt(v1 / v0)
    return mobility, np.sqrt(v2 / v1) / mobility


def _robust_z(values: np.ndarray, available: np.ndarray) -> np.ndarray:
    """Each column z-scored by its median and IQR over the recording's epochs where it was measured."""
    present = np.ones_like(values, dtype=bool)
    present[:, _EOG] = available[:, [0]] > 0
    present[:, _EMG] = available[:, [1]] > 0
    z = np.zeros_like(values)
    for j in range(values.shape[1]):
        column = values[present[:, j], j]
        if column.size == 0:
            continue
        q25, q50, q75 = np.percentile(column, [25, 50, 75])
        scale = max((q75 - q25) / 1.349, MIN_SCALE)
        z[:, j] = np.where(present[:, j], np.clip((values[:, j] - q50) / scale, -6, 6), 0.0)
    return z


def _centred_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Mean over a centred window of ``window`` epochs (shorter at the recording's ends)."""
    half = window // 2
    padded = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    idx = np.arange(len(x))
    lo, hi = np.maximum(idx - half, 0), np.minimum(idx + half + 1, len(x))
    mean: np.ndarray = (padded[hi] - padded[lo]) / (hi - lo)[:, None]
    return mean
