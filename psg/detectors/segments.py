"""Discontinuous recordings (EDF+D): the detectors see only what was recorded, one segment at a time.

A gap between an EDF+D file's records holds 0.0 on every signal (``Recording.gaps``) so that the time axis
stays the recording's. Read as signal, those zeros are a lead-off on every channel, an asystole on the
ECG, an apnea on the flow and a probe-off on the oximeter, and the step at each border rings through every
filter. So ``detect_events`` cuts the recording into its recorded segments (``Recording.segments``), runs
the detectors on each as if it were a recording of its own (its borders are recording edges, which every
detector already handles) and shifts the onsets back onto the recording's time axis: no clinical event
is made of, or overlaps, a gap.

Each gap is reported once as the technical event ``signal_loss`` with reason ``gap`` and no channel (all
channels are off), the same kind of technical flag as ``unreliable_beats``: the data were not recorded,
so nothing can be said about that stretch, and a reader of ``detect`` sees why there is nothing there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from psg.detectors.base import DetectedEvent
from psg.recording import Recording

#: ``signal_loss`` reason of a stretch the recording has no data for (an EDF+D gap).
GAP_REASON = "gap"


def segment_recording(recording: Recording, start_s: float, end_s: float) -> Recording:
    """The recorded stretch ``[start_s, end_s)`` as a recording of its own (no truth, no gaps): views only."""
    signals = {label: sig.with_data(sig.window(start_s, end_s)) for label, sig in recording.signals.items()}
    return Recording(
        f"{recording.record_id}@{start_s:g}s", signals, recording.start_time, None, dict(recording.metadata)
    )


def detect_by_segment(recording: Recording, detect: Callable[[Recording], list[DetectedEvent]]) -> list[DetectedEvent]:
    """``detect`` run on each recorded segment, onsets back on the recording's axis, plus one ``gap`` event
    per gap. A channel missing from the file is one ``missing`` loss over the whole recording, not one per
    segment."""
    events: list[DetectedEvent] = []
    missing: dict[str | None, DetectedEvent] = {}
    for start, end in recording.segments():
        for event in detect(segment_recording(recording, start, end)):
            if event.type == "signal_loss" and event.reason == "missing":
                missing.setdefault(event.channel, replace(event, onset_s=0.0, duration_s=recording.duration_s))
                continue
            onset = min(max(event.onset_s, 0.0), end - start)  # a detector's span never leaves its segment
            duration = min(event.end_s, end - start) - onset
            events.append(replace(event, onset_s=onset + start, duration_s=max(duration, 0.0)))
    events += missing.values()
    events += [
        DetectedEvent("signal_loss", start, min(end, recording.duration_s) - start, None, reason=GAP_REASON)
        for start, end in sorted(recording.gaps)
        if start < recording.duration_s
    ]
    return events
