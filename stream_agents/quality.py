"""Per-channel quality flags of one 30-s epoch, judged on the native-rate samples.

Every model and aux channel of every epoch gets a list of flags from ``psg.codecs.QUALITY_FLAGS``
(an empty list means good). They gate clinical alerts (an apnea alarm on a flat airflow trace is
noise, a technical alert is not) and tell the caption reader which numbers to distrust:

* ``missing``: the channel is in none of the bed's streams;
* ``gap``: samples are missing (NaN from the device, chunks lost in transit, a lagging or lost
  stream), or an oximeter / monitor reading is outside the physiological range (a probe off the
  finger reports 0 or an invalid code: there is no reading, which is a gap, not a value);
* ``flat``: the trace carries no physiology (standard deviation below ``FLAT_STD`` for its unit, or
  at least 5 s (``FLAT_MIN_S``) of perfectly flat or zero signal as ``psg.detectors.signal_quality``
  finds it, or, on airflow and effort channels, a 10-s stretch that is only sensor noise:
  ``is_noise_only``);
* ``clipped``: the amplifier saturated (``CLIP_FRACTION`` of the samples pinned at the epoch's
  extreme, or a rail span as ``psg.detectors.signal_quality`` finds it);
* ``noisy``: the amplitude is far beyond physiology (EEG/EOG) or mains hum dominates the spectrum.

Slow, legitimately constant channels (POS, SpO2, HR) are never called flat or clipped, exactly as in
``psg.detectors.signal_quality``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import signal as sps

from psg.detectors.signal_quality import PHYSIOLOGICAL_RANGE, loss_spans
from psg.dsp import runs
from psg.montage import ABD, AF, AUX_CHANNELS, EEG_C3, EEG_C4, EOG_L, EOG_R, HR, MODEL_CHANNELS, POS, SPO2, THX
from psg.recording import Signal

#: Channels every epoch carries flags for: the model montage then the aux channels.
QUALITY_CHANNELS: tuple[str, ...] = MODEL_CHANNELS + AUX_CHANNELS
#: Flat-trace thresholds (standard deviation over the epoch) by unit. Amplifier noise alone is above
#: ~0.5 uV RMS on EEG/EOG/EMG inputs (so 0.1 uV, as ``psg.features.neuro.FLAT_STD_UV``, is a dead
#: input); 1 uV on an ECG in mV and 1/10000 of the +-5 range of effort/flow sensors are likewise far
#: below anything a sensor on a breathing person produces.
FLAT_STD: dict[str, float] = {"uV": 0.1, "mV": 1e-3, "a.u.": 1e-3}
#: Channels that may legitimately hold one value for a whole epoch.
NOT_FLAT_CHECKED = frozenset({POS, SPO2, HR})
#: Clipping: at least 5 % of the epoch pinned within 0.1 % of the epoch's range from its max or min.
#: A live trace touches its extreme for a sample or two (simulated nights: < 1 %); a saturated
#: amplifier sits on the rail for whole runs.
CLIP_FRACTION = 0.05
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
    NaN where missing); a label absent from ``channels`` is ``['missing']``."""
    out: dict[str, list[str]] = {}
    for label in QUALITY_CHANNELS:
        sig = channels.get(label)
        out[label] = ["missing"] if sig is None else channel_flags(sig)
    return out


def channel_flags(sig: Signal) -> list[str]:
    """Quality flags of one channel's epoch (``sig.data`` native samples, NaN where missing), in
    ``QUALITY_FLAGS`` order."""
    x = sig.data
    finite = np.isfinite(x)
    flags: list[str] = []
    if not finite.any():
        return ["gap"]
    if is_flat(sig):
        flags.append("flat")
    elif is_clipped(sig):
        flags.append("clipped")
    if "flat" not in flags and is_noisy(sig):
        flags.append("noisy")
    if has_gap(x, sig.fs) or _invalid_reading(sig):
        flags.append("gap")
    return flags


def has_gap(x: np.ndarray, fs: float) -> bool:
    """True if ``x`` has a run of NaN longer than chunk-seam jitter (``GAP_TOLERANCE_*``)."""
    missing = ~np.isfinite(x)
    if not missing.any():
        return False
    tolerated = min(GAP_TOLERANCE_SAMPLES, int(GAP_TOLERANCE_S * fs))
    starts, ends = runs(missing)
    return bool(np.any(ends - starts > tolerated))


