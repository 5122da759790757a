"""Generate plausible scored nights when no real timeline is at hand.

Tests that must always run, demos on a machine without the shared data, and later the simulated
beds all need a night to render. The hypnogram follows the textbook architecture of a healthy adult
night (Carskadon & Dement, "Normal human sleep", 2011): sleep onset after 5-20 min, four to six
NREM-REM cycles of about 90 min, N3 concentrated in the first third, REM periods lengthening toward
morning, brief awakenings. Respiratory events are scattered over sleep at a requested AHI with the
type mix and durations seen in the shared UCD sleep-apnea database (mostly hypopneas, 10-40 s).
"""

from __future__ import annotations

import numpy as np

from psg.timeline import EPOCH_S, Event, Stage, Timeline

_CYCLE_MIN = 90.0
#: Respiratory event mix (fractions) and subtype mix of hypopneas, from the shared ucddb scoring.
_EVENT_MIX = {"hypopnea": 0.83, "obstructive_apnea": 0.065, "central_apnea": 0.08, "mixed_apnea": 0.025}
_HYPOPNEA_SUBTYPES = {"obstructive": 0.57, "central": 0.40, "mixed": 0.03}


def synthetic_timeline(hours: float = 8.0, seed: int = 0, ahi: float = 10.0, record_id: str | None = None) -> Timeline:
    """A scored night of ``hours`` with respiratory events at about ``ahi`` events per hour of sleep.

    Deterministic per ``seed``. The result carries no heartbeat times, so the simulator draws its own
    heart-rate process.
    """
    if hours <= 0 or ahi < 0:
        raise ValueError(f"hours must be > 0 and ahi >= 0, got hours={hours}, ahi={ahi}")
    rng = np.random.default_rng(seed)
    n_epochs = int(round(hours * 3600 / EPOCH_S))
    stages = _hypnogram(n_epochs, rng)
    events = _respiratory_events(stages, ahi, rng)
    return Timeline(
        record_id=record_id or f"synthetic-{seed}",
        stages=stages,
        events=events,
        source=f"psg.synthetic (hours={hours}, seed={seed}, ahi={ahi})",
    )


def _hypnogram(n_epochs: int, rng: np.random.Generator) -> np.ndarray:
    per_min = int(60 / EPOCH_S)
    stages: list[int] = [Stage.W] * int(rng.uniform(5, 20) * per_min)
    cycle = 0
    while len(stages) < n_epochs:
        night_frac = len(stages) / n_epochs
        n1 = rng.uniform(2, 6)
        n3 = max(0.0, rng.normal(30, 8) * (1.0 - 1.6 * night_frac))
        rem = min(45.0, rng.uniform(8, 15) + 25 * night_frac)
        n2 = max(20.0, _CYCLE_MIN - n1 - n3 - rem + rng.normal(0, 10))
        for stage, minutes in (
            (Stage.N1, n1),
            (Stage.N2, n2 / 2),
            (Stage.N3, n3),
            (Stage.N2, n2 / 2),
            (Stage.R, rem if cycle else rem * 0.5),
        ):
            stages += [stage] * int(minutes * per_min)
        if rng.random() < 0.6:
            stages += [Stage.W] * int(rng.uniform(1, 6))
        cycle += 1
    out = np.asarray(stages[:n_epochs], dtype=np.int8)
    out[-int(rng.uniform(2, 10) * per_min) :] = Stage.W
    return out


def _respiratory_events(stages: np.ndarray, ahi: float, rng: np.random.Generator) -> list[Event]:
    sleep_epochs = np.flatnonzero(np.isin(stages, (Stage.N1, Stage.N2, Stage.R)))  # rare in N3
    if sleep_epochs.size == 0 or ahi == 0:
        return []
    n_events = rng.poisson(ahi * sleep_epochs.size * EPOCH_S / 3600.0)
    events: list[Event] = []
    busy_until = -1.0
    for epoch in np.sort(rng.choice(sleep_epochs, size=min(n_events, sleep_epochs.size), replace=False)):
        onset = float(epoch * EPOCH_S + rng.uniform(0, 10))
        if onset < busy_until:
            continue
        kind = str(rng.choice(list(_EVENT_MIX), p=list(_EVENT_MIX.values())))
        duration = float(np.clip(rng.lognormal(np.log(17.0), 0.3), 10.0, 45.0))
        subtype = (
            str(rng.choice(list(_HYPOPNEA_SUBTYPES), p=list(_HYPOPNEA_SUBTYPES.values())))
            if kind == "hypopnea"
            else None
        )
        events.append(Event(kind, round(onset, 1), round(duration, 1), subtype=subtype))
        busy_until = onset + duration + 15.0
    return events
