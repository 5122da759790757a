"""Technical artifacts drawn onto rendered signals, exactly where ``NightPlan.artifacts`` says.

Each artifact is an ``Event(type="artifact", subtype=kind, channel=label)`` placed by
``plan._draw_artifacts``; this module only changes samples, in place, so the truth events and the
signals cannot disagree. The waveforms follow the classic PSG artifact atlas descriptions
(AASM Manual v2.6 technical specifications; Berry & Wagner 2015, "Sleep Medicine Pearls", ch. 9):

* electrode_pop: an abrupt step as the electrode-skin contact changes, decaying exponentially as the
  amplifier's high-pass filter recovers; confined to the one electrode (channel);
* lead_off: the input floats to ~0 with a trace of amplifier noise (SpO2: the oximeter reports 0);
* clipping: the signal is driven past the amplifier's range and flattens at the EDF physical rails;
* movement: a large broadband burst on every EEG/EOG/EMG channel and on the effort belts;
* mains: 50 or 60 Hz hum (the subject's mains frequency) from a poorly grounded or high-impedance lead.

Channels a plan names but ``signals`` lacks (e.g. cardiorespiratory ones not rendered) are skipped.
"""

from __future__ import annotations

import numpy as np

from psg.montage import ABD, CHANNELS, EEG_C3, EEG_C4, EMG_CHIN, EOG_L, EOG_R, SPO2, THX
from psg.recording import Signal
from psg.simulate.movement import movement_burst, sway
from psg.simulate.plan import NightPlan
from psg.timeline import Event

#: Channels a body movement hits, with the burst family that describes them.
MOVEMENT_FAMILIES = {EEG_C3: "eeg", EEG_C4: "eeg", EOG_L: "eog", EOG_R: "eog", EMG_CHIN: "emg"}
#: Effort belts swing with a body movement (several times their breathing excursion).
MOVEMENT_BELTS = (ABD, THX)
#: A scored movement artifact is larger than the everyday movements the neuro renderer draws in wake.
MOVEMENT_GAIN = 3.0
#: Residual noise on a disconnected input, as a fraction of the channel's physical range.
LEAD_OFF_NOISE = 0.002


def apply_artifacts(plan: NightPlan, signals: dict[str, Signal]) -> None:
    """Draw every artifact of ``plan.artifacts`` onto ``signals`` (in place)."""
    rng = plan.rng("artifacts")
    for event in plan.artifacts:
        if event.subtype == "movement":
            _movement(event, signals, rng)
            continue
        signal = signals.get(event.channel or "")
        if signal is None:
            continue
        segment = signal.window(event.onset_s, event.end_s)
        if segment.size == 0:
            continue
        if event.subtype == "mains":
            _mains(event, signal, segment, rng, plan.subject.mains_hz)
        else:
            _DRAW[event.subtype or ""](event, signal, segment, rng)


def _span(signal: Signal) -> tuple[float, float]:
    spec = CHANNELS.get(signal.label)
    if spec is not None:
        return spec.physical_min, spec.physical_max
    peak = float(np.max(np.abs(signal.data))) if signal.data.size else 1.0
    return -peak, peak


def _electrode_pop(event: Event, signal: Signal, segment: np.ndarray, rng: np.random.Generator) -> None:
    """Step of 30-70 % of the channel's range, decaying with a time constant of a third of the event."""
    lo, hi = _span(signal)
    amplitude = float(rng.uniform(0.3, 0.7)) * (hi - lo) / 2.0 * float(rng.choice([-1.0, 1.0]))
    t = np.arange(segment.size) / signal.fs
    segment += amplitude * np.exp(-t / max(event.duration_s / 3.0, 1.0 / signal.fs))


def _lead_off(event: Event, signal: Signal, segment: np.ndarray, rng: np.random.Generator) -> None:
    """Flat line near zero with a trace of amplifier noise; a disconnected oximeter reads 0 %."""
    if signal.label == SPO2:
        segment[:] = 0.0
        return
    lo, hi = _span(signal)
    segment[:] = LEAD_OFF_NOISE * (hi - lo) * rng.standard_normal(segment.size)


def _clipping(event: Event, signal: Signal, segment: np.ndarray, rng: np.random.Generator) -> None:
    """Gain driven so that the signal's upper fifth exceeds the rails, then clipped at them."""
    lo, hi = _span(signal)
    typical = float(np.percentile(np.abs(segment), 80)) or 1e-6
    gain = max(2.0, float(rng.uniform(1.2, 2.0)) * hi / typical)
    np.clip(segment * gain, lo, hi, out=segment)


def _mains(event: Event, signal: Signal, segment: np.ndarray, rng: np.random.Generator, mains_hz: float) -> None:
    """Sinusoidal hum at the subject's mains frequency, 3-10 % of the channel's range."""
    lo, hi = _span(signal)
    amplitude = float(rng.uniform(0.03, 0.1)) * (hi - lo) / 2.0
    t = np.arange(segment.size) / signal.fs + event.onset_s
    segment += amplitude * np.sin(2 * np.pi * mains_hz * t + float(rng.uniform(0, 2 * np.pi)))


def _movement(event: Event, signals: dict[str, Signal], rng: np.random.Generator) -> None:
    """Broadband burst on every EEG/EOG/EMG channel and a large swing on the effort belts."""
    for label, family in MOVEMENT_FAMILIES.items():
        if label in signals:
            segment = signals[label].window(event.onset_s, event.end_s)
            segment += movement_burst(rng, segment.size, signals[label].fs, family, gain=MOVEMENT_GAIN)
    for label in MOVEMENT_BELTS:
        if label in signals:
            segment = signals[label].window(event.onset_s, event.end_s)
            swing = MOVEMENT_GAIN * float(np.std(signals[label].data)) or 1.0
            segment += swing * sway(rng, segment.size, signals[label].fs)


_DRAW = {"electrode_pop": _electrode_pop, "lead_off": _lead_off, "clipping": _clipping}
