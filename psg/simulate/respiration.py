"""Respiratory effort (THX, ABD belts) and airflow (AF) for one simulated night.

Breathing is a phase process: the instantaneous rate follows the stage (slower and very regular in
NREM, irregular in REM and wake; Douglas et al., Thorax 1982), and each breath gets its own depth.
Respiratory events from the plan multiply flow and effort by per-sample gains whose spans are exactly
the events' onset/duration, so a detector that finds the reduced breaths finds the scored event:

* obstructive apnea: flow <= 5% of normal while effort continues, growing (crescendo) and turning
  paradoxical (ABD out of phase with THX) as the upper airway closes;
* central apnea: flow and effort both <= 5%;
* mixed apnea: a central first part (40-60% of the event, at least 6 s when the event allows) then
  obstructive efforts against a closed airway;
* hypopnea: flow 30-60% of normal (a 40-70% drop, clear of both AASM thresholds); obstructive
  (and mixed, after a central start) keeps full effort with flattened inspiratory flow (flow
  limitation), central reduces effort with flow;
* after every event, two to three large recovery breaths (at most until the next event starts);
  spontaneous arousals give a few deep breaths.

Waveforms: effort is lung volume (-cos of the breath phase), flow its derivative shape (positive on
inspiration, as a nasal pressure cannula reads it), with inspiration taking 40% of the cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from psg.dsp import bandpass
from psg.montage import ABD, AF, CHANNELS, THX
from psg.recording import Signal
from psg.simulate.plan import NightPlan
from psg.timeline import Event, Stage

FS = CHANNELS[AF].fs
#: Breathing rate relative to the subject's waking rate, and its slow relative variability, per stage.
_RATE_FACTOR = {Stage.W: 1.0, Stage.N1: 0.97, Stage.N2: 0.94, Stage.N3: 0.92, Stage.R: 1.03, Stage.UNSCORED: 1.0}
_RATE_SD = {Stage.W: 0.08, Stage.N1: 0.05, Stage.N2: 0.03, Stage.N3: 0.02, Stage.R: 0.12, Stage.UNSCORED: 0.08}
#: Breath-to-breath depth variability (lognormal sd) per stage: REM breathing is erratic.
_DEPTH_SD = {Stage.W: 0.10, Stage.N1: 0.07, Stage.N2: 0.05, Stage.N3: 0.04, Stage.R: 0.14, Stage.UNSCORED: 0.10}
INSPIRATORY_FRACTION = 0.4
NOISE_SD = 0.008  # sensor noise relative to a normal breath's amplitude (keeps apnea flow < 10%)
RECOVERY_GAIN = (1.3, 1.55)
RECOVERY_BREATHS = (2.0, 3.0)
RAMP_S = 1.0  # raised-cosine edge of every event: breathing changes over about a quarter breath


@dataclass
class Breathing:
    """The rendered respiratory channels plus the breath phase (radians, at ``FS``) other channels use."""

    signals: dict[str, Signal]
    phase: np.ndarray


def render_respiration(plan: NightPlan) -> Breathing:
    """Render THX, ABD and AF for the night in ``plan``."""
    rng = plan.rng("respiration")
    n = plan.n_samples(FS)
    stage = plan.per_sample(plan.stage_per_s, FS)
    stage_keys = [Stage(int(s)) for s in np.unique(stage)]

    rate_hz = plan.subject.breathing_rate_bpm / 60.0 * _lookup(stage, _RATE_FACTOR, stage_keys)
    wander = bandpass(rng.standard_normal(n), FS, None, 0.02, order=1)
    wander /= max(np.std(wander), 1e-12)
    rate_hz = rate_hz * np.exp(wander * _lookup(stage, _RATE_SD, stage_keys))
    phase = 2.0 * np.pi * np.cumsum(rate_hz) / FS
    breath_index = (phase // (2.0 * np.pi)).astype(np.int64)

    depth_sd = _lookup(stage, _DEPTH_SD, stage_keys)
    depth = np.exp(rng.standard_normal(breath_index[-1] + 1 if n else 1))[breath_index] ** depth_sd
    depth = bandpass(depth, FS, None, 1.0, order=1)

    gains = _EventGains(n, rng, 60.0 / plan.subject.breathing_rate_bpm)
    events = plan.respiratory_events
    for i, ev in enumerate(events):
        next_onset = events[i + 1].onset_s if i + 1 < len(events) else plan.duration_s
        gains.add_event(ev, next_onset)
    for arousal in plan.arousals:
        if arousal.subtype != "respiratory" and not any(
            e.overlaps(arousal.onset_s - 5.0, arousal.end_s + 5.0) for e in events
        ):
            gains.add_deep_breaths(arousal.onset_s, float(rng.uniform(6.0, 10.0)), float(rng.uniform(1.2, 1.4)))

    warped = _warp(phase)
    volume = -np.cos(warped)
    flow_shape = np.sin(warped)
    limited = flow_shape > gains.flatten
    flow_shape = np.where(limited, gains.flatten, flow_shape) / np.where(flow_shape > 0, gains.flatten, 1.0)

    gain = plan.subject.resp_gain
    thx_gain, abd_gain = gain * rng.uniform(0.6, 0.9), gain * rng.uniform(0.8, 1.1)
    flow_gain = gain * rng.uniform(0.5, 0.8)
    abd_volume = -np.cos(_warp(phase - gains.paradox))
    thx = thx_gain * depth * gains.effort * volume
    abd = abd_gain * depth * gains.effort * abd_volume
    af = flow_gain * depth * gains.flow * flow_shape

    thx += thx_gain * (_noise(rng, n, 2.0, NOISE_SD) + _noise(rng, n, 0.02, 0.05))
    abd += abd_gain * (_noise(rng, n, 2.0, NOISE_SD) + _noise(rng, n, 0.02, 0.05))
    af += flow_gain * _noise(rng, n, 2.0, NOISE_SD)
    unit = CHANNELS[AF].unit
    return Breathing(
        signals={
            ABD: Signal(ABD, abd, FS, unit),
            THX: Signal(THX, thx, FS, unit),
            AF: Signal(AF, af, FS, unit),
        },
        phase=phase,
    )


class _EventGains:
    """Per-sample multipliers for flow and effort, inspiratory flattening and ABD phase lag."""

    def __init__(self, n: int, rng: np.random.Generator, breath_s: float) -> None:
        self.rng = rng
        self.breath_s = breath_s
        self.flow = np.ones(n)
        self.effort = np.ones(n)
        self.flatten = np.ones(n)  # 1 = sinusoidal inspiration, lower = flatter (flow limitation)
        self.paradox = np.zeros(n)  # ABD phase lag behind THX, radians (pi = fully paradoxical)

    def _span(self, start_s: float, end_s: float) -> slice:
        return slice(max(0, int(round(start_s * FS))), min(self.flow.size, int(round(end_s * FS))))

    def add_event(self, ev: Event, next_onset_s: float) -> None:
        rng = self.rng
        # the edges ramp outside the scored span, so the reduction holds for the event's full duration
        span = self._span(ev.onset_s - RAMP_S, ev.end_s + RAMP_S)
        m = span.stop - span.start
        if m <= 0:
            return
        ramp = _ramp(m)
        t = np.linspace(0.0, 1.0, m)
        central_part = 0.0
        if ev.type in ("obstructive_apnea", "central_apnea", "mixed_apnea"):
            flow = rng.uniform(0.0, 0.05)
        else:
            flow = rng.uniform(0.3, 0.6)
        if ev.type == "mixed_apnea" or (ev.type == "hypopnea" and ev.subtype == "mixed"):
            central_part = min(max(rng.uniform(0.4, 0.6), 6.0 / ev.duration_s), 0.7)
        self.flow[span] = 1.0 - (1.0 - flow) * ramp

        if ev.type == "central_apnea":
            effort = np.full(m, rng.uniform(0.0, 0.05))
        elif ev.type == "hypopnea" and ev.subtype == "central":
            effort = np.full(m, flow * rng.uniform(0.9, 1.1))
        else:
            obstructed = ev.type != "hypopnea"
            start, stop = (rng.uniform(0.5, 0.8), rng.uniform(1.1, 1.5)) if obstructed else (0.9, 1.0)
            effort = start + (stop - start) * t
            if central_part:
                quiet = rng.uniform(0.0, 0.05) if obstructed else flow
                effort = np.where(t < central_part, quiet, effort)
                effort = np.convolve(effort, np.ones(int(FS)) / FS, mode="same")
            lag = np.pi * (rng.uniform(0.6, 1.0) if obstructed else rng.uniform(0.15, 0.35))
            self.paradox[span] = lag * np.clip(t * ev.duration_s / 4.0, 0.0, 1.0) * (t >= central_part)
            if not obstructed:
                self.flatten[span] = 1.0 - (1.0 - rng.uniform(0.4, 0.6)) * ramp
        self.effort[span] = 1.0 + (effort - 1.0) * ramp

        recovery_s = min(rng.uniform(*RECOVERY_BREATHS) * self.breath_s, next_onset_s - ev.end_s - 2 * RAMP_S)
        if recovery_s > 1.0:
            self.add_deep_breaths(ev.end_s + RAMP_S, recovery_s, rng.uniform(*RECOVERY_GAIN))

    def add_deep_breaths(self, onset_s: float, duration_s: float, gain: float) -> None:
        span = self._span(onset_s, onset_s + duration_s)
        m = span.stop - span.start
        if m <= 0:
            return
        bump = 1.0 + (gain - 1.0) * _ramp(m)
        self.flow[span] *= bump
        self.effort[span] *= bump


def _ramp(m: int, ramp_s: float = RAMP_S) -> np.ndarray:
    """1 inside a span of ``m`` samples with raised-cosine edges of ``ramp_s`` (no step in the signal)."""
    k = min(int(ramp_s * FS), m // 2)
    out = np.ones(m)
    if k:
        rise = 0.5 - 0.5 * np.cos(np.pi * np.arange(k) / k)
        out[:k] = rise
        out[m - k :] = rise[::-1]
    return out


def _warp(phase: np.ndarray) -> np.ndarray:
    """Map breath phase so inspiration (first half of the cosine cycle) lasts ``INSPIRATORY_FRACTION``."""
    cycles, frac = np.divmod(phase / (2.0 * np.pi), 1.0)
    f = INSPIRATORY_FRACTION
    warped = np.where(frac < f, 0.5 * frac / f, 0.5 + 0.5 * (frac - f) / (1.0 - f))
    return 2.0 * np.pi * (cycles + warped)


def _lookup(stage: np.ndarray, table: dict[Stage, float], keys: list[Stage]) -> np.ndarray:
    out = np.empty(stage.size)
    for key in keys:
        out[stage == key] = table[key]
    return out


def _noise(rng: np.random.Generator, n: int, cutoff_hz: float, sd: float) -> np.ndarray:
    """Low-pass Gaussian noise of standard deviation ``sd``."""
    x = bandpass(rng.standard_normal(n), FS, None, cutoff_hz, order=2)
    scaled: np.ndarray = x * (sd / max(float(np.std(x)), 1e-12))
    return scaled
