"""Apneas and hypopneas by the AASM Manual rules (version 2.6, unchanged in 3.0).

* Apnea (rule 1A): peak airflow excursion drops >= 90% from the pre-event baseline for >= 10 s.
  Type from respiratory effort over the event: obstructive if effort continues, central if it is
  absent throughout, mixed if it is absent in the initial portion and resumes in the later portion;
  ``apnea`` (unclassified) where no effort belt was recorded or usable over it (lead off, flat): a
  disconnected belt's silence is not a central apnea, nor its noise an obstructive one.
* Hypopnea (rule 1B, "recommended"): peak excursion drops >= 30% for >= 10 s with a >= 3% oxygen
  desaturation or an EEG arousal (``psg.detectors.arousal``) starting between ``AROUSAL_BEFORE_END_S``
  before and ``AROUSAL_AFTER_END_S`` after the event's end (arousals terminate the event). The
  evidence says which: ``confirmed_by`` is "desaturation" or "arousal". Without SpO2 (absent, or
  probe off) arousals alone confirm; without a usable EEG, SpO2 alone.

Signal processing: airflow is band-passed 0.05-2 Hz; the peak excursion of each breath is the
running peak-to-peak over one breath length (1.25 x the night's dominant breathing period, so the
window always spans a whole breath). The pre-event baseline is the 80th percentile of that excursion
over the preceding 2 minutes: the AASM's "mean amplitude of stable breathing in the 2 minutes
preceding the event", with the manual's rule for unstable breathing (use the largest breaths)
approximated by taking a high percentile instead of the median, so clusters of events do not drag the
baseline down. The running window makes a reduction appear half a window late and end half a window
early; detected runs are widened by that half window, which makes their span run from the last
normal breath to the first recovery breath, as the manual measures event duration.

Airflow source, at whatever rate the sensor has (1-Hz oro-nasal to 100-Hz pressure; the band-pass
stays below Nyquist, ``psg.dsp.breathing_band``): the AF channel (the nasal pressure / thermal sensor);
without it, the sum of the belts (RIPsum, the AASM's alternative apnea sensor). Spans where the sensor
has lost signal are not scored (a disconnected cannula is not an apnea). Nor is a flow that stays down for
longer than ``MAX_EVENT_S`` without a desaturation: that is a technical ``signal_loss`` (``no_breathing``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from psg.detectors.arousal import detect_arousals
from psg.detectors.base import DetectedEvent
from psg.detectors.oximetry import desaturation_drop
from psg.dsp import breathing_band, dominant_period_s, median, peak_to_peak, runs
from psg.montage import ABD, AF, SPO2, THX
from psg.quality.signal_loss import usable_mask
from psg.recording import Recording, Signal, combined_rails

APNEA_DROP = 0.90
HYPOPNEA_DROP = 0.30
MIN_EVENT_S = 10.0
HYPOPNEA_DESAT_PCT = 3.0
BASELINE_WINDOW_S = 120.0
BASELINE_PERCENTILE = 80.0
#: Effort below this fraction of its own baseline counts as "no inspiratory effort".
EFFORT_ABSENT = 0.2
ANALYSIS_FS = 4.0
#: The longest reduced-flow span scored as an event without a desaturation. The 2,319 events expert-scored on
#: the 20 ucddb nights last at most 65 s (apneas at most 45 s); a flow that stays down longer without SpO2
#: falling is a sensor that stopped reading (a thermistor off the face, an amplifier settling after a step),
#: as the real Sleep-EDF oro-nasal trace does for its last 95 s: without this, one 151-s "apnea" in 5 min of
#: wake. (The 2-min baseline itself sinks to a lost flow after ~100 s, so a longer limit would rarely bite.)
MAX_EVENT_S = 90.0
#: ``signal_loss`` reason of such a span.
NO_BREATHING = "no_breathing"
AROUSAL_BEFORE_END_S = 10.0
AROUSAL_AFTER_END_S = 5.0
_DEFAULT_BREATH_S = 4.0


def detect_respiratory_events(recording: Recording) -> list[DetectedEvent]:
    """Apneas (typed) and hypopneas in ``recording``, in time order."""
    flow, channel = _flow_source(recording)
    if flow is None:
        return []
    analysis = _Excursion(flow)
    efforts = [
        _Excursion(s, rectified=True, window_s=analysis.window_s)
        for s in (recording.get(THX), recording.get(ABD))
        if s is not None
    ]
    spo2 = recording.get(SPO2)
    arousal_onsets: np.ndarray | None = None  # detected on the first hypopnea SpO2 does not confirm
    out: list[DetectedEvent] = []
    for start, stop in analysis.reduced_spans(HYPOPNEA_DROP):
        onset_s, end_s = analysis.seconds(start), analysis.seconds(stop)
        if end_s - onset_s < MIN_EVENT_S:
            continue
        if end_s - onset_s > MAX_EVENT_S and not _desaturates(spo2, onset_s, end_s):
            out.append(DetectedEvent("signal_loss", onset_s, end_s - onset_s, channel, reason=NO_BREATHING))
            continue
        ratio = analysis.ratio_from(start, stop)
        values: dict[str, float | str] = {"flow_drop_pct": 100.0 * (1.0 - median(ratio))}
        apnea = analysis.longest_span_below(start, stop, 1.0 - APNEA_DROP, base_index=start)
        if apnea is not None and analysis.seconds(apnea[1]) - analysis.seconds(apnea[0]) >= MIN_EVENT_S:
            kind, effort_ratio = _apnea_type(efforts, analysis, *apnea)
            if effort_ratio is not None:
                values["effort_ratio"] = effort_ratio
            out.append(DetectedEvent(kind, onset_s, end_s - onset_s, channel, values))
            continue
        drop, nadir = desaturation_drop(spo2, onset_s, end_s) if spo2 is not None else (0.0, float("nan"))
        if drop >= HYPOPNEA_DESAT_PCT:
            values.update({"spo2_drop_pct": drop, "spo2_nadir": nadir, "confirmed_by": "desaturation"})
        else:
            if arousal_onsets is None:
                arousal_onsets = np.array([a.onset_s for a in detect_arousals(recording)])
            near = (arousal_onsets >= end_s - AROUSAL_BEFORE_END_S) & (arousal_onsets <= end_s + AROUSAL_AFTER_END_S)
            if not near.any():
                continue
            values.update({"arousal_lag_s": float(arousal_onsets[near][0]) - end_s, "confirmed_by": "arousal"})
        out.append(DetectedEvent("hypopnea", onset_s, end_s - onset_s, channel, values))
    return out


def _desaturates(spo2: Signal | None, onset_s: float, end_s: float) -> bool:
    """SpO2 falls by ``HYPOPNEA_DESAT_PCT`` over [onset_s, end_s) (False without an oximeter)."""
    return spo2 is not None and desaturation_drop(spo2, onset_s, end_s)[0] >= HYPOPNEA_DESAT_PCT


def _flow_source(recording: Recording) -> tuple[Signal | None, str | None]:
    flow = recording.get(AF)
    if flow is not None:
        return flow, AF
    thx, abd = recording.get(THX), recording.get(ABD)
    if thx is not None and abd is not None and thx.fs == abd.fs and thx.data.size == abd.data.size:
        return Signal("RIPsum", thx.data + abd.data, thx.fs, thx.unit, combined_rails(thx, abd)), "RIPsum"
    return None, None


class _Excursion:
    """Breath excursion of one channel at ``ANALYSIS_FS`` with its running pre-event baseline."""

    def __init__(self, signal: Signal, rectified: bool = False, window_s: float | None = None) -> None:
        fs = signal.fs
        x = breathing_band(signal.data, fs, 2.0)
        if window_s is None:
            period = dominant_period_s(x, fs) or _DEFAULT_BREATH_S
            window_s = float(np.clip(1.25 * period, 3.0, 10.0))
        self.window_s = window_s
        if rectified:
            # mean |effort| over a breath moves continuously, so the effort that is left is measured
            # with about half the smear of a max-min window
            size = max(1, int(round(window_s * fs)))
            env = ndimage.uniform_filter1d(np.abs(x), size, mode="nearest")
        else:
            env = peak_to_peak(x, fs, window_s)
        step = max(1, int(round(fs / ANALYSIS_FS)))
        self.fs = fs / step
        self.env = env[::step]
        self.usable = usable_mask(signal, self.env.size, self.fs)
        self.baseline = _causal_percentile(self.env, self.fs)

    def seconds(self, i: int) -> float:
        return i / self.fs

    def index(self, seconds: float) -> int:
        """The sample at ``seconds`` (clipped to the signal)."""
        return int(np.clip(round(seconds * self.fs), 0, max(self.env.size - 1, 0)))

    def ratio_at(self, times_s: np.ndarray, base_s: float) -> np.ndarray:
        """Excursion at ``times_s`` relative to the baseline at ``base_s``: another channel's time grid."""
        at = np.clip(np.round(np.asarray(times_s) * self.fs).astype(int), 0, self.env.size - 1)
        ratio: np.ndarray = self.env[at] / max(self.baseline[self.index(base_s)], 1e-12)
        return ratio

    def ratio_from(self, start: int, stop: int, base_index: int | None = None) -> np.ndarray:
        """Excursion over [start, stop) relative to the baseline at ``base_index`` (default ``start``)."""
        b = self.baseline[start if base_index is None else base_index]
        ratio: np.ndarray = self.env[start:stop] / max(b, 1e-12)
        return ratio

    def reduced_spans(self, drop: float) -> list[tuple[int, int]]:
        """Runs where excursion is >= ``drop`` below baseline, widened by half a window, merged."""
        low = (self.env < (1.0 - drop) * self.baseline) & self.usable
        half = int(round(self.window_s / 2.0 * self.fs))
        spans: list[tuple[int, int]] = []
        for s, e in zip(*runs(low), strict=True):
            s, e = max(0, s - half), min(self.env.size, e + half)
            if spans and s <= spans[-1][1]:
                spans[-1] = (spans[-1][0], e)
            else:
                spans.append((s, e))
        return spans

    def longest_span_below(self, start: int, stop: int, fraction: float, base_index: int) -> tuple[int, int] | None:
        """Longest widened run inside [start, stop) below ``fraction`` of the baseline at ``base_index``."""
        half = int(round(self.window_s / 2.0 * self.fs))
        core_start, core_stop = start + half, max(start + half, stop - half)
        below = self.ratio_from(core_start, core_stop, base_index) < fraction
        best = None
        for s, e in zip(*runs(below), strict=True):
            span = (max(start, core_start + s - half), min(stop, core_start + e + half))
            if best is None or span[1] - span[0] > best[1] - best[0]:
                best = span
        return best


