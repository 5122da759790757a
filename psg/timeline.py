"""The one ``Timeline`` type every annotation format is read into.

A timeline is what an expert scorer says happened during a night: a hypnogram of 30-s epochs, a list
of scored events (respiratory, arousal, limb, ...) with onset and duration in seconds from recording
start, and, where the source has them, real heartbeat times and per-minute labels. It is the truth the
simulator renders into signals and the reference the detectors and captions are checked against.

Event types use one snake_case vocabulary across formats (see ``EVENT_TYPES``); hypopneas keep their
obstructive / central / mixed flavour in ``Event.subtype`` because scoring rules call them all
"hypopnea" while the simulator must render them differently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

import numpy as np

from psg.errors import PSGError

EPOCH_S = 30.0


class Stage(IntEnum):
    """AASM sleep stages; R&K S3 and S4 are both N3. ``UNSCORED`` covers '?', movement and artifact epochs."""

    UNSCORED = -1
    W = 0
    N1 = 1
    N2 = 2
    N3 = 3
    R = 4

    @property
    def label(self) -> str:
        """Short label used in captions, JSON and EDF+ annotations ('W', 'N1', ..., 'R', '?')."""
        return "?" if self is Stage.UNSCORED else self.name

    @classmethod
    def from_label(cls, text: str) -> Stage:
        """Parse 'W', 'N1'..'N3', 'R'/'REM', R&K '1'..'4', 'S1'..'S4'; anything unscored -> UNSCORED."""
        key = text.strip().upper().replace("SLEEP STAGE", "").strip()
        if key in _STAGE_ALIASES:
            return _STAGE_ALIASES[key]
        raise PSGError(f"unknown sleep stage label {text!r}; expected one of W, N1, N2, N3, R, 1-4, ?")


_STAGE_ALIASES: dict[str, Stage] = {
    "W": Stage.W,
    "WAKE": Stage.W,
    "0": Stage.W,
    "N1": Stage.N1,
    "1": Stage.N1,
    "S1": Stage.N1,
    "N2": Stage.N2,
    "2": Stage.N2,
    "S2": Stage.N2,
    "N3": Stage.N3,
    "3": Stage.N3,
    "S3": Stage.N3,
    "4": Stage.N3,
    "S4": Stage.N3,
    "N4": Stage.N3,
    "R": Stage.R,
    "REM": Stage.R,
    "5": Stage.R,
    "?": Stage.UNSCORED,
    "M": Stage.UNSCORED,
    "MT": Stage.UNSCORED,
    "MOVEMENT": Stage.UNSCORED,
    "UNSCORED": Stage.UNSCORED,
    "ARTIFACT": Stage.UNSCORED,
    "INDETERMINATE": Stage.UNSCORED,
}

#: Canonical event types. Respiratory: the apnea flavours, ``apnea`` (unclassified: no effort sensor could
#: tell its type, as scorers mark it on a recording without usable belts) and ``hypopnea`` (with ``subtype``).
RESPIRATORY_EVENT_TYPES = ("obstructive_apnea", "central_apnea", "mixed_apnea", "apnea", "hypopnea")
EVENT_TYPES = RESPIRATORY_EVENT_TYPES + (
    "arousal",
    "desaturation",
    "limb_movement",
    "movement",
    "bradycardia",
    "tachycardia",
    "asystole",
    "signal_loss",
    "position_change",
    "artifact",
)


@dataclass(frozen=True)
class Event:
    """One scored or rendered event.

    ``onset_s``/``duration_s`` are seconds from recording start. ``subtype`` refines the type
    (hypopnea: obstructive/central/mixed; artifact: electrode_pop/lead_off/clipping/movement/mains;
    position_change: the new position name). ``channel`` names the signal an event is tied to, if any.
    ``epoch_resolution`` is True where the source only says "this epoch contains the event" (slpdb):
    the onset is then the epoch start and the duration the epoch length, not a measured span.
    """

    type: str
    onset_s: float
    duration_s: float
    subtype: str | None = None
    channel: str | None = None
    epoch_resolution: bool = False

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise PSGError(f"unknown event type {self.type!r}; expected one of {', '.join(EVENT_TYPES)}")
        if not np.isfinite(self.onset_s) or self.onset_s < 0:
            raise PSGError(f"event {self.type}: onset_s must be a finite number >= 0, got {self.onset_s!r}")
        if not np.isfinite(self.duration_s) or self.duration_s < 0:
            raise PSGError(f"event {self.type}: duration_s must be a finite number >= 0, got {self.duration_s!r}")

    @property
    def end_s(self) -> float:
        return self.onset_s + self.duration_s

    def overlaps(self, start_s: float, end_s: float) -> bool:
        """True if the event shares any time with [start_s, end_s)."""
        return self.onset_s < end_s and self.end_s > start_s


@dataclass
class Timeline:
    """A scored night.

    ``stages`` holds one ``Stage`` value per ``epoch_s`` epoch (int8 array). ``beat_times_s`` are
    real R-peak times in seconds (slpdb, Apnea-ECG) or None. ``minute_labels`` maps a label name to
    one value per minute (Apnea-ECG's expert ``apnea`` flags). ``start_time`` is the wall-clock start
    where the source states it.
    """

    record_id: str
    stages: np.ndarray
    events: list[Event] = field(default_factory=list)
    epoch_s: float = EPOCH_S
    beat_times_s: np.ndarray | None = None
    minute_labels: dict[str, np.ndarray] = field(default_factory=dict)
    start_time: datetime | None = None
    source: str = ""

    def __post_init__(self) -> None:
        stages = np.asarray(self.stages)
        if stages.ndim != 1:
            raise PSGError(f"{self.record_id}: stages must be one value per epoch (1-D), got shape {stages.shape}")
        valid = {int(s) for s in Stage}
        bad = sorted(set(np.unique(stages).tolist()) - valid)
        if bad:
            raise PSGError(f"{self.record_id}: stage codes {bad} are not Stage values {sorted(valid)}")
        self.stages = stages.astype(np.int8)
        if self.beat_times_s is not None:
            beats = np.asarray(self.beat_times_s, dtype=np.float64)
            if beats.ndim != 1 or (beats.size > 1 and np.any(np.diff(beats) <= 0)):
                raise PSGError(f"{self.record_id}: beat_times_s must be strictly increasing seconds")
            self.beat_times_s = beats
        self.events = sorted(self.events, key=lambda e: (e.onset_s, e.type))

    @property
    def n_epochs(self) -> int:
        return int(self.stages.size)

    @property
    def duration_s(self) -> float:
        return self.n_epochs * self.epoch_s

    @property
    def is_scored(self) -> bool:
        """True when a scorer staged at least one epoch (an events-only timeline is not)."""
        return bool(np.any(self.stages != Stage.UNSCORED))

    def stage_at(self, t_s: float) -> Stage:
        """Stage of the epoch containing time ``t_s`` (UNSCORED outside the night)."""
        i = int(t_s // self.epoch_s)
        return Stage(int(self.stages[i])) if 0 <= i < self.n_epochs else Stage.UNSCORED

    def events_of(self, *types: str) -> list[Event]:
        return [e for e in self.events if e.type in types]

    def events_in(self, start_s: float, end_s: float) -> list[Event]:
        return [e for e in self.events if e.overlaps(start_s, end_s)]

    def sleep_period(self) -> tuple[int, int] | None:
        """(first, last) epoch index scored as sleep (N1-N3, R), or None for a night without sleep."""
        asleep = np.flatnonzero(np.isin(self.stages, (Stage.N1, Stage.N2, Stage.N3, Stage.R)))
        return (int(asleep[0]), int(asleep[-1])) if asleep.size else None


def first_epochs(stages: np.ndarray, n: int) -> np.ndarray:
    """``stages`` as ``n`` epochs (int64 ``Stage`` codes): cut, or padded with UNSCORED where they end first, so
    a hypnogram lines up with a recording's epochs whichever is longer."""
    out = np.full(n, int(Stage.UNSCORED), dtype=np.int64)
    k = min(n, len(stages))
    out[:k] = stages[:k]
    return out
