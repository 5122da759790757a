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
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from psg.detectors.base import DetectedEvent
from psg.detectors.signal_quality import loss_spans
from psg.dsp import runs
from psg.recording import Signal

BRADY_BPM = 40.0
BRADY_MIN_S = 10.0
TACHY_BPM = 90.0
TACHY_MIN_S = 30.0
ASYSTOLE_S = 3.0
_MEDIAN_BEATS = 5


def detect_cardiac_events(beats_s: np.ndarray, ecg: Signal | None = None) -> list[DetectedEvent]:
    """Bradycardia, tachycardia and asystole from R-peak times (s)."""
    if beats_s.size < 2:
        return []
    rr = np.diff(beats_s)
    lost = loss_spans(ecg) if ecg is not None else []
    out: list[DetectedEvent] = []
    for i in np.flatnonzero(rr > ASYSTOLE_S):
        start, end = float(beats_s[i]), float(beats_s[i + 1])
        if not any(s < end and e > start for _, s, e in lost):
            out.append(DetectedEvent("asystole", start, end - start, "ECG", {"pause_s": end - start}))
    rate = 60.0 / ndimage.median_filter(rr, size=_MEDIAN_BEATS, mode="nearest")
    for kind, mask, min_s, pick in (
        ("bradycardia", rate < BRADY_BPM, BRADY_MIN_S, np.min),
        ("tachycardia", rate > TACHY_BPM, TACHY_MIN_S, np.max),
    ):
        for s, e in zip(*runs(mask), strict=True):
            start, end = float(beats_s[s]), float(beats_s[e])
            if end - start >= min_s:
                out.append(DetectedEvent(kind, start, end - start, "ECG", {"hr_bpm": float(pick(rate[s:e]))}))
    return sorted(out, key=lambda ev: ev.onset_s)
