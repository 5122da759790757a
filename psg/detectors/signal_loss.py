"""``signal_loss`` technical events on every standard montage channel, from ``psg.quality.signal_loss``'s spans.

Here, not beside the spans: the other detectors read the spans (``usable_mask``, ``loss_spans``), so the
quality module must not import the detectors package back.
"""

from __future__ import annotations

from psg.detectors.base import DetectedEvent
from psg.montage import CHANNELS
from psg.quality.signal_loss import loss_spans_many
from psg.recording import Recording


def detect_signal_loss(recording: Recording) -> list[DetectedEvent]:
    """Every span of lost signal on every standard channel, in time order."""
    present = [label for label in CHANNELS if label in recording.signals]
    spans = dict(zip(present, loss_spans_many([recording.signals[label] for label in present]), strict=True))
    out: list[DetectedEvent] = []
    for label in CHANNELS:
        if label not in spans:
            out.append(DetectedEvent("signal_loss", 0.0, recording.duration_s, label, reason="missing"))
            continue
        for reason, start, end in spans[label]:
            out.append(DetectedEvent("signal_loss", start, end - start, label, reason=reason))
    return sorted(out, key=lambda e: (e.onset_s, e.channel or ""))
