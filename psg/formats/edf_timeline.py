"""EDF+ annotations -> a ``Timeline``: stages, events and R-peaks (what ``psg.formats.edf`` writes, and labs' scoring).

Stage annotations (also run-length ones such as Sleep-EDF's, and R&K ``Sleep stage 1..4``) fill their
epochs; R&K ``Movement time`` gives UNSCORED epochs plus a ``movement`` event; event texts in the
vocabulary become events; ``R-peak`` annotations become ``beat_times_s``; other texts (lights on/off,
technician notes) are skipped and logged. None when the file has neither stages nor events nor beats.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import edfio
import numpy as np

from psg.errors import FormatError, PSGError
from psg.formats import vocabulary as vocab
from psg.recording import Recording
from psg.timeline import EPOCH_S, Event, Stage, Timeline

log = logging.getLogger(__name__)

BEAT_TEXT = "R-peak"


def annotations_timeline(
    path: Path, annotations: tuple[edfio.EdfAnnotation, ...], recording: Recording
) -> Timeline | None:
    stage_runs: list[tuple[float, float, Stage]] = []
    events: list[Event] = []
    beats: list[float] = []
    skipped: set[str] = set()
    for ann in annotations:
        duration = ann.duration or 0.0
        if ann.text == BEAT_TEXT:
            beats.append(ann.onset)
        elif vocab.is_stage_text(ann.text):
            try:
                stage_runs.append((ann.onset, duration, vocab.parse_stage_text(ann.text)))
            except PSGError as exc:
                raise FormatError(path, f"annotation at {ann.onset} s: {exc}") from exc
        elif (parsed := vocab.parse_event_text(ann.text)) is not None:
            if vocab.is_movement_time(ann.text):  # R&K scores movement time in place of a stage
                stage_runs.append((ann.onset, duration, Stage.UNSCORED))
            try:
                events.append(parsed.event(ann.onset, duration))
            except PSGError as exc:
                raise FormatError(path, f"annotation {ann.text!r} at {ann.onset} s: {exc}") from exc
        else:
            skipped.add(ann.text)
    if skipped:
        log.info("%s: skipped annotations outside the event vocabulary: %s", path, sorted(skipped))
    if not (stage_runs or events or beats):
        return None
    epoch_s = _epoch_length([d for _, d, _ in stage_runs])
    return Timeline(
        record_id=recording.record_id,
        stages=_stages(stage_runs, epoch_s, recording.duration_s),
        events=events,
        epoch_s=epoch_s,
        beat_times_s=np.unique(beats) if beats else None,
        start_time=recording.start_time,
        source=str(path),
    )


def _epoch_length(durations: list[float]) -> float:
    """30 s (AASM) when every stage annotation spans whole 30-s epochs, else the shortest one (R&K 20 s)."""
    positive = [d for d in durations if d > 0]
    if all(abs(d / EPOCH_S - round(d / EPOCH_S)) < 1e-6 for d in positive):
        return EPOCH_S
    return min(positive)


def _stages(runs: list[tuple[float, float, Stage]], epoch_s: float, duration_s: float) -> np.ndarray:
    """One stage per epoch; a run annotation fills every epoch it covers; gaps between runs are UNSCORED.

    With stage annotations the hypnogram ends where they end; without any, it is UNSCORED for every
    whole epoch of the recording.
    """
    ends = [math.ceil(round((onset + max(d, epoch_s)) / epoch_s, 6)) for onset, d, _ in runs]
    n_epochs = max(ends, default=int(duration_s // epoch_s))
    stages = np.full(n_epochs, Stage.UNSCORED, dtype=np.int8)
    for (onset, _, stage), end in zip(runs, ends, strict=True):
        stages[int(round(onset / epoch_s)) : end] = stage
    return stages
