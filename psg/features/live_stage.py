"""The stage head's per-epoch measurements of one live epoch, and their recording-relative rows on a bed's history.

Why: offline, a recorded file is staged by the stage head (``model_runtime.model.stage_head``) from
measurements taken over the whole recording; live, the signal encoder staged real beds, and on real EEG
it got 9 of 24 epochs right (the head: 23). Recomputing the offline features on a bed's whole history at
every epoch costs O(night) (4.5 s per bed at 7.5 h, ``benchmarks/live_history_stage.py``), but every
measurement that needs the signal is per epoch: our spectral row (``stage_spectra``) and YASA's per-epoch
features before its smoothing (``yasa_features.epoch_base_features``). Only the recording-relative parts
(robust z-scores, context means, YASA's smoothed and scaled columns, its classifier) need the history,
and they are cheap on kept rows. So the epocher measures each epoch once, from microvolts at the device
rate (``epoch_measurements``: the current epoch, plus its context epochs for YASA's band-pass), the
measurements travel on the epoch message (``EpochMessage.stage_measurements``), and the runtime keeps
them per bed and builds the head's input for the newest epoch from its history so far
(``MeasurementHistory.row``), as measured for the offline head on a growing history (0.919 against 0.933
offline on held-out simulated nights, ``benchmarks/live_history_stage.py``).

What differs from offline: the verdict is given at once (lag 0), so the centred context windows and the
recording-relative scaling see only the epochs so far, and YASA's ``time_norm`` (time over the recording's
length, unknown live) is taken over an assumed 8-h night (``RecordingClock``), with each row's own epoch time;
YASA's band-pass runs over the window (the current epoch and its context), not the whole night; the past
4-epoch means are taken per epoch (a plain mean, where YASA's pandas sums carry rounding across the night).
As offline for a recorded file, a history shorter than a night scales YASA's shape features partly to a
reference night (``psg.features.night_reference``): a bed's first hour is a piece of a night too.

The measurements are plain JSON (``to_jsonable``: NaN as null) so they travel in the epoch message header:

    {"spectral": [...RAW_NAMES], "available": [eog, emg], "eeg_ok": bool,
     "yasa": {"channels": "eeg+eog+emg",
              "derivations": {"C4": {"ok": bool, "features": [...], "beta_slope": float}, ...}}}

``beta_slope`` (``psg.features.eeg_bandwidth``; absent in measurements stored before it, read as unknown) is
the epoch's spectral slope over 14-21 Hz: the median over a derivation's history tells a device low-pass,
as offline, so a low-passed derivation is left out beside a full-band one and a bed whose every EEG is
low-passed is ``uncertain`` (``HeadRow.reason``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from psg.errors import PSGError
from psg.features.eeg_bandwidth import epoch_beta_slopes, low_passed_everywhere, median_slope, readable
from psg.features.night_reference import load_night_reference
from psg.features.stage_spectra import RAW_NAMES, stage_feature_matrix, stage_model_input
from psg.features.yasa_features import (
    PAST_WINDOW,
    RecordingClock,
    epoch_base_features,
    feature_table,
    one_epoch_features,
)
from psg.features.yasa_prior import (
    EEG_DERIVATIONS,
    N_PRIOR,
    STAGES,
    YASA_FS,
    at_yasa_rate,
    bad_epochs,
    classifier_probabilities,
    yasa_inputs,
)
from psg.json_codec import to_jsonable
from psg.montage import EPOCH_S
from psg.recording import Recording, Signal


def epoch_measurements(current: Mapping[str, Signal], window: Mapping[str, Signal], k: int) -> dict[str, Any]:
    """The stage head's measurements of one epoch, as JSON: ``current`` holds the epoch's native samples per
    montage label (NaN where missing), ``window`` the same labels from ``k`` context epochs before it."""
    spectral = stage_feature_matrix(Recording(record_id="live", signals=dict(current)), prior=False)
    if len(spectral.values) != 1:  # an epoch shorter than 30 s (the epocher emits whole epochs only)
        raise PSGError(f"live stage measurements: expected one whole 30-s epoch, got {len(spectral.values)}")
    measured: dict[str, Any] = to_jsonable(
        {
            "spectral": spectral.values[0],
            "available": spectral.available[0],
            "eeg_ok": bool(spectral.eeg_ok[0]),
            "yasa": _yasa_rows(current, window, k),
        }
    )
    return measured


def _yasa_rows(current: Mapping[str, Signal], window: Mapping[str, Signal], k: int) -> dict[str, Any] | None:
    """Per usable EEG derivation, YASA's per-epoch features of the current epoch (with the EOG and EMG
    ``yasa_prior`` would give it) and whether the epoch is usable; None when no EEG can be staged."""
    n = k + 1
    eegs, others = yasa_inputs(window)
    if not eegs:
        return None
    rows = [one_epoch_features(at_yasa_rate(sig, n), group, k) for group, sig in others.items()]
    derivations = {}
    for eeg in eegs:
        ok = not bool(bad_epochs(current[eeg.label], 1)[0])
        features = np.concatenate([one_epoch_features(at_yasa_rate(eeg, n), "eeg", k), *rows])  # eeg, eog, emg
        slope = epoch_beta_slopes(current[eeg.label].data, eeg.fs)
        derivations[eeg.label] = {"ok": ok, "features": features, "beta_slope": slope[0] if slope.size else None}
    return {"channels": "+".join(["eeg", *others]), "derivations": derivations}


class _Derivation(NamedTuple):
    """One EEG derivation's measurements of one epoch."""

    ok: bool  # the epoch is usable
    features: np.ndarray  # YASA's per-epoch features
    beta_slope: float  # NaN where not measured