def is_flat(sig: Signal) -> bool:
    """No physiology: std below ``FLAT_STD`` for the unit, or >= 5 s flat/zero (signal_quality)."""
    if sig.label in NOT_FLAT_CHECKED:
        return False
    finite = sig.data[np.isfinite(sig.data)]
    threshold = FLAT_STD.get(sig.unit)
    if threshold is not None and finite.size > 1 and float(np.std(finite)) < threshold:
        return True
    if sig.label in NOISE_CHANNELS and is_noise_only(sig):
        return True
    return any(reason in ("flat", "lead_off") for reason, _, _ in loss_spans(sig))


def is_noise_only(sig: Signal) -> bool:
    """Some 10-s window of an airflow/effort trace has under ``NOISE_BAND_FRACTION`` of its power in the
    breathing/cardiogenic band: a sensor off the patient (see ``NOISE_BAND_FRACTION``)."""
    n = int(NOISE_WINDOW_S * sig.fs)
    if sig.fs < 4 * NOISE_BAND_HZ[1] or sig.data.size < n:
        return False
    step = n // 2
    for start in range(0, sig.data.size - n + 1, step):
        window = sig.data[start : start + n]
        if not np.all(np.isfinite(window)):
            continue
        freqs, psd = sps.welch(window - window.mean(), fs=sig.fs, nperseg=n // 2)
        total = psd[freqs >= NOISE_BAND_HZ[0]].sum()
        if total > 0:
            band = psd[(freqs >= NOISE_BAND_HZ[0]) & (freqs <= NOISE_BAND_HZ[1])].sum()
            if band / total < NOISE_BAND_FRACTION:
                return True
    return False


def is_clipped(sig: Signal) -> bool:
    """Saturation: ``CLIP_FRACTION`` of the epoch at its max or min, or a rail span (signal_quality)."""
    if sig.label in NOT_FLAT_CHECKED:
        return False
    finite = sig.data[np.isfinite(sig.data)]
    if finite.size < 2:
        return False
    hi, lo = float(finite.max()), float(finite.min())
    tol = CLIP_TOLERANCE * (hi - lo)
    if hi > lo:
        if np.mean(finite >= hi - tol) >= CLIP_FRACTION or np.mean(finite <= lo + tol) >= CLIP_FRACTION:
            return True
    return any(reason == "clipped" for reason, _, _ in loss_spans(sig))


def is_noisy(sig: Signal) -> bool:
    """EEG/EOG swing beyond ``NOISY_RANGE_UV``, or mains hum over ``LINE_FRACTION`` of the power."""
    finite = sig.data[np.isfinite(sig.data)]
    if finite.size < 2:
        return False
    limit = NOISY_RANGE_UV.get(sig.label)
    if limit is not None and float(np.percentile(finite, 99) - np.percentile(finite, 1)) > limit:
        return True
    return line_noise_fraction(finite, sig.fs) > LINE_FRACTION


def line_noise_fraction(x: np.ndarray, fs: float) -> float:
    """Fraction of the power above 0.5 Hz within 1 Hz of 50 or 60 Hz (0 where the rate cannot carry mains)."""
    if fs < 2 * (LINE_HZ[0] + 1.0) or x.size < int(2 * fs):
        return 0.0
    freqs, psd = sps.welch(x - np.mean(x), fs=fs, nperseg=int(2 * fs))
    total = psd[freqs >= 0.5].sum()
    if not total > 0:
        return 0.0
    line = np.zeros(freqs.size, dtype=bool)
    for hz in LINE_HZ:
        line |= np.abs(freqs - hz) <= 1.0
    return float(psd[line].sum() / total)


def _invalid_reading(sig: Signal) -> bool:
    """An oximeter / monitor reading outside its physiological range (probe off) for any sample."""
    bounds = PHYSIOLOGICAL_RANGE.get(sig.label)
    if bounds is None:
        return False
    finite = sig.data[np.isfinite(sig.data)]
    return bool(np.any((finite < bounds[0]) | (finite > bounds[1])))

