"""A PSG's scoring from a separate file, put on the PSG's time axis: what every command takes as truth.

Why one module: ``stage`` (accuracy), ``caption`` and ``report`` (stages, indices) and ``detect``
(agreement) must mean the same truth for the same pair of files, found the same way. Which file, first
match wins:

1. ``--scoring FILE``: anything ``read_timeline`` reads (EDF+/BDF+ hypnogram, NSRR XML, ...);
2. ``<stem>.xml`` or ``<stem>-nsrr.xml`` beside the EDF (the NSRR convention, as before);
3. Sleep-EDF's pair: for ``SC4001E0-PSG.edf`` the one ``SC4001*-Hypnogram.edf`` in the same folder (the
   first six characters name the study, subject and night; the next two the technician, so they differ);
4. the PSG's own EDF+ annotations (nothing to do).

Putting a scoring on the PSG's axis: when both files state their start, the scoring is shifted by the
difference (a scorer's export may start at lights off); each PSG epoch takes the scored stage at its
centre, so a 20-s R&K hypnogram or a shifted one lands on the PSG's 30-s epochs. A scored stage more than
one epoch outside the PSG (one partial last epoch is normal) means the wrong file or the wrong night, and
is refused with one line naming the scoring file rather than silently cut.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from psg.channel_map_format import ChannelMapFile
from psg.channels import ChannelReport
from psg.errors import PSGError
from psg.formats.edf import read_mapped_edf
from psg.recording import Recording, require_analysable
from psg.timeline import EPOCH_S, Stage, Timeline

#: ``SC4001E0-PSG.edf`` / ``ST7011J0-PSG.edf``: group 1 is what its hypnogram's name starts with.
_SLEEP_EDF_PSG = re.compile(r"^(S[CT]\d{4})[A-Z0-9]{2}-PSG\.edf$", re.IGNORECASE)
_HYPNOGRAM_SUFFIX = "-hypnogram.edf"
#: ``Recording.metadata`` keys the scoring's path and how it was found are kept under (commands print them).
SCORING_KEY = "scoring"
SCORING_FROM_KEY = "scoring_from"


def read_psg(
    path: str | Path,
    scoring: str | Path | None = None,
    overrides: dict[str, str] | None = None,
    lab_map: ChannelMapFile | None = None,
    allow_annotation_only: bool = False,
) -> tuple[Recording, ChannelReport]:
    """A night for a command: the file on the montage, checked, with its scoring attached.

    ``require_analysable`` (the one rule for annotation-only and shorter-than-one-epoch files) comes before
    the scoring is looked at, so those files get that rule's message. ``allow_annotation_only`` returns an
    annotation-only file as it is (``report`` reports the night it scores).
    """
    path = Path(path)
    recording, report = read_mapped_edf(path, overrides, lab_map)
    if not (allow_annotation_only and recording.is_annotation_only):
        require_analysable(recording, str(path))
    if recording.signals:
        attach_scoring(recording, path, scoring)
    elif scoring is not None:
        raise PSGError(f"{path}: annotation-only file: --scoring applies to a PSG with signals")
    return recording, report


def attach_scoring(recording: Recording, psg: str | Path, scoring: str | Path | None = None) -> Path | None:
    """Make the scoring of ``psg`` (see the module docstring) ``recording.timeline``; return its path.

    The path and how it was found go to ``recording.metadata`` (``SCORING_KEY``, ``SCORING_FROM_KEY``);
    None (and nothing changed) when the PSG's own annotations are all there is.
    """
    psg = Path(psg)
    found = (Path(scoring), "--scoring") if scoring is not None else find_scoring(psg)
    if found is None:
        return None
    path, how = found
    recording.timeline = align_scoring(read_scoring(path, psg), recording, path)
    recording.metadata[SCORING_KEY] = str(path)
    recording.metadata[SCORING_FROM_KEY] = how
    return path


def find_scoring(psg: Path) -> tuple[Path, str] | None:
    """The scoring file beside ``psg`` and how it was found (NSRR XML, then Sleep-EDF's pair), or None."""
    for xml in (psg.with_suffix(".xml"), psg.with_name(psg.stem + "-nsrr.xml")):
        if xml.is_file():
            return xml, "NSRR XML beside the EDF"
    pair = sleep_edf_pair(psg)
    return (pair, f"Sleep-EDF hypnogram of {psg.name}") if pair is not None else None


def sleep_edf_pair(psg: Path) -> Path | None:
    """``SC4001*-Hypnogram.edf`` beside ``SC4001E0-PSG.edf`` when exactly one exists (two: ambiguous, None)."""
    match = _SLEEP_EDF_PSG.match(psg.name)
    if match is None or not psg.parent.is_dir():
        return None
    prefix = match.group(1).lower()
    pairs = [
        p
        for p in psg.parent.iterdir()
        if p.name.lower().startswith(prefix) and p.name.lower().endswith(_HYPNOGRAM_SUFFIX) and p.is_file()
    ]
    return pairs[0] if len(pairs) == 1 else None


def read_scoring(path: Path, psg: Path) -> Timeline:
    """``read_timeline(path)``; a file it cannot read is one line naming it as the scoring of ``psg``."""
    from psg.formats import read_timeline

    try:
        return read_timeline(path)
    except PSGError as exc:
        raise PSGError(f"{exc} (the scoring of {psg.name})") from None


def align_scoring(timeline: Timeline, recording: Recording, path: Path) -> Timeline:
    """``timeline`` on ``recording``'s 30-s epochs and seconds (see the module docstring)."""
    offset = _offset_s(timeline, recording)
    duration = recording.duration_s
    scored = np.flatnonzero(timeline.stages != Stage.UNSCORED)
    if scored.size:
        first = scored[0] * timeline.epoch_s + offset
        last = (scored[-1] + 1) * timeline.epoch_s + offset
        if last > duration + EPOCH_S or first < -EPOCH_S:
            where = (
                f"end {_hours(last - duration)} after the PSG's end"
                if last > duration + EPOCH_S
                else f"start {_hours(-first)} before the PSG's start"
            )
            raise PSGError(
                f"{path}: scored stages {where} ({recording.record_id} lasts {_hours(duration)}); "
                "expected the scoring of this recording"
            )
    n = math.ceil(round(duration / EPOCH_S, 6))
    index = np.floor(((np.arange(n) + 0.5) * EPOCH_S - offset) / timeline.epoch_s).astype(np.int64)
    inside = (index >= 0) & (index < timeline.n_epochs)
    stages = np.full(n, int(Stage.UNSCORED), dtype=np.int8)
    stages[inside] = timeline.stages[index[inside]]
    beats = timeline.beat_times_s
    if beats is not None:
        beats = beats + offset
        beats = beats[(beats >= 0) & (beats < duration)]
    return replace(
        timeline,
        stages=stages,
        events=[replace(e, onset_s=e.onset_s + offset) for e in timeline.events if 0 <= e.onset_s + offset < duration],
        epoch_s=EPOCH_S,
        beat_times_s=beats if beats is None or beats.size else None,
        minute_labels=timeline.minute_labels if offset == 0 else {},
        start_time=recording.start_time,
    )


def _offset_s(timeline: Timeline, recording: Recording) -> float:
    """Seconds from the PSG's start to the scoring's (0 when either start is unknown)."""
    if timeline.start_time is None or recording.start_time is None:
        return 0.0
    return (timeline.start_time - recording.start_time).total_seconds()


def _hours(seconds: float) -> str:
    return f"{seconds / 3600.0:.2f} h" if abs(seconds) >= 3600 else f"{seconds:.0f} s"