class HeadRow(NamedTuple):
    """The stage model's input row for one epoch, whether its EEG was usable, and why no stage can be vouched
    for from the bed's EEG ('' when one can): every derivation low-passed by its device."""

    x: np.ndarray
    eeg_ok: bool
    reason: str


@dataclass(frozen=True)
class _Measured:
    """One epoch's measurements, read and checked once (``_read``): what ``MeasurementHistory`` keeps."""

    spectral: np.ndarray
    available: np.ndarray
    eeg_ok: bool
    channels: str  # YASA's channel set; "" without a YASA block
    derivations: dict[str, _Derivation]


class MeasurementHistory:
    """One bed's measurements so far (one recording), by epoch; builds the head's input row for an epoch.

    Memory: ~130 float32 per epoch and EEG derivation, ~0.5 MB for a 7.5-h night with two derivations."""

    def __init__(self, recording_id: str) -> None:
        self.recording_id = recording_id
        self.epochs: list[int] = []
        self._spectral = _Rows()
        self._available = _Rows()
        self._yasa: dict[str, _DerivationHistory] = {}

    @property
    def last_epoch(self) -> int:
        return self.epochs[-1] if self.epochs else -1

    def row(self, epoch: int, measurements: Mapping[str, Any]) -> HeadRow:
        """The stage model's input row (N_INPUT,) for ``epoch`` from the epochs before it and
        ``measurements`` (``HeadRow``); a new epoch is kept, a replay (an epoch not after the last kept) is
        answered from the history before it, as it was the first time, and not kept."""
        m = _read(measurements)
        before = int(np.searchsorted(self.epochs, epoch))  # epochs are kept in increasing order
        values = self._spectral.with_row(before, m.spectral)
        flags = self._available.with_row(before, m.available)
        x = stage_model_input(values, flags, None)[-1]
        x[-N_PRIOR:], reason = self._prior(epoch, m)
        self._keep(epoch, m)
        return HeadRow(x, m.eeg_ok, reason)

    def keep(self, epoch: int, measurements: Mapping[str, Any]) -> None:
        """Keep ``epoch``'s measurements without staging it (a history resumed from the store); an epoch not
        after the last kept is ignored. ``PSGError`` naming the field if they cannot be read (nothing kept)."""
        self._keep(epoch, _read(measurements))

    def _keep(self, epoch: int, m: _Measured) -> None:
        if epoch <= self.last_epoch:
            return
        self.epochs.append(epoch)
        self._spectral.append(m.spectral)
        self._available.append(m.available)
        for label, measured in m.derivations.items():
            kept = self._derivation(label, m.channels)
            if kept is None:  # the bed's channel set changed (or the derivation is new): start afresh
                kept = self._yasa[label] = _DerivationHistory(m.channels)
            kept.keep(epoch, measured)

    def _derivation(self, label: str, channels: str) -> _DerivationHistory | None:
        """``label``'s YASA history when it was kept with the same channel set, else None."""
        kept = self._yasa.get(label)
        return kept if kept is not None and kept.channels == channels else None

    def _prior(self, epoch: int, m: _Measured) -> tuple[np.ndarray, str]:
        """(N_PRIOR,): YASA's probabilities for ``epoch`` averaged over its usable derivations that their device
        did not low-pass (all of them when every one is), and the flag; and the ``uncertain`` reason when
        every usable derivation is low-passed (``psg.features.eeg_bandwidth``, as offline)."""
        out = np.zeros(N_PRIOR)
        usable = [
            (self._derivation(label, m.channels) or _DerivationHistory(m.channels), measured)
            for label, measured in m.derivations.items()
            if measured.ok
        ]
        slopes = [history.beta_slope(epoch, measured.beta_slope) for history, measured in usable]
        probs = []
        for i in readable(slopes):
            history, measured = usable[i]
            names, table = history.table(epoch, measured.features)
            probs.append(classifier_probabilities(history.channels, names, table[-1:])[0])
        if probs:
            out[: len(STAGES)] = np.mean(probs, axis=0)
            out[len(STAGES)] = 1.0
        return out, low_passed_everywhere(slopes)


