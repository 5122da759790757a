"""Technical alerts: ``signal_loss`` on any montage channel, with the reason.

Reasons, checked on 1-s blocks of each channel:

* ``missing``: a channel of the standard montage (``psg.montage.CHANNELS``) is not in the recording;
* ``lead_off``: the trace is flat at zero (a disconnected electrode behind a high-pass amplifier reads
  0) or, for the oximeter and the monitor rate, outside the physiological range (probes report
  0 / invalid when off the finger);
* ``flat``: the trace does not move at all (peak-to-peak below 1e-5 of the channel's range) for at
  least ``FLAT_MIN_S`` - real biosignals always carry noise, even an apnea's flow;
* ``clipped``: at least ``CLIP_FRACTION`` of a second's samples sit on the amplifier rail (the EDF
  physical range), for at least ``CLIP_MIN_S``.

Flatness is not checked on slow, legitimately constant channels (SpO2, HR, body position).
"""

from __future__ import annotations

import numpy as np

from psg.detectors.base import DetectedEvent
from psg.dsp import runs
from psg.montage import CHANNELS, HR, POS, SPO2
from psg.recording import Recording, Signal

FLAT_MIN_S = 5.0
CLIP_FRACTION = 0.2
CLIP_MIN_S = 1.0
#: Plausible ranges; readings outside mean the probe is off (SpO2 < 50% is not measured reliably).
PHYSIOLOGICAL_RANGE = {SPO2: (50.0, 100.0), HR: (20.0, 250.0)}
LEAD_OFF_MIN_S = 5.0
_NOT_FLAT_CHECKED = frozenset({SPO2, HR, POS})


def detect_signal_loss(recording: Recording) -> list[DetectedEvent]:
    """Every span of lost signal on every standard channel, in time order."""
    out: list[DetectedEvent] = []
    for label in CHANNELS:
        signal = recording.get(label)
        if signal is None:
            out.append(DetectedEvent("signal_loss", 0.0, recording.duration_s, label, reason="missing"))
            continue
        for reason, start, end in loss_spans(signal):
            out.append(DetectedEvent("signal_loss", start, end - start, label, reason=reason))
    return sorted(out, key=lambda e: (e.onset_s, e.channel or ""))


def loss_spans(signal: Signal) -> list[tuple[str, float, float]]:
    """(reason, start_s, end_s) of every span where ``signal`` carries no physiology."""
    fs = signal.fs
    block = max(1, int(round(fs)))
    n_blocks = signal.data.size // block
    if n_blocks == 0:
        return []
    x = signal.data[: n_blocks * block].reshape(n_blocks, block)
    spec = CHANNELS.get(signal.label)
    spans: list[tuple[str, float, float]] = []
    seconds_per_block = block / fs

    def add(reason: str, mask: np.ndarray, min_s: float) -> None:
        for s, e in zip(*runs(mask), strict=True):
            if (e - s) * seconds_per_block >= min_s:
                spans.append((reason, s * seconds_per_block, e * seconds_per_block))

    if signal.label in PHYSIOLOGICAL_RANGE:
        lo, hi = PHYSIOLOGICAL_RANGE[signal.label]
        add("lead_off", np.any((x < lo) | (x > hi), axis=1), LEAD_OFF_MIN_S)
    elif signal.label not in _NOT_FLAT_CHECKED:
        span = (spec.physical_max - spec.physical_min) if spec else max(float(np.ptp(signal.data)), 1.0)
        flat = np.ptp(x, axis=1) <= 1e-5 * span
        at_zero = np.all(np.abs(x) <= 1e-5 * span, axis=1)
        railed = np.zeros(n_blocks, dtype=bool)
        if spec is not None:
            tol = 1e-3 * span
            on_rail = (x >= spec.physical_max - tol) | (x <= spec.physical_min + tol)
            railed = np.mean(on_rail, axis=1) >= CLIP_FRACTION
            add("clipped", railed, CLIP_MIN_S)
        add("lead_off", flat & at_zero, FLAT_MIN_S)
        add("flat", flat & ~at_zero & ~railed, FLAT_MIN_S)
    return sorted(spans, key=lambda s: s[1])


def usable_mask(signal: Signal, n: int, fs: float) -> np.ndarray:
    """True at each of ``n`` samples (rate ``fs``) where ``signal`` is not lost."""
    ok = np.ones(n, dtype=bool)
    for _, start, end in loss_spans(signal):
        ok[int(start * fs):int(np.ceil(end * fs))] = False
    return ok
