"""A multichannel PSG recording held in memory: signals at their own rates plus annotations.

This is what the simulator produces, what EDF/EDF+ files are read into and written from, and what
features, detectors and captions consume. Signals keep their device rates; resampling to the model
montage happens where the model needs it, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from psg.errors import PSGError
from psg.montage import CHANNELS
from psg.timeline import Timeline


@dataclass
class Signal:
    """One channel: samples (float64, physical unit) at ``fs`` Hz."""

    label: str
    data: np.ndarray
    fs: float
    unit: str

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data, dtype=np.float64)
        if self.data.ndim != 1:
            raise PSGError(f"signal {self.label!r}: expected 1-D samples, got shape {self.data.shape}")
        if not self.fs > 0:
            raise PSGError(f"signal {self.label!r}: sampling rate must be > 0 Hz, got {self.fs!r}")

    @property
    def duration_s(self) -> float:
        return self.data.size / self.fs

    def window(self, start_s: float, end_s: float) -> np.ndarray:
        """Samples in [start_s, end_s) (a view, clipped to the recording)."""
        i0 = max(0, int(round(start_s * self.fs)))
        i1 = min(self.data.size, int(round(end_s * self.fs)))
        return self.data[i0:i1]


@dataclass
class Recording:
    """Signals by label plus the scored truth (stages and events) where the file carries it."""

    record_id: str
    signals: dict[str, Signal]
    start_time: datetime | None = None
    timeline: Timeline | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return max((s.duration_s for s in self.signals.values()), default=0.0)

    @property
    def n_epochs(self) -> int:
        """Whole 30-s epochs covered by the recording."""
        return int(self.duration_s // 30.0)

    def get(self, label: str) -> Signal | None:
        return self.signals.get(label)

    def require(self, label: str) -> Signal:
        """The channel ``label`` or a clear error listing what the recording does have."""
        if label not in self.signals:
            raise PSGError(
                f"recording {self.record_id!r} has no channel {label!r}; it has {sorted(self.signals)}"
            )
        return self.signals[label]


def default_unit(label: str) -> str:
    """Physical unit of a standard montage channel ('' for unknown labels)."""
    spec = CHANNELS.get(label)
    return spec.unit if spec else ""