class _DerivationHistory:
    """One EEG derivation's YASA rows so far: per-epoch features and their past 4-epoch means."""

    def __init__(self, channels: str) -> None:
        self.channels = channels
        self.epochs: list[int] = []
        self.features = _Rows()
        self.past = _Rows()
        self.slopes: list[float] = []

    def table(self, epoch: int, features: np.ndarray) -> tuple[list[str], np.ndarray]:
        """YASA's classifier table of the epochs before ``epoch`` and ``epoch`` (its last row), each row at its
        own time in the night (``RecordingClock``)."""
        before = int(np.searchsorted(self.epochs, epoch))
        rows = self.features.with_row(before, features)
        past = self.past.with_row(before, self.past_mean(before, features))
        clock = RecordingClock(np.array([*self.epochs[:before], epoch], dtype=np.float64) * EPOCH_S)
        return feature_table(list(_base_names(self.channels)), rows, past, clock, load_night_reference())

    def keep(self, epoch: int, measured: _Derivation) -> None:
        before = int(np.searchsorted(self.epochs, epoch))
        self.past.append(self.past_mean(before, measured.features))
        self.epochs.append(epoch)
        self.features.append(measured.features)
        self.slopes.append(measured.beta_slope)

    def beta_slope(self, epoch: int, slope: float) -> float | None:
        """The derivation's beta slope over the epochs before ``epoch`` and ``slope`` (its median)."""
        before = int(np.searchsorted(self.epochs, epoch))
        return median_slope(np.array([*self.slopes[:before], slope]))

    def past_mean(self, before: int, features: np.ndarray) -> np.ndarray:
        """The past 4-epoch mean of ``features`` after the first ``before`` kept rows (NaN skipped)."""
        recent = self.features.with_row(before, features, last=PAST_WINDOW - 1)
        with warnings.catch_warnings():  # an all-NaN column's mean is NaN, as pandas gives it
            warnings.simplefilter("ignore", RuntimeWarning)
            past: np.ndarray = np.nanmean(recent, axis=0)
        return past


