"""A multichannel PSG recording held in memory: signals at their own rates plus annotations.

This is what the simulator produces, what EDF/EDF+ files are read into and written from, and what
features, detectors and captions consume. Signals keep their device rates; resampling to the model
montage happens where the model needs it, not here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from psg.errors import PSGError
from psg.montage import CHANNELS
from psg.timeline import EPOCH_S, Timeline

#: ``Recording.metadata`` key saying where the signals came from. The stage head's domain gate reads it:
#: its full head learnt from our simulator only, so it stages what the simulator made and nothing else.
ORIGIN = "origin"
#: Rendered by ``psg.simulate``, or read from an EDF+ file whose header says our simulator wrote it.
SIMULATED = "simulated"
#: Read from any other file: a real recording until its header says otherwise.
RECORDED = "recorded"
#: The EDF+ header's equipment field of a simulated recording (``write_edf``; ``read_edf`` reads it back).
SIMULATOR_EQUIPMENT = "sleeplm-simulator"


@dataclass
class Signal:
    """One channel: samples (float64, physical unit) at ``fs`` Hz.

    ``rails``: the (low, high) physical range the recording declares for this channel, in ``unit``: the
    amplifier's rails, as an EDF/BDF header states them. None where nobody said (simulated and streamed
    signals); the quality checks then assume our montage's typical range (``psg.montage.CHANNELS``). A real
    file's range is its own: belts in volts whose breathing swings 50 uV, an EEG amplifier of +-3.3 mV.
    """

    label: str
    data: np.ndarray
    fs: float
    unit: str
    rails: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data, dtype=np.float64)
        if self.data.ndim != 1:
            raise PSGError(f"signal {self.label!r}: expected 1-D samples, got shape {self.data.shape}")
        if not self.fs > 0:
            raise PSGError(f"signal {self.label!r}: sampling rate must be > 0 Hz, got {self.fs!r}")
        if self.rails is not None:
            low, high = sorted(float(r) for r in self.rails)  # an EDF range may be inverted (min > max)
            self.rails = (low, high) if math.isfinite(low) and math.isfinite(high) and high > low else None

    def with_data(self, data: np.ndarray) -> Signal:
        """This channel (rate, unit, rails) with other samples of it: a slice, a window, a filled copy."""
        return Signal(self.label, data, self.fs, self.unit, self.rails)

    @property
    def duration_s(self) -> float:
        return self.data.size / self.fs

    def window(self, start_s: float, end_s: float) -> np.ndarray:
        """Samples in [start_s, end_s) (a view, clipped to the recording)."""
        i0 = max(0, int(round(start_s * self.fs)))
        i1 = min(self.data.size, int(round(end_s * self.fs)))
        return self.data[i0:i1]


def combined_rails(a: Signal, b: Signal, sign: float = 1.0) -> tuple[float, float] | None:
    """The range ``a + sign * b`` can take (None unless both say theirs): a derivation (``sign`` -1) or a belt
    sum is railed only where its inputs are, and its scale is theirs, not our montage's."""
    if a.rails is None or b.rails is None:
        return None
    ends = [x + sign * y for x in a.rails for y in b.rails]
    return min(ends), max(ends)


@dataclass
class Recording:
    """Signals by label plus the scored truth (stages and events) where the file carries it."""

    record_id: str
    signals: dict[str, Signal]
    start_time: datetime | None = None
    timeline: Timeline | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    #: Stretches ``[start_s, end_s)`` with no data: the gaps between an EDF+D file's records. Every signal
    #: holds 0 there (a flat line), so the time axis stays the recording's; analyses skip them through
    #: ``gap_epochs`` / ``segments`` rather than reading the zeros as a lead-off or an asystole.
    gaps: tuple[tuple[float, float], ...] = ()
    #: Problems the reader tolerated (a recomputed record count, a dropped signal, ...), one line each.
    read_warnings: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return max((s.duration_s for s in self.signals.values()), default=0.0)

    @property
    def n_epochs(self) -> int:
        """Whole 30-s epochs covered by the recording."""
        return int(self.duration_s // EPOCH_S)

    @property
    def is_annotation_only(self) -> bool:
        """A scoring file (hypnogram, event export): annotations and no signal to analyse."""
        return not self.signals and self.timeline is not None

    def gap_epochs(self, epoch_s: float = EPOCH_S) -> np.ndarray:
        """Per whole epoch, True when any of it falls in a gap (nothing was recorded there)."""
        flags = np.zeros(int(self.duration_s // epoch_s), dtype=bool)
        for start, end in self.gaps:
            first, last = int(start // epoch_s), int(np.ceil(end / epoch_s))
            flags[first:last] = True
        return flags

    def segments(self) -> list[tuple[float, float]]:
        """The recorded stretches ``[start_s, end_s)`` between gaps (the whole recording when it has none)."""
        bounds, start = [], 0.0
        for gap_start, gap_end in sorted(self.gaps):
            if gap_start > start:
                bounds.append((start, gap_start))
            start = max(start, gap_end)
        if self.duration_s > start:
            bounds.append((start, self.duration_s))
        return bounds

    def get(self, label: str) -> Signal | None:
        return self.signals.get(label)

    def require(self, label: str) -> Signal:
        """The channel ``label`` or a clear error listing what the recording does have."""
        if label not in self.signals:
            raise PSGError(f"recording {self.record_id!r} has no channel {label!r}; it has {sorted(self.signals)}")
        return self.signals[label]


def require_analysable(recording: Recording, source: str) -> None:
    """The one rule for files a signal analysis cannot use, in every command: ``PSGError`` naming ``source``.

    An annotation-only file (a hypnogram, a scoring export) has no signals to analyse; a recording shorter
    than one 30-s epoch has no epoch to stage, caption or detect in (a partial epoch is never analysed).
    """
    if recording.is_annotation_only or not recording.signals:
        raise PSGError(f"{source}: annotation-only file: no signals to analyse (give it as --scoring, or to `report`)")
    if recording.duration_s < EPOCH_S:
        raise PSGError(
            f"{source}: recording lasts {recording.duration_s:.1f} s, shorter than one {EPOCH_S:g}-s epoch; "
            f"expected at least {EPOCH_S:g} s of signal"
        )


def default_unit(label: str) -> str:
    """Physical unit of a standard montage channel ('' for unknown labels)."""
    spec = CHANNELS.get(label)
    return spec.unit if spec else ""
