"""What the alert engine needs to know about an epoch, whichever message it came in.

The engine judges an epoch by its bed, recording, timing, per-second SpO2 and heart rate, quality flags
and detector events. An ``EpochMessage`` (``psg.epochs``) has all of these; so does a ``sleep.captions``
record, which the live alert agent consumes because it also carries the model's advisories, the
caption and the embedding the watch rules are scored on. ``EpochFacts`` is that common shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from psg.codecs import MAX_EPOCH_S
from psg.contracts import AuxSeries, CaptionRecord
from psg.errors import MessageError
from psg.timeline import EPOCH_S


class EpochFacts(Protocol):
    """An epoch as the engine reads it: ``aux`` is (2, n) SpO2 % and HR bpm at 1 Hz (NaN = absent)."""

    # read-only members: a frozen dataclass (RecordFacts) and an EpochMessage both provide them
    @property
    def bed_id(self) -> str: ...

    @property
    def recording_id(self) -> str: ...

    @property
    def epoch(self) -> int: ...

    @property
    def start_time(self) -> float: ...

    @property
    def epoch_s(self) -> float: ...

    @property
    def aux(self) -> np.ndarray: ...

    @property
    def quality(self) -> dict[str, list[str]]: ...

    @property
    def events(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class RecordFacts:
    """``EpochFacts`` of a caption record (``facts_from_record``)."""

    bed_id: str
    recording_id: str
    epoch: int
    start_time: float
    epoch_s: float
    aux: np.ndarray
    quality: dict[str, list[str]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


def aux_record(aux: np.ndarray) -> AuxSeries:
    """The caption record's ``aux`` field from an ``EpochMessage.aux``: per-second SpO2 and HR, None where absent."""
    values = np.asarray(aux, dtype=float)
    rows = [values[i] if i < values.shape[0] else np.full(0, np.nan) for i in range(2)]
    spo2, hr = ([round(float(v), 2) if math.isfinite(v) else None for v in row] for row in rows)
    return AuxSeries(spo2=spo2, hr=hr)


def facts_from_record(record: CaptionRecord | dict[str, Any]) -> RecordFacts:
    """``RecordFacts`` of a decoded ``sleep.captions`` record (already validated by ``store.caption_values``);
    ``MessageError`` naming the field when ``aux`` is malformed. A record without ``aux`` (an older
    producer) gives NaN series: no SpO2/HR rule can fire on it, the others still do."""
    epoch_s = float(record.get("epoch_s") or EPOCH_S)
    if not 0 < epoch_s <= MAX_EPOCH_S:  # the per-second series below are this long: never allocate 1e10 seconds
        raise MessageError(f"caption record field 'epoch_s': expected 0 < epoch_s <= {MAX_EPOCH_S:g}, got {epoch_s!r}")
    n = int(round(epoch_s))
    aux = np.full((2, n), np.nan)
    given = record.get("aux")
    if given is not None:
        if not isinstance(given, dict):
            raise MessageError("caption record field 'aux': expected an object with 'spo2' and 'hr' lists")
        for row, name in enumerate(("spo2", "hr")):
            series = given.get(name) or []
            if not isinstance(series, list) or len(series) > 10 * n:
                raise MessageError(f"caption record field 'aux.{name}': expected a list of per-second values")
            try:
                values = np.array([np.nan if v is None else float(v) for v in series], dtype=float)
            except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond any float
                raise MessageError(f"caption record field 'aux.{name}': expected numbers or null") from None
            aux[row, : min(n, len(values))] = values[:n]
    return RecordFacts(
        bed_id=record["bed_id"],
        recording_id=record["recording_id"],
        epoch=int(record["epoch"]),
        start_time=float(record["start_time"]),
        epoch_s=epoch_s,
        aux=aux,
        quality=dict(record.get("quality") or {}),
        events=list(record.get("events") or []),
    )
