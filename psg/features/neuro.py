"""Per-epoch brain and somatic features: EEG band powers and slow waves, eye movements, chin EMG, position.

These are the measurements the AASM staging rules are written in (Berry et al., *The AASM Manual for
the Scoring of Sleep and Associated Events*, v2.6, 2020): alpha for wake, theta and slow eye movements
for N1, spindles (sigma) for N2, high-amplitude slow waves for N3, rapid eye movements with low chin
tone for R. They feed the rule stager (``psg.staging``) and the brain/somatic captions, whose numbers
must be the measured ones.

Everything is computed for all epochs of the night at once: each channel is cut into an
``(n_epochs, samples_per_epoch)`` matrix and the spectra are taken along the last axis, so an 8-h night
takes about 3 s on one core. Epochs are aligned to the recording start (AASM). An epoch gets ``None`` for a
channel's features when the channel is absent, shorter than the epoch, contains non-finite samples,
or is flat (standard deviation below ``FLAT_STD_UV``: a disconnected or saturated lead carries no
physiology, and a number computed from it would be a lie in a caption).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from psg.dsp import analytic_signal, butter_filter, sosfiltfilt, welch, welch_pair
from psg.montage import EEG_C3, EEG_C4, EMG_CHIN, EOG_L, EOG_R, POS, POSITIONS
from psg.recording import Recording, Signal
from psg.timeline import EPOCH_S

#: EEG bands in Hz, [low, high). These are YASA's ``bandpower`` defaults (Vallat & Walker, eLife 2021),
#: which follow the clinical definitions: delta 0.5-4 Hz (AASM slow-wave range starts at 0.5 Hz),
#: alpha 8-12 Hz (AASM: 8-13 Hz posterior rhythm), sigma 12-16 Hz (AASM spindles 11-16 Hz).
BANDS: dict[str, tuple[float, float]] = {
    "delta": (0.5, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 12.0),
    "sigma": (12.0, 16.0),
    "beta": (16.0, 30.0),
}
#: Relative powers are fractions of the 0.5-30 Hz power (the span of ``BANDS``), so they sum to 1.
TOTAL_BAND = (0.5, 30.0)
#: Welch window for EEG: 4 s (0.25 Hz resolution), as YASA uses for 30-s epochs.
EEG_WINDOW_S = 4.0
#: AASM N3: waves of 0.5-2 Hz with peak-to-peak amplitude > 75 uV over frontal (here central) derivations.
SLOW_WAVE_BAND = (0.5, 2.0)
SLOW_WAVE_PTP_UV = 75.0
#: Slow eye movements: conjugate, regular, sinusoidal, initial deflection usually > 500 ms (AASM), i.e.
#: most of their energy well below 1 Hz.
EOG_SLOW_BAND = (0.2, 0.6)
#: Rapid eye movements: conjugate, irregular, sharply peaked, initial deflection < 500 ms (AASM), i.e.
#: energy at 1-5 Hz.
EOG_RAPID_BAND = (1.0, 5.0)
#: EOG window: 10 s (0.1 Hz resolution), fine enough to resolve the 0.2-0.6 Hz slow band.
EOG_WINDOW_S = 10.0
#: Chin EMG: surface EMG power is concentrated in 10-100 Hz (below 10 Hz it is motion and ECG
#: contamination); the upper edge is capped below Nyquist for low-rate devices.
EMG_BAND = (10.0, 100.0)
EMG_WINDOW_S = 1.0
#: An electrophysiological epoch with a standard deviation under this is a flat (disconnected) lead:
#: amplifier noise alone is above ~0.5 uV RMS.
FLAT_STD_UV = 0.1

EEG_PREFIXES: dict[str, str] = {EEG_C3: "c3", EEG_C4: "c4"}

#: Every key ``neuro_epoch_features`` returns, in order.
NEURO_FEATURE_KEYS: tuple[str, ...] = (
    *(f"{p}_{band}" for p in EEG_PREFIXES.values() for band in BANDS),
    *(f"{p}_slow_wave_pct" for p in EEG_PREFIXES.values()),
    "eog_slow_power",
    "eog_rapid_power",
    "eog_lr_correlation",
    "emg_tone_uv",
    "emg_median_freq_hz",
    "position",
    "position_name",
)

#: A feature's value: a number, None where it cannot be measured, or text for ``psg.codecs.TEXT_FEATURES``.
Feature = float | int | str | None


def neuro_epoch_features(
    recording: Recording, n_epochs: int, epochs: Sequence[int] | None = None
) -> list[dict[str, Feature]]:
    """EEG, EOG, chin EMG and position features for each of the first ``n_epochs`` 30-s epochs.

    ``epochs`` (indices below ``n_epochs``) limits the work and the result to those epochs, in that
    order, with the same values as for the whole night: the live path measures one epoch of a
    3-epoch window. Only the slow-wave band-pass runs over all ``n_epochs`` (it is zero-phase over
    the whole record, so an epoch's value depends on its neighbours); every spectrum is per epoch.

    Keys (``NEURO_FEATURE_KEYS``):

    * ``c3_delta`` .. ``c4_beta``: relative band power (0..1 of the 0.5-30 Hz power; Welch, 4-s Hann
      windows) per central EEG derivation;
    * ``c3_slow_wave_pct``, ``c4_slow_wave_pct``: % of the epoch covered by 0.5-2 Hz activity above
      75 uV peak-to-peak (AASM scores N3 when this exceeds 20 %);
    * ``eog_slow_power``, ``eog_rapid_power``: absolute power (uV^2) of the horizontal EOG (E1 - E2,
      which doubles conjugate eye movements and cancels in-phase EEG spill-over) in the slow- and
      rapid-eye-movement bands;
    * ``eog_lr_correlation``: Pearson correlation of E1 and E2 in 0.2-5 Hz; strongly negative means
      conjugate eye movements (each eye's cornea moves toward one electrode and away from the other),
      positive means the EOG leads mostly carry frontal EEG (e.g. slow waves);
    * ``emg_tone_uv``: RMS of chin EMG in 10-100 Hz; ``emg_median_freq_hz``: median frequency there;
    * ``position`` (code, mode over the epoch) and ``position_name`` (``psg.montage.POSITIONS``).
    """
    if n_epochs <= 0:
        return []
    rows = _rows(n_epochs, epochs)
    out: list[dict[str, Feature]] = [{key: None for key in NEURO_FEATURE_KEYS} for _ in range(rows.size)]
    eeg = [(sig, prefix) for label, prefix in EEG_PREFIXES.items() if (sig := recording.get(label)) is not None]
    groups: dict[tuple[float, int], list[tuple[Signal, str]]] = {}
    for sig, prefix in eeg:  # derivations of one amplifier: one spectrum and one filter call for all
        groups.setdefault((sig.fs, sig.data.size), []).append((sig, prefix))
    for group in groups.values():
        _fill(out, _eeg_group_features(group, n_epochs, rows))
    _fill(out, _eog_features(recording.get(EOG_L), recording.get(EOG_R), n_epochs, rows))
    _fill(out, _emg_features(recording.get(EMG_CHIN), n_epochs, rows))
    _fill(out, _position_features(recording.get(POS), n_epochs, rows))
    return out


def _rows(n_epochs: int, epochs: Sequence[int] | None) -> np.ndarray:
    """The epoch indices to measure (all by default), checked against ``n_epochs``."""
    rows = np.arange(n_epochs) if epochs is None else np.asarray(epochs, dtype=np.int64).reshape(-1)
    if rows.size and (rows.min() < 0 or rows.max() >= n_epochs):
        raise IndexError(f"epochs {rows.tolist()} outside the recording's {n_epochs} epochs")
    return rows


def _fill(out: list[dict[str, Feature]], columns: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write ``{key: (values, valid)}`` columns into the per-epoch dicts, None where not valid."""
    for key, (values, valid) in columns.items():
        for i in np.flatnonzero(valid):
            value = values[i]
            out[i][key] = value if isinstance(value, str) else _py(value)


def _py(value: np.generic) -> float | int:
    return int(value) if np.issubdtype(type(value), np.integer) else float(value)


def epoch_matrix(
    sig: Signal, n_epochs: int, flat_std: float | None = FLAT_STD_UV, epochs: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``sig`` into ``(n_epochs, samples_per_epoch)`` epochs aligned to the recording start.

    Returns the matrix (invalid rows zero-filled, so spectra can run on every row) and a boolean
    ``valid`` per epoch: the epoch lies inside the signal, every sample is finite and, unless
    ``flat_std`` is None, its standard deviation is at least ``flat_std``. Epoch starts are rounded
    per epoch, so rates whose 30-s sample count is not an integer do not drift. ``epochs`` (indices)
    cuts only those rows.
    """
    rows = np.arange(n_epochs) if epochs is None else epochs
    spe = int(round(EPOCH_S * sig.fs))
    starts = np.round(rows * EPOCH_S * sig.fs).astype(np.int64)
    inside = starts + spe <= sig.data.size
    if sig.data.size and rows.size and inside.all():  # the usual case: plain slices, no index matrix
        x = np.stack([sig.data[start : start + spe] for start in starts.tolist()])
    else:
        idx = np.minimum(starts[:, None] + np.arange(spe)[None, :], max(sig.data.size - 1, 0))
        x = sig.data[idx] if sig.data.size else np.zeros((rows.size, spe))
    valid = inside & np.all(np.isfinite(x), axis=1)
    if not valid.all():
        x = np.where(valid[:, None], x, 0.0)
    if flat_std is not None and not _surely_not_flat(x, flat_std):
        valid &= np.std(x, axis=1) >= flat_std
    return x, valid


def _surely_not_flat(x: np.ndarray, flat_std: float) -> bool:
    """Every row's standard deviation is at least ``flat_std``, from its range alone: two samples ``R``
    apart already give a variance of at least R^2 / (2 n). A cheap pass that decides live signals."""
    if x.shape[1] == 0:
        return False
    spread = x.max(axis=1) - x.min(axis=1)
    return bool(np.all(spread / np.sqrt(2.0 * x.shape[1]) >= flat_std * (1.0 + 1e-9)))


def _band_mask(freqs: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    return (freqs >= band[0]) & (freqs < band[1])


def _band_sum(psd: np.ndarray, freqs: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """Sum of ``psd`` over the bins of ``band`` ([low, high)), per row."""
    lo, hi = np.searchsorted(freqs, band[0], side="left"), np.searchsorted(freqs, band[1], side="left")
    total: np.ndarray = psd[:, lo:hi].sum(axis=1)
    return total


Columns = dict[str, tuple[np.ndarray, np.ndarray]]


def _eeg_features(sig: Signal | None, n_epochs: int, prefix: str, rows: np.ndarray) -> Columns:
    """Band powers and slow-wave percentage of one EEG derivation (``_eeg_group_features``)."""
    return {} if sig is None else _eeg_group_features([(sig, prefix)], n_epochs, rows)


def _eeg_group_features(group: list[tuple[Signal, str]], n_epochs: int, rows: np.ndarray) -> Columns:
    """``_eeg_features`` of derivations sharing a rate and length (``(signal, key prefix)``), with one
    Welch over all their epochs and one slow-wave filter pass; every row is computed as on its own."""
    fs = group[0][0].fs
    cut = [epoch_matrix(sig, n_epochs, epochs=rows) for sig, _ in group]
    freqs, psd = welch(np.concatenate([x for x, _ in cut]), fs, nperseg=int(EEG_WINDOW_S * fs))
    slow = _slow_wave_pct_group([sig for sig, _ in group], n_epochs, rows)
    columns: Columns = {}
    for i, ((_, prefix), (_, valid)) in enumerate(zip(group, cut, strict=True)):
        own = psd[i * rows.size : (i + 1) * rows.size]
        total = _band_sum(own, freqs, TOTAL_BAND)
        valid = valid & (total > 0)
        safe_total = np.where(total > 0, total, 1.0)
        for name, band in BANDS.items():
            columns[f"{prefix}_{name}"] = (_band_sum(own, freqs, band) / safe_total, valid)
        columns[f"{prefix}_slow_wave_pct"] = (slow[i], valid)
    return columns


def _slow_wave_pct(sig: Signal, n_epochs: int, rows: np.ndarray) -> np.ndarray:
    """Percent of each epoch where 0.5-2 Hz activity exceeds 75 uV peak-to-peak (AASM N3 criterion).

    The whole night is band-passed at once (zero-phase, so waves are not shifted across epoch
    borders) and the peak-to-peak amplitude is taken as twice the Hilbert envelope, which for a
    narrow-band wave equals its instantaneous peak-to-peak swing. Only ``rows`` get the envelope.
    """
    pct: np.ndarray = _slow_wave_pct_group([sig], n_epochs, rows)[0]
    return pct


def _slow_wave_pct_group(signals: list[Signal], n_epochs: int, rows: np.ndarray) -> np.ndarray:
    """``_slow_wave_pct`` of signals of one rate and length: (signals, rows)."""
    if not rows.size:
        return np.empty((len(signals), 0))
    x = np.stack([_epochs_end_to_end(sig, n_epochs) for sig in signals])
    spe = x.shape[1] // n_epochs
    first = int(rows.min()) * spe  # the filter's backward pass can stop at the first epoch wanted
    filtered = sosfiltfilt(butter_filter(2, SLOW_WAVE_BAND, "bandpass", signals[0].fs), x, keep_from=first)
    wanted = np.stack([filtered[:, r * spe - first : (r + 1) * spe - first] for r in rows.tolist()], axis=1)
    ptp = 2.0 * np.abs(analytic_signal(wanted))
    pct: np.ndarray = 100.0 * np.mean(ptp > SLOW_WAVE_PTP_UV, axis=2)
    return pct


def _epochs_end_to_end(sig: Signal, n_epochs: int) -> np.ndarray:
    """``epoch_matrix(sig, n_epochs, flat_std=None)`` flattened: for a whole-Hz rate and complete samples
    simply the first ``n_epochs`` epochs of the signal (a view)."""
    spe = int(round(EPOCH_S * sig.fs))
    if float(sig.fs).is_integer() and sig.data.size >= n_epochs * spe:
        head = sig.data[: n_epochs * spe]
        if np.isfinite(head).all():
            return head
    return epoch_matrix(sig, n_epochs, flat_std=None)[0].reshape(-1)


def _eog_features(left: Signal | None, right: Signal | None, n_epochs: int, rows: np.ndarray) -> Columns:
    present = [s for s in (left, right) if s is not None]
    if not present:
        return {}
    if left is not None and right is not None and left.fs == right.fs:
        xl, valid_l = epoch_matrix(left, n_epochs, epochs=rows)
        xr, valid_r = epoch_matrix(right, n_epochs, epochs=rows)
        nper = int(EOG_WINDOW_S * left.fs)
        freqs, pll, prr, plr = welch_pair(xl, xr, left.fs, nper)
        # Power of E1 - E2 from the cross-spectrum: |L - R|^2 = |L|^2 + |R|^2 - 2 Re(L R*).
        horizontal = pll + prr - 2.0 * plr.real
        both = valid_l & valid_r
        band = (EOG_SLOW_BAND[0], EOG_RAPID_BAND[1])
        denom = np.sqrt(_band_sum(pll, freqs, band) * _band_sum(prr, freqs, band))
        corr_valid = both & (denom > 0)
        corr = _band_sum(plr.real, freqs, band) / np.where(denom > 0, denom, 1.0)
        df = freqs[1] - freqs[0]
        return {
            "eog_slow_power": (_band_sum(horizontal, freqs, EOG_SLOW_BAND) * df, both),
            "eog_rapid_power": (_band_sum(horizontal, freqs, EOG_RAPID_BAND) * df, both),
            "eog_lr_correlation": (np.clip(corr, -1.0, 1.0), corr_valid),
        }
    # One usable lead (or leads at different rates): band powers of that lead alone, no correlation.
    sig = present[0]
    x, valid = epoch_matrix(sig, n_epochs, epochs=rows)
    freqs, psd = welch(x, sig.fs, nperseg=int(EOG_WINDOW_S * sig.fs))
    df = freqs[1] - freqs[0]
    return {
        "eog_slow_power": (_band_sum(psd, freqs, EOG_SLOW_BAND) * df, valid),
        "eog_rapid_power": (_band_sum(psd, freqs, EOG_RAPID_BAND) * df, valid),
    }


def _emg_features(sig: Signal | None, n_epochs: int, rows: np.ndarray) -> Columns:
    """Chin tone as band-limited RMS, from the Welch spectrum (Parseval: power in band = variance of the
    band-passed signal), and the median frequency of that band (it falls with fatigue and atonia)."""
    if sig is None:
        return {}
    x, valid = epoch_matrix(sig, n_epochs, epochs=rows)
    freqs, psd = welch(x, sig.fs, nperseg=int(EMG_WINDOW_S * sig.fs))
    band = _band_mask(freqs, (EMG_BAND[0], min(EMG_BAND[1], 0.45 * sig.fs)))
    if not band.any():
        return {}
    df = freqs[1] - freqs[0]
    band_psd = psd[:, band]
    power = band_psd.sum(axis=1) * df
    cumulative = np.cumsum(band_psd, axis=1)
    half = cumulative[:, -1:] / 2.0
    median_idx = np.minimum(np.argmax(cumulative >= half, axis=1), band_psd.shape[1] - 1)
    valid = valid & (power > 0)
    return {
        "emg_tone_uv": (np.sqrt(power), valid),
        "emg_median_freq_hz": (freqs[band][median_idx], valid),
    }


def _position_features(sig: Signal | None, n_epochs: int, rows: np.ndarray) -> Columns:
    """Most frequent position code in each epoch; codes outside ``POSITIONS`` count as unknown (-1)."""
    if sig is None:
        return {}
    x, valid = epoch_matrix(sig, n_epochs, flat_std=None, epochs=rows)
    codes = np.rint(x).astype(np.int64)
    known = np.array(sorted(POSITIONS))
    codes = np.where(np.isin(codes, known), codes, -1)
    counts = (codes[:, :, None] == known[None, None, :]).sum(axis=1)
    mode = known[np.argmax(counts, axis=1)]
    names = np.array([POSITIONS[int(c)] for c in mode], dtype=object)
    return {"position": (mode, valid), "position_name": (names, valid)}
