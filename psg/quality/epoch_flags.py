"""Per-channel quality flags of one 30-s epoch, judged on the native-rate samples.

Every model and aux channel of every epoch gets a list of flags from ``psg.codecs.QUALITY_FLAGS``
(an empty list means good). They gate clinical alerts (an apnea alarm on a flat airflow trace is
noise, a technical alert is not) and tell the caption reader which numbers to distrust:

* ``missing``: the channel is in none of the bed's streams;
* ``gap``: samples are missing (NaN from the device, chunks lost in transit, a lagging or lost
  stream), or an oximeter / monitor reading is outside the physiological range (a probe off the
  finger reports 0 or an invalid code: there is no reading, which is a gap, not a value);
* ``flat``: the trace carries no physiology (standard deviation below ``FLAT_STD`` for its unit, or
  at least 5 s (``FLAT_MIN_S``) of perfectly flat or zero signal as ``psg.quality.signal_loss``
  finds it, or, on airflow and effort channels, a 10-s stretch that is only sensor noise:
  ``is_noise_only``);
* ``clipped``: the amplifier saturated (``CLIP_FRACTION`` of the samples, ``CLIP_MIN_SAMPLES`` at least,
  pinned at the epoch's extreme, or a rail span as ``psg.quality.signal_loss`` finds it);
* ``noisy``: the amplitude is far beyond physiology (EEG/EOG) or mains hum dominates the spectrum;
* ``band_limited``: the channel streams under its full rate (``psg.channels.FULL_FS``: EEG/EOG/EMG/ECG
  under the model's 64 Hz, airflow/effort under 8 Hz), so it is upsampled without its high band, as the
  offline channel report flags the same file channel. Informational: the channel is analysed.

Slow, legitimately constant channels (POS, SpO2, HR) are never called flat or clipped, exactly as in
``psg.quality.signal_loss``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from psg.channels import FULL_FS
from psg.dsp import runs, welch
from psg.montage import ABD, AF, AUX_CHANNELS, EEG_C3, EEG_C4, EOG_L, EOG_R, HR, MODEL_CHANNELS, POS, SPO2, THX
from psg.quality.signal_loss import ARBITRARY_UNIT, PHYSIOLOGICAL_RANGE, channel_range, loss_spans, loss_spans_many
from psg.recording import Signal

#: Channels every epoch carries flags for: the model montage then the aux channels.
QUALITY_CHANNELS: tuple[str, ...] = MODEL_CHANNELS + AUX_CHANNELS
#: Flat-trace thresholds (standard deviation over the epoch) by unit. Amplifier noise alone is above
#: ~0.5 uV RMS on EEG/EOG/EMG inputs (so 0.1 uV, as ``psg.features.neuro.FLAT_STD_UV``, is a dead
#: input); 1 uV on an ECG in mV is likewise far below anything a sensor produces.
FLAT_STD: dict[str, float] = {"uV": 0.1, "mV": 1e-3}
#: Effort/flow sensors are in each lab's own units: flat below this fraction of the channel's range
#: (``psg.quality.signal_loss.channel_range``; 1e-3 a.u. on our +-5 a.u.), far below any breathing.
FLAT_STD_OF_RANGE = 1e-4
#: Channels that may legitimately hold one value for a whole epoch.
NOT_FLAT_CHECKED = frozenset({POS, SPO2, HR})
#: Clipping: at least 5 % of the epoch pinned within 0.1 % of the epoch's range from its max or min.
#: A live trace touches its extreme for a sample or two (simulated nights: < 1 %); a saturated
#: amplifier sits on the rail for whole runs.
CLIP_FRACTION = 0.05
#: ...and at least this many samples: on a 1-Hz trace (30 per epoch) 5 % is 2 samples, and two breaths
#: peaking at the same value of a coarse integer trace are a coincidence (the real Sleep-EDF flow), not a rail.
CLIP_MIN_SAMPLES = 3
CLIP_TOLERANCE = 1e-3
#: EEG/EOG amplitude (1st-99th percentile range) beyond physiology: the largest N3 slow waves of young
#: adults reach 300-400 uV peak to peak (AASM Manual v2.6 defines slow waves from 75 uV; simulated N3
#: epochs stay below 450 uV), and horizontal saccades a few hundred uV; a larger swing is movement,
#: sweat or electrode artifact (cf. the amplitude criteria of Anderer et al., Neuropsychobiology 1999).
NOISY_RANGE_UV: dict[str, float] = {EEG_C3: 600.0, EEG_C4: 600.0, EOG_L: 1000.0, EOG_R: 1000.0}
#: Mains hum: power within 1 Hz of 50 or 60 Hz over the power above 0.5 Hz. Sleep EEG/EMG/ECG keep it
#: under 10 % after the amplifier's notch (simulated nights: < 8 %, chin EMG included); a trace whose
#: spectrum is mostly mains is an unplugged or badly referenced electrode.
LINE_FRACTION = 0.5
LINE_HZ = (50.0, 60.0)
#: Airflow and effort: a disconnected cannula, thermistor or belt reads amplifier noise, which is
#: broadband, whereas everything a breathing (or trying to breathe) person produces lies below 1.5 Hz:
#: breathing at 0.1-0.7 Hz, and during apneas the residual efforts and the cardiogenic oscillations of
#: an open airway (~1-1.5 Hz). A noise-only input therefore has little of its power in that band
#: (white noise at 32 Hz: ~9 %). Measured on simulated nights (ucddb timelines, 10-s windows inside
#: scored events): obstructive-apnea airflow >= 0.37 (1st percentile 0.50), central and mixed apneas
#: >= 0.71 on every channel, hypopneas >= 0.98; a lead-off as ``psg.simulate.artifacts`` draws it
#: 0.07-0.11. Below ``NOISE_BAND_FRACTION`` in any 10-s window (moved by 5 s) the trace is flat.
NOISE_CHANNELS = frozenset({AF, THX, ABD})
NOISE_BAND_HZ = (0.05, 1.5)
NOISE_BAND_FRACTION = 0.25
NOISE_WINDOW_S = 10.0
#: A run of missing samples this short is timestamp jitter at a chunk seam (two chunks rounded onto the
#: sample grid one sample apart), not a gap: at most 2 samples and at most 50 ms.
GAP_TOLERANCE_S = 0.05
GAP_TOLERANCE_SAMPLES = 2


def epoch_quality(channels: Mapping[str, Signal]) -> dict[str, list[str]]:
    """Flags for every ``QUALITY_CHANNELS`` label from the epoch's native samples (``Signal`` per label,
    NaN where missing); a label absent from ``channels`` is ``['missing']``.

    Channels without a missing sample that share a rate and length (a device stream's channels) are
    checked together (``_complete_flags``): the same checks as ``channel_flags``, each a NumPy call over
    all of them instead of one per channel. The rest go through ``channel_flags``.
    """
    out: dict[str, list[str]] = {label: ["missing"] for label in QUALITY_CHANNELS if label not in channels}
    groups: dict[tuple[float, int], list[Signal]] = {}
    for label in QUALITY_CHANNELS:
        sig = channels.get(label)
        if sig is None:
            continue
        if sig.data.size and np.isfinite(sig.data).all():
            groups.setdefault((sig.fs, sig.data.size), []).append(sig)
        else:
            out[label] = channel_flags(sig)
    for group in groups.values():
        out.update(zip((sig.label for sig in group), _complete_flags(group), strict=True))
    for label, sig in channels.items():
        if label in out and sig.fs < FULL_FS.get(label, 0.0):
            out[label] = [*out[label], "band_limited"]
    return {label: out[label] for label in QUALITY_CHANNELS}


def _complete_flags(signals: list[Signal]) -> list[list[str]]:
    """``channel_flags`` of signals of one rate and length without missing samples, checked together."""
    x = np.stack([sig.data for sig in signals])
    fs, n = signals[0].fs, x.shape[1]
    checked = [sig.label not in NOT_FLAT_CHECKED for sig in signals]
    spans = dict(
        zip(
            (i for i, c in enumerate(checked) if c),
            loss_spans_many([sig for sig, c in zip(signals, checked, strict=True) if c]),
            strict=True,
        )
    )
    std = np.std(x, axis=1)
    hi, lo = x.max(axis=1), x.min(axis=1)
    tol = CLIP_TOLERANCE * (hi - lo)
    pinned = max(CLIP_FRACTION * n, CLIP_MIN_SAMPLES)
    at_hi = np.sum(x >= (hi - tol)[:, None], axis=1) >= pinned
    at_lo = np.sum(x <= (lo + tol)[:, None], axis=1) >= pinned
    noise_only = _noise_only_rows(x, fs, [sig.label in NOISE_CHANNELS for sig in signals])
    line = _line_noise_rows(x, fs)
    out = []
    for i, sig in enumerate(signals):
        reasons = {reason for reason, _, _ in spans.get(i, [])}
        threshold = flat_std(sig)
        flat = checked[i] and (
            (threshold is not None and n > 1 and float(std[i]) < threshold)
            or bool(noise_only[i])
            or not reasons.isdisjoint(("flat", "lead_off"))
        )
        clipped = (
            not flat
            and checked[i]
            and n >= 2
            and ((float(hi[i]) > float(lo[i]) and bool(at_hi[i] or at_lo[i])) or "clipped" in reasons)
        )
        flags = ["flat"] if flat else ["clipped"] if clipped else []
        if not flat and n >= 2 and (_swing_too_large(sig, x[i], float(hi[i] - lo[i])) or line[i] > LINE_FRACTION):
            flags.append("noisy")
        bounds = PHYSIOLOGICAL_RANGE.get(sig.label)
        if bounds is not None and (float(lo[i]) < bounds[0] or float(hi[i]) > bounds[1]):
            flags.append("gap")
        out.append(flags)
    return out


def _swing_too_large(sig: Signal, finite: np.ndarray, full_range: float) -> bool:
    """EEG/EOG 1st-99th percentile range beyond ``NOISY_RANGE_UV``. The percentile range cannot exceed
    the full range (``full_range``), so the percentiles (a sort, ~0.2 ms) are taken only when it might."""
    limit = NOISY_RANGE_UV.get(sig.label)
    if limit is None or not full_range > limit * (1.0 - 1e-9):
        return False
    p99, p1 = np.percentile(finite, [99, 1])
    return float(p99 - p1) > limit


def _noise_only_rows(x: np.ndarray, fs: float, candidates: list[bool]) -> np.ndarray:
    """``is_noise_only`` of each candidate row of ``x`` (complete samples at ``fs``), one Welch for all."""
    out = np.zeros(x.shape[0], dtype=bool)
    n = int(NOISE_WINDOW_S * fs)
    rows = np.flatnonzero(candidates)
    if not rows.size or fs < 4 * NOISE_BAND_HZ[1] or x.shape[1] < n:
        return out
    windows = np.lib.stride_tricks.sliding_window_view(x[rows], n, axis=1)[:, :: n // 2]
    freqs, psd = welch(windows - windows.mean(axis=2, keepdims=True), fs, nperseg=n // 2)
    out[rows] = _noise_band_low(freqs, psd).any(axis=1)
    return out


def _noise_band_low(freqs: np.ndarray, psd: np.ndarray) -> np.ndarray:
    """Per spectrum (last axis): power above the band floor positive, and the breathing/cardiogenic
    band's share of it under ``NOISE_BAND_FRACTION``."""
    above = freqs >= NOISE_BAND_HZ[0]
    total = psd[..., above].sum(axis=-1)
    band = psd[..., above & (freqs <= NOISE_BAND_HZ[1])].sum(axis=-1)
    positive = total > 0
    noisy: np.ndarray = positive & (band / np.where(positive, total, 1.0) < NOISE_BAND_FRACTION)
    return noisy


def _line_noise_rows(x: np.ndarray, fs: float) -> np.ndarray:
    """``line_noise_fraction`` of each row of ``x`` (complete samples at ``fs``), one Welch for all."""
    if fs < 2 * (LINE_HZ[0] + 1.0) or x.shape[1] < int(2 * fs):
        return np.zeros(x.shape[0])
    freqs, psd = welch(x - x.mean(axis=1, keepdims=True), fs, nperseg=int(2 * fs))
    total = psd[:, freqs >= 0.5].sum(axis=1)
    line = psd[:, _line_mask(freqs)].sum(axis=1)
    positive = total > 0
    return np.where(positive, line / np.where(positive, total, 1.0), 0.0)


def channel_flags(sig: Signal) -> list[str]:
    """Quality flags of one channel's epoch (``sig.data`` native samples, NaN where missing), in
    ``QUALITY_FLAGS`` order."""
    x = sig.data
    finite_mask = np.isfinite(x)
    if not finite_mask.any():
        return ["gap"]
    finite = x if finite_mask.all() else x[finite_mask]
    spans = _LossSpans(sig)
    flags: list[str] = []
    if is_flat(sig, finite, spans):
        flags.append("flat")
    elif is_clipped(sig, finite, spans):
        flags.append("clipped")
    if "flat" not in flags and is_noisy(sig, finite):
        flags.append("noisy")
    if has_gap(x, sig.fs, finite_mask) or _invalid_reading(sig, finite):
        flags.append("gap")
    return flags


class _LossSpans:
    """``loss_spans(sig)``, computed on first use and shared by the flat and clipped checks of one channel."""

    def __init__(self, sig: Signal) -> None:
        self._sig = sig
        self._spans: list[tuple[str, float, float]] | None = None

    def reasons(self) -> set[str]:
        if self._spans is None:
            self._spans = loss_spans(self._sig)
        return {reason for reason, _, _ in self._spans}


def _finite(sig: Signal, finite: np.ndarray | None) -> np.ndarray:
    return sig.data[np.isfinite(sig.data)] if finite is None else finite


def has_gap(x: np.ndarray, fs: float, finite_mask: np.ndarray | None = None) -> bool:
    """True if ``x`` has a run of NaN longer than chunk-seam jitter (``GAP_TOLERANCE_*``)."""
    missing = ~np.isfinite(x) if finite_mask is None else ~finite_mask
    if not missing.any():
        return False
    tolerated = min(GAP_TOLERANCE_SAMPLES, int(GAP_TOLERANCE_S * fs))
    starts, ends = runs(missing)
    return bool(np.any(ends - starts > tolerated))


def is_flat(sig: Signal, finite: np.ndarray | None = None, spans: _LossSpans | None = None) -> bool:
    """No physiology: std below ``FLAT_STD`` for the unit, or >= 5 s flat/zero (signal_quality).

    ``finite`` (the finite samples) and ``spans`` let ``channel_flags`` share work between checks.
    """
    if sig.label in NOT_FLAT_CHECKED:
        return False
    finite = _finite(sig, finite)
    threshold = flat_std(sig)
    if threshold is not None and finite.size > 1 and float(np.std(finite)) < threshold:
        return True
    if sig.label in NOISE_CHANNELS and is_noise_only(sig):
        return True
    return not (spans or _LossSpans(sig)).reasons().isdisjoint(("flat", "lead_off"))


def flat_std(sig: Signal) -> float | None:
    """The standard deviation under which ``sig``'s epoch is flat (``FLAT_STD``, ``FLAT_STD_OF_RANGE``)."""
    if sig.unit != ARBITRARY_UNIT:
        return FLAT_STD.get(sig.unit)
    bounds = channel_range(sig)
    return None if bounds is None else FLAT_STD_OF_RANGE * (bounds[1] - bounds[0])


def is_noise_only(sig: Signal) -> bool:
    """Some 10-s window of an airflow/effort trace has under ``NOISE_BAND_FRACTION`` of its power in the
    breathing/cardiogenic band: a sensor off the patient (see ``NOISE_BAND_FRACTION``).

    The windows (moved by half a window; those with a missing sample skipped) are one batched Welch.
    """
    n = int(NOISE_WINDOW_S * sig.fs)
    if sig.fs < 4 * NOISE_BAND_HZ[1] or sig.data.size < n:
        return False
    windows = np.lib.stride_tricks.sliding_window_view(sig.data, n)[:: n // 2]
    windows = windows[np.isfinite(windows).all(axis=1)]
    if not windows.size:
        return False
    freqs, psd = welch(windows - windows.mean(axis=1, keepdims=True), sig.fs, nperseg=n // 2)
    return bool(_noise_band_low(freqs, psd).any())


def is_clipped(sig: Signal, finite: np.ndarray | None = None, spans: _LossSpans | None = None) -> bool:
    """Saturation: ``CLIP_FRACTION`` of the epoch at its max or min, or a rail span (signal_quality)."""
    if sig.label in NOT_FLAT_CHECKED:
        return False
    finite = _finite(sig, finite)
    if finite.size < 2:
        return False
    hi, lo = float(finite.max()), float(finite.min())
    tol = CLIP_TOLERANCE * (hi - lo)
    if hi > lo:
        pinned = max(CLIP_FRACTION * finite.size, CLIP_MIN_SAMPLES)
        if np.sum(finite >= hi - tol) >= pinned or np.sum(finite <= lo + tol) >= pinned:
            return True
    return "clipped" in (spans or _LossSpans(sig)).reasons()


def is_noisy(sig: Signal, finite: np.ndarray | None = None) -> bool:
    """EEG/EOG swing beyond ``NOISY_RANGE_UV``, or mains hum over ``LINE_FRACTION`` of the power."""
    finite = _finite(sig, finite)
    if finite.size < 2:
        return False
    return _swing_too_large(sig, finite, float(np.ptp(finite))) or line_noise_fraction(finite, sig.fs) > LINE_FRACTION


def line_noise_fraction(x: np.ndarray, fs: float) -> float:
    """Fraction of the power above 0.5 Hz within 1 Hz of 50 or 60 Hz (0 where the rate cannot carry mains)."""
    if fs < 2 * (LINE_HZ[0] + 1.0) or x.size < int(2 * fs):
        return 0.0
    freqs, psd = welch(x - np.mean(x), fs, nperseg=int(2 * fs))
    total = psd[freqs >= 0.5].sum()
    if not total > 0:
        return 0.0
    return float(psd[_line_mask(freqs)].sum() / total)


def _line_mask(freqs: np.ndarray) -> np.ndarray:
    """Bins within 1 Hz of a mains frequency."""
    line = np.zeros(freqs.size, dtype=bool)
    for hz in LINE_HZ:
        line |= np.abs(freqs - hz) <= 1.0
    return line


def _invalid_reading(sig: Signal, finite: np.ndarray | None = None) -> bool:
    """An oximeter / monitor reading outside its physiological range (probe off) for any sample."""
    bounds = PHYSIOLOGICAL_RANGE.get(sig.label)
    if bounds is None:
        return False
    finite = _finite(sig, finite)
    return bool(np.any((finite < bounds[0]) | (finite > bounds[1])))
