"""The night plan: everything the channel renderers share, decided once before any signal is drawn.

A ``NightPlan`` turns a scored ``Timeline`` into the rendered truth: a per-second stage track, the
respiratory events placed at exact times (epoch-resolution events from slpdb get a realistic span
inside their epoch), arousals (scored ones plus the arousals that terminate many respiratory events),
body-position segments and, optionally, artifacts. Channel renderers (``neuro``, ``cardiac``,
``respiration``, ``artifacts``) only read the plan, so they agree on when things happen, and each
draws noise from its own named random stream, so adding a channel never changes another.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from psg.simulate.subject import SubjectParams
from psg.timeline import RESPIRATORY_EVENT_TYPES, Event, Stage, Timeline

#: Probability that a respiratory event of this type ends with a cortical arousal (rendered and scored).
POST_EVENT_AROUSAL_P = {"obstructive_apnea": 0.7, "mixed_apnea": 0.7, "central_apnea": 0.4, "hypopnea": 0.5}
AROUSAL_S = (3.0, 12.0)  # AASM: an arousal lasts >= 3 s; most last under 15 s
ARTIFACT_TYPES = ("electrode_pop", "lead_off", "clipping", "movement", "mains")


@dataclass
class NightPlan:
    """Rendered truth for one night, shared by all channel renderers."""

    timeline: Timeline
    seed: int
    subject: SubjectParams
    duration_s: float
    stage_per_s: np.ndarray  # int8 Stage code for every second
    respiratory_events: list[Event]
    arousals: list[Event]
    position_per_s: np.ndarray  # int8 POS code for every second
    artifacts: list[Event] = field(default_factory=list)
    other_events: list[Event] = field(default_factory=list)  # limb movements etc. passed through

    def rng(self, name: str) -> np.random.Generator:
        """A random stream private to one renderer, reproducible from (seed, name)."""
        return np.random.default_rng([self.seed, zlib.crc32(name.encode())])

    def n_samples(self, fs: float) -> int:
        return int(round(self.duration_s * fs))

    def per_sample(self, per_second: np.ndarray, fs: float) -> np.ndarray:
        """Hold a 1-Hz track (stages, positions) at rate ``fs``."""
        idx = np.minimum((np.arange(self.n_samples(fs)) / fs).astype(np.int64), per_second.size - 1)
        return per_second[idx]

    def envelope(self, events: list[Event], fs: float, ramp_s: float = 1.0) -> np.ndarray:
        """0..1 envelope at ``fs`` that is 1 inside the events, with raised-cosine ramps of ``ramp_s``."""
        n = self.n_samples(fs)
        env = np.zeros(n)
        t_ramp = np.arange(int(ramp_s * fs)) / (ramp_s * fs)
        rise = 0.5 - 0.5 * np.cos(np.pi * t_ramp)
        for ev in events:
            i0, i1 = int(ev.onset_s * fs), min(n, int(ev.end_s * fs))
            if i1 <= i0:
                continue
            seg = np.ones(i1 - i0)
            k = min(rise.size, seg.size // 2)
            if k:
                seg[:k] = rise[:k]
                seg[-k:] = rise[:k][::-1]
            env[i0:i1] = np.maximum(env[i0:i1], seg)
        return env

    def truth_events(self) -> list[Event]:
        """Every rendered event, in time order (what the EDF+ annotations record)."""
        return sorted(
            self.respiratory_events + self.arousals + self.artifacts + self.other_events,
            key=lambda e: (e.onset_s, e.type),
        )


def make_plan(timeline: Timeline, seed: int = 0, artifacts: bool = False) -> NightPlan:
    """Place every event of ``timeline`` in time and draw the per-night subject."""
    base = np.random.default_rng([seed, zlib.crc32(b"plan")])
    subject = SubjectParams.draw(base)
    duration_s = timeline.duration_s
    n_s = int(duration_s)
    stage_per_s = np.repeat(timeline.stages, int(timeline.epoch_s))[:n_s].astype(np.int8)

    respiratory = [_place_epoch_event(ev, base) for ev in timeline.events_of(*RESPIRATORY_EVENT_TYPES)]
    arousals = [_place_epoch_event(ev, base) for ev in timeline.events_of("arousal")]
    for ev in respiratory:
        if base.random() < POST_EVENT_AROUSAL_P[ev.type] and not any(
            a.overlaps(ev.end_s - 2.0, ev.end_s + 8.0) for a in arousals
        ):
            arousals.append(Event("arousal", ev.end_s - 1.0, float(base.uniform(*AROUSAL_S)), subtype="respiratory"))
    arousals = [a for a in arousals if a.end_s <= duration_s]
    passthrough = [
        _place_epoch_event(ev, base) for ev in timeline.events if ev.type not in RESPIRATORY_EVENT_TYPES + ("arousal",)
    ]
    position_per_s, position_events = _positions(stage_per_s, base)
    plan = NightPlan(
        timeline=timeline,
        seed=seed,
        subject=subject,
        duration_s=duration_s,
        stage_per_s=stage_per_s,
        respiratory_events=sorted(respiratory, key=lambda e: e.onset_s),
        arousals=sorted(arousals, key=lambda e: e.onset_s),
        position_per_s=position_per_s,
        other_events=passthrough + position_events,
    )
    if artifacts:
        plan.artifacts = _draw_artifacts(plan, base)
    return plan


def _place_epoch_event(ev: Event, rng: np.random.Generator) -> Event:
    """Give an epoch-resolution event (slpdb) a plausible exact span inside its epoch."""
    if not ev.epoch_resolution:
        return ev
    if ev.type in RESPIRATORY_EVENT_TYPES:
        duration = float(rng.uniform(12.0, 24.0))
    elif ev.type == "arousal":
        duration = float(rng.uniform(*AROUSAL_S))
    else:
        duration = float(rng.uniform(2.0, 8.0))
    onset = ev.onset_s + float(rng.uniform(0.0, max(0.0, ev.duration_s - duration)))
    return Event(ev.type, round(onset, 2), round(duration, 2), subtype=ev.subtype, channel=ev.channel)


def _positions(stage_per_s: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[Event]]:
    """Body position track: changes happen mostly around wake, as people turn over when they wake.

    Starts supine (lights-off posture); at each wake bout a change happens with probability 0.35,
    plus rare changes (about one per 2 h) during sleep, each to a different lying position.
    """
    n = stage_per_s.size
    pos = np.full(n, 2, dtype=np.int8)
    events: list[Event] = []
    current = 2
    wake_onsets = np.flatnonzero(np.diff((stage_per_s == Stage.W).astype(np.int8)) == 1) + 1
    candidates = [int(t) for t in wake_onsets if rng.random() < 0.35]
    candidates += [int(t) for t in rng.uniform(0, n, size=rng.poisson(n / 7200.0))]
    for t in sorted(set(candidates)):
        new = int(rng.choice([p for p in (0, 1, 2, 3) if p != current], p=None))
        pos[t:] = new
        events.append(Event("position_change", float(t), 0.0, subtype=_POS_NAMES[new]))
        current = new
    return pos, events


_POS_NAMES = {0: "right", 1: "left", 2: "supine", 3: "prone", 4: "upright"}


def _draw_artifacts(plan: NightPlan, rng: np.random.Generator) -> list[Event]:
    """Scatter artifacts over the night (about 6 per hour, kinds and channels at random)."""
    from psg.montage import ABD, AF, ECG, EEG_C3, EEG_C4, EMG_CHIN, EOG_L, EOG_R, SPO2, THX

    channels = {
        "electrode_pop": (EEG_C3, EEG_C4, EOG_L, EOG_R, EMG_CHIN, ECG),
        "lead_off": (EEG_C3, EEG_C4, EOG_L, EOG_R, EMG_CHIN, ECG, ABD, THX, AF, SPO2),
        "clipping": (EEG_C3, EEG_C4, EOG_L, EOG_R, ECG),
        "movement": (EEG_C3,),  # movement hits every channel; EEG C3 names it
        "mains": (EEG_C3, EEG_C4, EOG_L, EOG_R, EMG_CHIN, ECG),
    }
    durations = {
        "electrode_pop": (0.5, 2.0),
        "lead_off": (30.0, 300.0),
        "clipping": (5.0, 60.0),
        "movement": (5.0, 30.0),
        "mains": (60.0, 600.0),
    }
    out: list[Event] = []
    for _ in range(rng.poisson(plan.duration_s / 3600.0 * 6.0)):
        kind = str(rng.choice(ARTIFACT_TYPES))
        duration = float(rng.uniform(*durations[kind]))
        onset = float(rng.uniform(0.0, max(0.0, plan.duration_s - duration)))
        out.append(
            Event(
                "artifact", round(onset, 2), round(duration, 2), subtype=kind, channel=str(rng.choice(channels[kind]))
            )
        )
    return sorted(out, key=lambda e: e.onset_s)


@dataclass
class Rendered:
    """What one renderer returns: its channels, the truth events it created (e.g. desaturations it
    drew), and the heartbeat times it used (cardiac renderer only)."""

    signals: dict[str, Signal]
    events: list[Event] = field(default_factory=list)
    beat_times_s: np.ndarray | None = None


from psg.recording import Signal  # noqa: E402  (after Rendered: only a type, kept out of the plan's imports)
