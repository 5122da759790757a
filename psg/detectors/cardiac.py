"""Cardiac rhythm events by the AASM Manual 2.6 / 3.0 cardiac rules (adults).

* bradycardia: "sustained heart rate < 40 bpm during sleep" (rule 3);
* tachycardia: "sustained sinus heart rate > 90 bpm during sleep" (rule 2). Bedside monitors
  usually alarm higher (often 120-150 bpm) because a rate of 90 during wake is ordinary; the
  thresholds are module constants so a lab can set its own;
* asystole: "cardiac pauses > 3 s" (rule 4).

The AASM does not define "sustained"; here it means the beat-to-beat rate (median of 5 beats, so one
ectopic or missed beat does not decide) stays beyond the threshold for ``BRADY_MIN_S`` /
``TACHY_MIN_S``. Detectors see signals only, not the hypnogram, so "during sleep" is left to the
consumer (alerting knows the staged epoch). Beats come from the ECG R peaks; pauses that coincide
with ECG signal loss are technical, not asystole.

A rhythm alarm is only as good as the beat detector under it, and a missed beat looks exactly like a
pause. So the beats must be trustworthy where an event is raised:

* an ECG stored below ``MIN_ECG_FS`` cannot place R waves at all, and spans whose RR series is
  implausible (``MAX_RR_IRREGULARITY``, rates outside ``PLAUSIBLE_BPM``: noise detected as beats)
  cannot carry a rhythm rule. Both are reported as technical ``signal_loss`` on the ECG with reason
  ``unreliable_beats`` (the alert engine raises ``technical:cardiac`` and suppresses the cardiac
  alarms), and no rhythm event is raised inside them;
* an asystole needs regular beats before and after the pause and, where the ECG is at hand, no
  QRS-sized deflection inside the pause (``missed_qrs``): a beat the detector skipped is not a pause;
* a bradycardia needs no missed QRS in any of its intervals either.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from psg.detectors.base import DetectedEvent
from psg.dsp import median, runs
from psg.features.cardiac import qrs_band
from psg.quality.signal_loss import loss_spans
from psg.recording import Signal

BRADY_BPM = 40.0
BRADY_MIN_S = 10.0
TACHY_BPM = 90.0
TACHY_MIN_S = 30.0
ASYSTOLE_S = 3.0
_MEDIAN_BEATS = 5
#: Below this rate one sample is over 20 ms: the ECG cannot carry a beat detector.
MIN_ECG_FS = 50.0
#: Windows in which the RR series is judged plausible.
TRUST_WINDOW_S = 30.0
#: Median |successive RR difference| over median RR above which "beats" are noise (atrial fibrillation,
#: the most irregular real rhythm, is ~0.15-0.3; beats picked out of noise are near 0.5 and above).
MAX_RR_IRREGULARITY = 0.4
#: A window's median rate outside this range is not a heart rhythm.
PLAUSIBLE_BPM = (25.0, 220.0)
#: Beats on each side of a pause that must be regular (each RR within ``REGULAR_TOLERANCE`` of their median).
REGULAR_BEATS = 3
REGULAR_TOLERANCE = 0.25
#: A deflection inside an interval this large relative to the neighbouring R waves (QRS band) is a missed beat.
MISSED_QRS_FRACTION = 0.4
#: Half the width of a QRS complex: the part of an interval next to a detected beat that is that beat.
QRS_HALF_S = 0.15
UNRELIABLE = "unreliable_beats"


def detect_cardiac_events(beats_s: np.ndarray, ecg: Signal | None = None) -> list[DetectedEvent]:
    """Bradycardia, tachycardia and asystole from R-peak times (s), and where the beats cannot be
    trusted, technical ``signal_loss`` (reason ``unreliable_beats``) instead."""
    unreliable = unreliable_spans(beats_s, ecg)
    out = [DetectedEvent("signal_loss", s, e - s, "ECG", reason=UNRELIABLE) for s, e in unreliable]
    if beats_s.size < 2:
        return out
    rr = np.diff(beats_s)
    lost = [(s, e) for _, s, e in loss_spans(ecg)] if ecg is not None else []
    blocked = lost + unreliable
    trace = _QrsTrace(ecg, beats_s) if ecg is not None else None
    for i in np.flatnonzero(rr > ASYSTOLE_S):
        start, end = float(beats_s[i]), float(beats_s[i + 1])
        if (
            not _overlaps(blocked, start, end)
            and _regular_around(rr, int(i))
            and not (trace is not None and trace.missed_qrs(int(i)))
        ):
            out.append(DetectedEvent("asystole", start, end - start, "ECG", {"pause_s": end - start}))
    rate = 60.0 / ndimage.median_filter(rr, size=_MEDIAN_BEATS, mode="nearest")
    for kind, mask, min_s, pick in (
        ("bradycardia", rate < BRADY_BPM, BRADY_MIN_S, np.min),
        ("tachycardia", rate > TACHY_BPM, TACHY_MIN_S, np.max),
    ):
        for s, e in zip(*runs(mask), strict=True):
            start, end = float(beats_s[s]), float(beats_s[e])
            if end - start < min_s or _overlaps(unreliable, start, end):
                continue
            if kind == "bradycardia" and trace is not None and any(trace.missed_qrs(k) for k in range(s, e)):
                continue
            out.append(DetectedEvent(kind, start, end - start, "ECG", {"hr_bpm": float(pick(rate[s:e]))}))
    return sorted(out, key=lambda ev: ev.onset_s)


def unreliable_spans(beats_s: np.ndarray, ecg: Signal | None) -> list[tuple[float, float]]:
    """(start_s, end_s) where the beat series cannot carry a rhythm rule, merged.

    The whole record when the ECG rate is under ``MIN_ECG_FS``; else each ``TRUST_WINDOW_S`` window
    with at least 4 intervals whose RR series is irregular beyond ``MAX_RR_IRREGULARITY`` or whose
    median rate is outside ``PLAUSIBLE_BPM``. A single pause or a few ectopic beats move neither median.
    """
    duration = ecg.data.size / ecg.fs if ecg is not None else (float(beats_s[-1]) if beats_s.size else 0.0)
    if ecg is not None and ecg.fs < MIN_ECG_FS:
        return [(0.0, duration)] if duration > 0 else []
    edges = np.arange(0.0, duration + TRUST_WINDOW_S, TRUST_WINDOW_S)
    bounds = np.searchsorted(beats_s, edges)
    spans: list[tuple[float, float]] = []
    for w in range(edges.size - 1):
        rr = np.diff(beats_s[bounds[w] : bounds[w + 1]])
        if rr.size < 4:
            continue
        typical = median(rr)
        irregular = median(np.abs(np.diff(rr))) > MAX_RR_IRREGULARITY * typical
        implausible = not PLAUSIBLE_BPM[0] <= 60.0 / typical <= PLAUSIBLE_BPM[1]
        if irregular or implausible:
            start, end = float(edges[w]), float(min(edges[w + 1], duration))
            if spans and spans[-1][1] >= start:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
    return spans


def _overlaps(spans: list[tuple[float, float]], start: float, end: float) -> bool:
    return any(s < end and e > start for s, e in spans)


def _regular_around(rr: np.ndarray, i: int) -> bool:
    """Whether the ``REGULAR_BEATS`` intervals before pause ``i`` (at least 2 needed) and those after it
    (as many as have come: the pause is known as soon as the beat that ends it comes) are regular."""
    before, after = rr[max(0, i - REGULAR_BEATS) : i], rr[i + 1 : i + 1 + REGULAR_BEATS]
    return before.size >= 2 and all(
        side.size == 0 or bool(np.all(np.abs(side - median(side)) <= REGULAR_TOLERANCE * median(side)))
        for side in (before, after)
    )


class _QrsTrace:
    """The ECG's QRS-band magnitude with the R-wave size at each detected beat."""

    def __init__(self, ecg: Signal, beats_s: np.ndarray) -> None:
        self.fs = ecg.fs
        self.beats_s = beats_s
        self.magnitude = np.abs(qrs_band(ecg.data, ecg.fs))
        around = ndimage.maximum_filter1d(self.magnitude, size=max(1, int(0.1 * ecg.fs)) | 1)
        self.r_size = around[np.clip(np.rint(beats_s * ecg.fs).astype(np.int64), 0, ecg.data.size - 1)]

    def missed_qrs(self, i: int) -> bool:
        """Whether the interval after beat ``i`` holds a deflection of ``MISSED_QRS_FRACTION`` of the R
        waves around it (median of 7 beats either side): a beat the detector did not report."""
        a = int((self.beats_s[i] + QRS_HALF_S) * self.fs)
        b = int((self.beats_s[i + 1] - QRS_HALF_S) * self.fs)
        if b <= a:
            return False
        typical = median(self.r_size[max(0, i - 7) : i + 9])
        return bool(self.magnitude[a:b].max() >= MISSED_QRS_FRACTION * typical)
