"""Render a scored ``Timeline`` into physiologically plausible multichannel PSG.

The simulator is the ground the whole product is trained and tested on (no raw PSG is available on
our machines), so every epoch it draws has a known truth: the stages and events of the timeline plus
everything the simulator itself placed (arousals ending respiratory events, desaturations, position
changes, artifacts). ``simulate`` returns a ``Recording`` whose ``timeline`` is that truth; writing it
with ``psg.formats.edf.write_edf`` stores the truth as EDF+ annotations so it travels with the file.

Channels and rates follow ``psg.montage.CHANNELS``. Determinism: the same (timeline, seed, artifacts)
gives bit-identical signals.
"""

from __future__ import annotations

import numpy as np

from psg.montage import CHANNELS, POS
from psg.recording import ORIGIN, SIMULATED, Recording, Signal
from psg.simulate.artifacts import apply_artifacts
from psg.simulate.cardiorespiratory import render_cardiorespiratory
from psg.simulate.neuro import render_neuro
from psg.simulate.plan import NightPlan, make_plan
from psg.timeline import Timeline

__all__ = ["simulate", "make_plan", "NightPlan"]


def simulate(timeline: Timeline, seed: int = 0, artifacts: bool = False) -> Recording:
    """Simulate the night described by ``timeline``.

    Parameters
    ----------
    timeline : the scored night (stages, events, optional real beat times).
    seed : per-night random seed; the subject's physiology and all noise follow from it.
    artifacts : if True, scatter electrode pops, lead-off, clipping, movement and mains hum
        (about six per hour), each recorded as an ``artifact`` event naming its channel.
    """
    plan = make_plan(timeline, seed=seed, artifacts=artifacts)
    neuro = render_neuro(plan)
    cardioresp = render_cardiorespiratory(plan)
    signals: dict[str, Signal] = {**neuro.signals, **cardioresp.signals}
    signals[POS] = Signal(POS, plan.position_per_s.astype(np.float64), CHANNELS[POS].fs, CHANNELS[POS].unit)
    if plan.artifacts:
        apply_artifacts(plan, signals)
    ordered = {label: signals[label] for label in CHANNELS if label in signals}
    truth = Timeline(
        record_id=timeline.record_id,
        stages=timeline.stages,
        events=plan.truth_events() + neuro.events + cardioresp.events,
        epoch_s=timeline.epoch_s,
        beat_times_s=cardioresp.beat_times_s,
        minute_labels=dict(timeline.minute_labels),
        start_time=timeline.start_time,
        source=f"simulated from {timeline.source or timeline.record_id} (seed {seed})",
    )
    return Recording(
        record_id=timeline.record_id,
        signals=ordered,
        start_time=timeline.start_time,
        timeline=truth,
        metadata={"simulator_seed": str(seed), "artifacts": str(artifacts).lower(), ORIGIN: SIMULATED},
    )