def _apnea_type(efforts: list[_Excursion], flow: _Excursion, start: int, stop: int) -> tuple[str, float | None]:
    """Obstructive / central / mixed from the belts over the apnea (AASM rules 1A.b-d), or ``apnea``
    (unclassified) with no belt usable over the whole event.

    Effort is judged on the apnea's interior (half a window in from each end, where neighbouring
    normal or recovery breaths no longer leak into the running windows); it is "present" where either
    usable belt moves more than ``EFFORT_ABSENT`` of its own pre-event baseline.
    """
    half = int(round(flow.window_s / 2.0 * flow.fs))
    interior = np.arange(start + half, max(start + half + 1, stop - half)) / flow.fs  # seconds
    onset_s, end_s = flow.seconds(start), flow.seconds(stop)
    usable = [eff for eff in efforts if eff.usable[eff.index(onset_s) : eff.index(end_s)].all()]
    if not usable:
        return "apnea", None
    # on the flow's time grid: a belt may be sampled at another rate (Nox A1: flow 200 Hz, belts 25 Hz),
    # and its analysis rate then differs (25 / 6 Hz against 200 / 50 Hz)
    ratio = np.max([eff.ratio_at(interior, onset_s) for eff in usable], axis=0)
    absent = ratio < EFFORT_ABSENT
    third = max(1, absent.size // 3)
    if absent.mean() >= 0.6:
        kind = "central_apnea"
    elif absent[:third].mean() >= 0.5 and absent[-third:].mean() <= 0.2:
        kind = "mixed_apnea"
    else:
        kind = "obstructive_apnea"
    return kind, median(ratio)


def _causal_percentile(env: np.ndarray, fs: float) -> np.ndarray:
    """Running ``BASELINE_PERCENTILE`` of the preceding ``BASELINE_WINDOW_S`` (computed at 1 Hz)."""
    step = max(1, int(round(fs)))
    per_s = env[::step]
    size = int(BASELINE_WINDOW_S)
    centred = ndimage.percentile_filter(per_s, BASELINE_PERCENTILE, size=size, mode="nearest")
    shift = size // 2
    causal = centred.copy()  # the first 2 minutes have no past: use the window around them
    causal[size:] = centred[size - shift : per_s.size - shift]
    return np.repeat(causal, step)[: env.size]
