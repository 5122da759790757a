"""Pulse-oximeter SpO2 (1 Hz, %) for one simulated night.

Model: a first-order oxygen store. While a respiratory event is "felt" at the finger, SpO2 falls at a
constant rate chosen so the event's total fall is its depth; otherwise it recovers exponentially
toward the night's baseline (time constant 6-10 s: resaturation after apnea is fast). The finger
sees the lungs through the circulation delay, 15-30 s in adults (lung-to-finger circulation time;
Schnall et al. 1999 report a lag of about 20-30 s between event end and the SpO2 nadir), so each fall
starts ``lag`` after event onset and its nadir is ``lag`` after event end.

Depth grows with event duration and is larger for apneas than for hypopneas and for obstructive than
for central events. Every depth is at least 4%: after quantisation to whole percent a 4% fall reads
as at least 3%, so each rendered apnea/hypopnea carries the >= 3% desaturation that AASM 2.6/3.0
hypopnea scoring (rule 1B) asks for. Because the fall of one event is not offset by recovery from
the previous one, each event's own fall is its depth even inside clusters.

Output is quantised to 1%: clinical oximeters (Nonin, Masimo) report whole percent, and scorers apply
the 3% rule to those integers; simulating finer resolution would let detectors rely on information
no real recording has.
"""

from __future__ import annotations

import numpy as np

from psg.montage import CHANNELS, SPO2
from psg.recording import Signal
from psg.simulate.plan import NightPlan
from psg.timeline import Event, Stage

FS = CHANNELS[SPO2].fs
LAG_S = (15.0, 30.0)
MIN_DEPTH = 4.0
#: Depth (%) at a 10-s event and its growth per extra second, by event type.
_DEPTH = {
    "obstructive_apnea": ((4.5, 7.5), 0.20),
    "mixed_apnea": ((4.5, 7.5), 0.20),
    "central_apnea": ((4.0, 6.0), 0.12),
    "hypopnea": ((4.0, 5.5), 0.08),
}
#: Mean SpO2 offset from the waking baseline by stage (slight nocturnal hypoventilation, most in REM).
_STAGE_OFFSET = {Stage.W: 0.0, Stage.N1: -0.3, Stage.N2: -0.5, Stage.N3: -0.6, Stage.R: -1.0, Stage.UNSCORED: 0.0}
FLOOR = 60.0


def render_spo2(plan: NightPlan) -> tuple[Signal, list[Event]]:
    """SpO2 signal and the ``desaturation`` truth events (each fall of >= 3%) it contains."""
    rng = plan.rng("oximetry")
    n = plan.n_samples(FS)
    offsets = np.array([_STAGE_OFFSET[Stage(int(s))] for s in range(-1, 5)])
    baseline = plan.subject.baseline_spo2 + offsets[plan.stage_per_s[:n].astype(np.int64) + 1]
    baseline = np.convolve(np.pad(baseline, 30, mode="edge"), np.ones(61) / 61, mode="same")[30:-30]
    baseline = np.minimum(baseline, 100.0)

    night_lag = rng.uniform(LAG_S[0] + 2.0, LAG_S[1] - 2.0)
    fall_rate = np.zeros(n)
    falls: list[tuple[int, int]] = []
    for ev in plan.respiratory_events:
        (lo, hi), per_s = _DEPTH[ev.type]
        depth = max(MIN_DEPTH, rng.uniform(lo, hi) + per_s * (ev.duration_s - 10.0))
        lag = night_lag + rng.uniform(-2.0, 2.0)
        i0, i1 = int(round(ev.onset_s + lag)), int(round(ev.end_s + lag))
        i1 = max(i1, i0 + 1)
        if i0 >= n:
            continue
        fall_rate[i0 : min(i1, n)] = np.maximum(fall_rate[i0 : min(i1, n)], depth / (i1 - i0))
        falls.append((i0, min(i1, n)))

    recovery = 1.0 - np.exp(-1.0 / rng.uniform(6.0, 10.0))
    sat = _integrate(baseline, fall_rate, recovery)
    noisy = sat + 0.25 * rng.standard_normal(n)
    reading = np.clip(np.round(noisy), 0.0, 100.0)

    events = []
    for i0, i1 in falls:
        drop = sat[i0 - 1 if i0 else 0] - sat[i1 - 1]
        if drop >= 3.0:
            events.append(Event("desaturation", float(i0), float(i1 - i0), channel=SPO2))
    return Signal(SPO2, reading, FS, CHANNELS[SPO2].unit), events


def _integrate(baseline: np.ndarray, fall_rate: np.ndarray, recovery: float) -> np.ndarray:
    """Step the oxygen store once per second (a plain loop: 1 Hz keeps it to ~30k cheap steps)."""
    sat = np.empty(baseline.size)
    level = float(baseline[0]) if baseline.size else 0.0
    for i, (base, rate) in enumerate(zip(baseline.tolist(), fall_rate.tolist(), strict=True)):
        level = max(FLOOR, level - rate) if rate > 0 else level + (base - level) * recovery
        sat[i] = level
    return sat
