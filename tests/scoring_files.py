"""Small files for the scoring and short-file tests: a PSG, its hypnogram as a lab writes it, a 6-s file.

Hypnograms are annotation-only EDF+ written with edfio as Sleep-EDF's are (``Sleep stage W|1|2|3|4|R|?``
runs, no signal), so the tests exercise the reader's path for real scoring files, not our own writer's.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import edfio
import numpy as np

from psg.formats import vocabulary as vocab
from psg.formats import write_edf
from psg.montage import CHANNELS, EEG_C3, SPO2
from psg.recording import Recording, Signal
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline
from psg.timeline import Event, Stage, Timeline

#: Our stage codes as Sleep-EDF's R&K annotation text (N3 as stage 3).
RK_TEXT = {Stage.W: "W", Stage.N1: "1", Stage.N2: "2", Stage.N3: "3", Stage.R: "R", Stage.UNSCORED: "?"}


def simulated_night(hours: float = 0.25, seed: int = 2, ahi: float = 30.0) -> Recording:
    """A simulated night with its truth (stages and events) as ``timeline``."""
    return simulate(synthetic_timeline(hours=hours, seed=seed, ahi=ahi), seed=seed)


def write_psg(recording: Recording, path: Path, start: datetime | None = None) -> Path:
    """``recording``'s signals only (no annotations) as EDF, as Sleep-EDF's ``*-PSG.edf`` are."""
    bare = Recording(recording.record_id, dict(recording.signals), start_time=start)
    write_edf(bare, path)
    return path


def write_hypnogram(
    timeline: Timeline,
    path: Path,
    start: datetime | None = None,
    events: bool = True,
    epoch_s: float | None = None,
) -> Path:
    """``timeline`` as an annotation-only EDF+: one run annotation per stage run, then its events."""
    epoch_s = epoch_s or timeline.epoch_s
    annotations = []
    stages = timeline.stages
    first = 0
    for i in range(1, stages.size + 1):
        if i == stages.size or stages[i] != stages[first]:
            text = "Sleep stage " + RK_TEXT[Stage(int(stages[first]))]
            annotations.append(edfio.EdfAnnotation(first * epoch_s, (i - first) * epoch_s, text))
            first = i
    if events:
        annotations += [edfio.EdfAnnotation(e.onset_s, e.duration_s, vocab.event_text(e)) for e in timeline.events]
    dated = {"recording": edfio.Recording(startdate=start.date()), "starttime": start.time()} if start else {}
    edfio.Edf([], annotations=annotations, **dated).write(path)
    return path


def write_events_only(path: Path, n: int = 97, every_s: float = 60.0) -> Path:
    """A CPAP-like event export: ``n`` central apneas, no stage, no signal."""
    events = [Event("central_apnea", 10.0 + i * every_s, 15.0) for i in range(n)]
    edfio.Edf(
        [], annotations=[edfio.EdfAnnotation(e.onset_s, e.duration_s, vocab.event_text(e)) for e in events]
    ).write(path)
    return path


def write_short_psg(path: Path, seconds: float = 6.0) -> Path:
    """A PSG of ``seconds`` (EEG and SpO2 on montage labels, so only its length is wrong)."""
    rng = np.random.default_rng(0)
    signals = {
        EEG_C3: Signal(EEG_C3, rng.normal(0.0, 20.0, int(seconds * 256)), 256.0, CHANNELS[EEG_C3].unit),
        SPO2: Signal(SPO2, np.full(int(seconds * 4), 96.0), 4.0, CHANNELS[SPO2].unit),
    }
    write_edf(Recording("short", signals), path)
    return path
