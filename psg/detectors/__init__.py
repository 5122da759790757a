"""Deterministic AASM rule detectors: what the clinical and technical alerts are raised from.

``detect_events`` runs every detector on a recording's signals (never its truth annotations):
respiratory events (``respiratory``), desaturations (``oximetry``), rhythm events (``cardiac``) and
signal loss on any channel (``psg.quality.signal_loss``). ``to_events`` turns the result into timeline events
for captions and EDF+ annotations. A discontinuous recording (EDF+D, ``Recording.gaps``) is detected one
recorded segment at a time, with a technical ``signal_loss`` (reason ``gap``) per gap (``segments``).
"""

from __future__ import annotations

import numpy as np

from psg.detectors.base import DetectedEvent, to_events
from psg.detectors.cardiac import detect_cardiac_events
from psg.detectors.oximetry import detect_desaturations
from psg.detectors.respiratory import detect_respiratory_events
from psg.detectors.segments import detect_by_segment
from psg.detectors.signal_loss import detect_signal_loss
from psg.features.cardiac import detect_r_peaks
from psg.montage import ECG, SPO2
from psg.recording import Recording

__all__ = ["DetectedEvent", "detect_events", "to_events"]


def detect_events(recording: Recording, r_peaks: np.ndarray | None = None) -> list[DetectedEvent]:
    """All rule-detected events in ``recording``, in time order.

    ``r_peaks`` are ``detect_r_peaks`` of the recording's ECG when the caller already has them (ignored for
    a recording with gaps: each segment's beats are found in that segment alone).
    """
    if recording.gaps:
        events = detect_by_segment(recording, detect_events)
        return sorted(events, key=lambda e: (e.onset_s, e.type))
    events = detect_respiratory_events(recording)
    spo2 = recording.get(SPO2)
    if spo2 is not None:
        events += detect_desaturations(spo2)
    ecg = recording.get(ECG)
    if ecg is not None:
        events += detect_cardiac_events(detect_r_peaks(ecg) if r_peaks is None else r_peaks, ecg)
    events += detect_signal_loss(recording)
    return sorted(events, key=lambda e: (e.onset_s, e.type))