class _Rows:
    """Rows appended one at a time to a growing array, so a night's history is not restacked every epoch."""

    def __init__(self) -> None:
        self._data = np.empty((0, 0))
        self.n = 0

    def append(self, row: np.ndarray) -> None:
        if self.n == len(self._data):
            grown = np.empty((max(64, 2 * self.n), row.size))
            grown[: self.n] = self._data[: self.n].reshape(self.n, row.size)
            self._data = grown
        self._data[self.n] = row
        self.n += 1

    def with_row(self, before: int, row: np.ndarray, last: int | None = None) -> np.ndarray:
        """A new array: the first ``before`` rows kept (only the ``last`` of them when given) and ``row``."""
        start = 0 if last is None else max(0, before - last)
        return np.concatenate([self._data[start:before].reshape(before - start, row.size), row[None]])


def _read(measurements: Mapping[str, Any]) -> _Measured:
    """The epoch message's ``stage_measurements`` as numbers; ``PSGError`` naming the field otherwise."""
    spectral = _floats(measurements.get("spectral"), len(RAW_NAMES), "spectral")
    available = _floats(measurements.get("available"), 2, "available")
    eeg_ok = measurements.get("eeg_ok")
    if not isinstance(eeg_ok, bool):
        raise PSGError(f"stage_measurements.eeg_ok: expected true or false, got {eeg_ok!r:.40}")
    yasa = measurements.get("yasa")
    channels, derivations = ("", {}) if yasa is None else _yasa_fields(yasa)
    return _Measured(np.nan_to_num(spectral), np.nan_to_num(available), eeg_ok, channels, derivations)


def _yasa_fields(yasa: Any) -> tuple[str, dict[str, _Derivation]]:
    """The ``yasa`` block: its channel set and, per derivation, whether the epoch is usable and its features."""
    if not isinstance(yasa, dict) or not isinstance(yasa.get("derivations"), dict):
        raise PSGError("stage_measurements.yasa: expected an object with 'channels' and 'derivations'")
    channels = yasa.get("channels")
    if channels not in _CHANNEL_SETS:
        raise PSGError(f"stage_measurements.yasa.channels: expected one of {_CHANNEL_SETS}, got {channels!r:.40}")
    names = _base_names(channels)
    derivations = {}
    for label, entry in yasa["derivations"].items():
        if label not in EEG_DERIVATIONS or not isinstance(entry, dict) or not isinstance(entry.get("ok"), bool):
            raise PSGError(f"stage_measurements.yasa.derivations.{label!s:.20}: expected {EEG_DERIVATIONS} with 'ok'")
        what = f"yasa.derivations.{label}"
        slope = _floats([entry.get("beta_slope")], 1, f"{what}.beta_slope")[0]  # absent: stored before it
        features = _floats(entry.get("features"), len(names), f"{what}.features")
        derivations[label] = _Derivation(entry["ok"], features, slope)
    return channels, derivations


def _floats(value: Any, n: int, what: str) -> np.ndarray:
    """``value`` as n floats (null read as NaN); ``PSGError`` naming the field otherwise."""
    if not isinstance(value, list) or len(value) != n:
        raise PSGError(f"stage_measurements.{what}: expected a list of {n} numbers")
    if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in value):
        raise PSGError(f"stage_measurements.{what}: expected numbers or null")
    return np.array([np.nan if v is None else v for v in value], dtype=np.float64)


_CHANNEL_SETS = ("eeg", "eeg+eog", "eeg+emg", "eeg+eog+emg")


@lru_cache(maxsize=len(_CHANNEL_SETS))
def _base_names(channels: str) -> tuple[str, ...]:
    """YASA's per-epoch feature names for a channel set, in ``epoch_base_features`` order."""
    silence = np.zeros(int(EPOCH_S * YASA_FS))
    with np.errstate(invalid="ignore", divide="ignore"):  # silence's features are NaN: only the names count
        names, _ = epoch_base_features(dict.fromkeys(channels.split("+"), silence))
    return tuple(names)
