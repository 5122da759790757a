"""Caption a whole night: per-epoch records (features, stage, events, captions) plus the night summary.

Stages and events are the recording's own annotations (``recording.timeline``: the simulator's truth
or a scorer's EDF+/XML annotations) when it has them. A file without stage annotations is staged by the
caller's ``StageEstimate`` (the CLI's: the shipped model's stage head, what ``sleeplm stage`` says), else
by the transparent rule stager (``psg.staging``; the records then say ``stage_source: "rules"`` and the
stage sentence calls the stage an estimate, so nobody mistakes it for a scorer's); its events come from
the AASM rule detectors (``psg.detectors``).

Nothing is claimed about a channel group the recording does not have (``psg.captions.availability``,
read from the signals after channel recognition): its caption level says so plainly ("No SpO2
recorded."), its events (scored or detected) are left out of the records and the summary, and the
summary's indices that need it are None with the reason under ``not_recorded``.

An epoch in a recording gap (EDF+D, ``Recording.gaps``) is flagged ``quality: ["gap"]``, has no features,
stage '?' unless the scoring gives it one, and captions that say nothing was recorded (``psg.captions.gaps``);
the summary counts it as gap time, not as time in bed (``psg.summary``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from psg.captions.availability import channel_groups, recorded_events
from psg.captions.epoch import caption_epoch
from psg.captions.gaps import GAP_FLAG, gap_captions, gap_sentence
from psg.captions.phrasing import Style
from psg.captions.stage_event import StageContext, clip_to_epoch, in_epoch
from psg.detectors import DetectedEvent, detect_events
from psg.detectors.base import to_events
from psg.features import epoch_features
from psg.montage import SPO2
from psg.recording import Recording
from psg.staging import rule_stages
from psg.summary import night_summary, summary_caption
from psg.timeline import EPOCH_S, Event, Stage, first_epochs


@dataclass(frozen=True)
class StageEstimate:
    """Stages of a recording without scored stages from a stager outside ``psg`` (the model's stage head,
    ``sleeplm.stage_estimate``): ``stages`` (n,) ``Stage`` values, UNSCORED where it could not vouch for
    one; ``source`` what the records and the summary say staged them (e.g. "model")."""

    stages: np.ndarray
    source: str


def caption_night(
    recording: Recording,
    *,
    style: Style = "canonical",
    seed: int = 0,
    progress: bool = False,
    detected: list[DetectedEvent] | None = None,
    estimate: StageEstimate | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One record per whole 30-s epoch and the night summary.

    Each record is ``{"epoch", "start_s", "stage", "stage_source", "quality", "features", "captions",
    "events"}`` with ``stage`` as its label ('W', 'N1', ..., '?'), ``quality`` the epoch's flags (``["gap"]``
    in a recording gap, else empty) and ``events`` the events overlapping the epoch
    (recording-relative onset and duration plus the span clipped to the epoch). ``seed`` drives the
    phrasing when ``style='varied'``. The summary is ``psg.summary.night_summary`` plus ``caption``,
    ``stage_source`` and ``event_source`` (and ``not_recorded``, see the module docstring). Callers that
    already ran ``detect_events`` on this recording pass the result as ``detected`` so a file without
    annotations is not analysed twice. ``estimate``: the stages of a recording without scored stages (else
    the rule stager's).
    """
    features = epoch_features(recording)
    n = len(features)
    gap = recording.gap_epochs()[:n]
    timeline = recording.timeline
    if timeline is not None and timeline.is_scored:
        stages, stage_source = first_epochs(timeline.stages, n), "annotation"
    elif estimate is not None:
        stages, stage_source = first_epochs(estimate.stages, n), estimate.source
        stages[gap] = int(Stage.UNSCORED)
    else:
        stages = rule_stages(features).astype(np.int64)
        stages[gap] = int(Stage.UNSCORED)  # nothing was recorded: no estimate
        stage_source = "rules"
    if timeline is not None:
        events, event_source = list(timeline.events), "annotation"
    else:
        events = to_events(detect_events(recording) if detected is None else detected)
        event_source = "detectors"
    groups = channel_groups(recording)
    events = recorded_events(events, recording)

    by_epoch = _events_by_epoch(events, n)
    stage_list = [Stage(int(s)) for s in stages]
    rng = np.random.default_rng(seed)
    records = []
    for i in tqdm(range(n), disable=not progress, desc=f"captioning {recording.record_id}", unit="epoch"):
        start = i * EPOCH_S
        epoch_events = by_epoch.get(i, [])
        captions = caption_epoch(
            features[i],
            stage_list[i],
            epoch_events,
            start,
            context=StageContext.around(stage_list, i),
            style=style,
            rng=rng,
            estimated=stage_source == "rules",
            groups=groups,
        )
        if gap[i]:
            captions = gap_captions(captions, gap_sentence(recording.gaps, start), stage_list[i] != Stage.UNSCORED)
        records.append(
            {
                "epoch": i,
                "start_s": start,
                "stage": stage_list[i].label,
                "stage_source": stage_source,
                "quality": [GAP_FLAG] if gap[i] else [],
                "features": features[i],
                "captions": captions,
                "events": [_event_record(e, start) for e in epoch_events],
            }
        )
    summary = night_summary(
        stages,
        events,
        recording.get(SPO2),
        epoch_s=EPOCH_S,
        arousals_scored=event_source == "annotation",
        groups=groups,
        gaps=recording.gaps,
    )
    summary.update(caption=summary_caption(summary), stage_source=stage_source, event_source=event_source)
    return records, summary


def _events_by_epoch(events: list[Event], n_epochs: int) -> dict[int, list[Event]]:
    """Each event under every epoch it overlaps (an event may span several epochs)."""
    out: dict[int, list[Event]] = defaultdict(list)
    for event in events:
        first = int(event.onset_s // EPOCH_S)
        last = int(event.end_s // EPOCH_S)
        for i in range(max(first, 0), min(last, n_epochs - 1) + 1):
            if in_epoch(event, i * EPOCH_S):
                out[i].append(event)
    return out


def _event_record(event: Event, epoch_start_s: float) -> dict[str, Any]:
    start, end = clip_to_epoch(event, epoch_start_s)
    return {
        "type": event.type,
        "subtype": event.subtype,
        "channel": event.channel,
        "onset_s": event.onset_s,
        "duration_s": event.duration_s,
        "start_in_epoch_s": round(start, 3),
        "end_in_epoch_s": round(end, 3),
    }
