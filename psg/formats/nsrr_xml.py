"""NSRR XML annotations (the ``PSGAnnotation`` / ``ScoredEvents`` format of the NSRR cohorts).

Layout (SHHS, MESA, CFS, ... as distributed by the National Sleep Research Resource)::

    <PSGAnnotation>
      <EpochLength>30</EpochLength>
      <ScoredEvents>
        <ScoredEvent>
          <EventType/><EventConcept>Recording Start Time</EventConcept>
          <Start>0</Start><Duration>28800.0</Duration><ClockTime>00.00.00 22.31.00</ClockTime>
        </ScoredEvent>
        <ScoredEvent>
          <EventType>Stages|Stages</EventType><EventConcept>Stage 2 sleep|2</EventConcept>
          <Start>30.0</Start><Duration>90.0</Duration>
        </ScoredEvent>
        <ScoredEvent>
          <EventType>Respiratory|Respiratory</EventType>
          <EventConcept>Obstructive apnea|Obstructive Apnea</EventConcept>
          <Start>402.3</Start><Duration>14.2</Duration><SignalLocation>AF</SignalLocation>
        </ScoredEvent>
      </ScoredEvents>
    </PSGAnnotation>

Stage events cover runs of epochs (durations are multiples of the epoch length); R&K 3 and 4 read
as N3, ``Movement|6`` as UNSCORED plus a ``movement`` event, ``Unscored|9`` and uncovered epochs as
UNSCORED. Event concepts follow ``psg.formats.vocabulary``; concepts it does not know (technician
notes, lights, "Unsure") are skipped and logged. The writer adds two things NSRR files do not have
and NSRR tools ignore: ``<EpochResolution>true</EpochResolution>`` on per-epoch events, and a full
date in the start ``ClockTime`` (NSRR anonymises it as ``00.00.00``; a file with that date reads with
``start_time=None``). Beat times and minute labels have no place in this format and are not written.
Times are written with ``repr(float)``, so Timeline -> XML -> Timeline is exact; ``record_id`` is the
file stem.
"""

from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import numpy as np
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from psg.errors import FormatError
from psg.formats import vocabulary as vocab
from psg.timeline import EPOCH_S, Event, Stage, Timeline

log = logging.getLogger(__name__)

STAGES_EVENT_TYPE = "Stages|Stages"
START_CONCEPT = "Recording Start Time"
_CLOCK_FORMAT = "%d.%m.%y %H.%M.%S"


def read_nsrr_xml(path: str | Path) -> Timeline:
    """Read stages and scored events from an NSRR XML file."""
    path = Path(path)
    try:
        root = SafeET.parse(path).getroot()
    except (OSError, ET.ParseError, DefusedXmlException) as exc:
        raise FormatError(path, f"not a readable XML file ({exc})") from exc
    scored = root.find("ScoredEvents")
    if root.tag != "PSGAnnotation" or scored is None:
        raise FormatError(path, f"expected <PSGAnnotation> holding <ScoredEvents>, found <{root.tag}>")
    epoch_s = _number(path, root.findtext("EpochLength") or str(EPOCH_S), "EpochLength")
    if epoch_s <= 0:
        raise FormatError(path, f"EpochLength must be > 0 s, got {epoch_s}")
    start_time: datetime | None = None
    stage_runs: list[tuple[float, float, Stage]] = []
    events: list[Event] = []
    skipped: set[str] = set()
    for i, node in enumerate(scored.findall("ScoredEvent"), start=1):
        concept = (node.findtext("EventConcept") or "").strip()
        where = f"ScoredEvent {i} ({concept!r})"
        if concept == START_CONCEPT:
            start_time = _clock_time(node.findtext("ClockTime"))
            continue
        onset = _number(path, node.findtext("Start"), f"{where} Start")
        duration = _number(path, node.findtext("Duration"), f"{where} Duration")
        if (node.findtext("EventType") or "").strip() == STAGES_EVENT_TYPE:
            code = vocab.nsrr_stage_code(concept)
            if code is None:
                raise FormatError(path, f"{where}: unknown stage concept; expected e.g. 'Stage 2 sleep|2'")
            stage_runs.append((onset, duration, vocab.nsrr_stage(code)))
            if code == vocab.NSRR_MOVEMENT_STAGE_CODE:
                events.append(Event("movement", onset, duration, epoch_resolution=True))
            continue
        parsed = vocab.parse_nsrr_concept(concept)
        if parsed is None:
            skipped.add(concept)
            continue
        channel = (node.findtext("SignalLocation") or "").strip() or parsed.channel
        epoch_flag = (node.findtext("EpochResolution") or "").strip().lower() == "true"
        try:
            events.append(
                Event(parsed.type, onset, duration, parsed.subtype, channel, parsed.epoch_resolution or epoch_flag)
            )
        except ValueError as exc:
            raise FormatError(path, f"{where}: {exc}") from exc
    if skipped:
        log.info("%s: skipped concepts outside the event vocabulary: %s", path, sorted(skipped))
    return Timeline(
        record_id=path.stem,
        stages=_stages_from_runs(stage_runs, epoch_s),
        events=events,
        epoch_s=epoch_s,
        start_time=start_time,
        source=str(path),
    )


def write_nsrr_xml(timeline: Timeline, path: str | Path) -> None:
    """Write ``timeline`` as NSRR XML: runs of equal stages as one stage event each, then the events."""
    root = ET.Element("PSGAnnotation")
    ET.SubElement(root, "SoftwareVersion").text = "sleeplm"
    ET.SubElement(root, "EpochLength").text = _fmt(timeline.epoch_s)
    scored = ET.SubElement(root, "ScoredEvents")
    if timeline.start_time is not None:
        node = _scored(scored, "", START_CONCEPT, 0.0, timeline.duration_s)
        ET.SubElement(node, "ClockTime").text = timeline.start_time.strftime(_CLOCK_FORMAT)
    for first, last, stage in _runs(timeline.stages):
        _scored(
            scored,
            STAGES_EVENT_TYPE,
            vocab.NSRR_STAGE_CONCEPTS[stage],
            first * timeline.epoch_s,
            (last - first) * timeline.epoch_s,
        )
    for event in timeline.events:
        event_type, concept = vocab.nsrr_event_concept(event)
        node = _scored(scored, event_type, concept, event.onset_s, event.duration_s)
        if event.channel:
            ET.SubElement(node, "SignalLocation").text = event.channel
        if event.epoch_resolution:
            ET.SubElement(node, "EpochResolution").text = "true"
    ET.indent(root)
    try:
        ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)
    except OSError as exc:
        raise FormatError(path, f"cannot write NSRR XML ({exc})") from exc


def _scored(parent: ET.Element, event_type: str, concept: str, start: float, duration: float) -> ET.Element:
    node = ET.SubElement(parent, "ScoredEvent")
    ET.SubElement(node, "EventType").text = event_type or None
    ET.SubElement(node, "EventConcept").text = concept
    ET.SubElement(node, "Start").text = _fmt(start)
    ET.SubElement(node, "Duration").text = _fmt(duration)
    return node


def _fmt(value: float) -> str:
    return repr(float(value))


def _runs(stages: np.ndarray) -> list[tuple[int, int, Stage]]:
    """[(first epoch, end epoch exclusive, stage)] for each run of equal stages."""
    if stages.size == 0:
        return []
    bounds = np.flatnonzero(np.diff(stages)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [stages.size]))
    return [(int(a), int(b), Stage(int(stages[a]))) for a, b in zip(starts, ends, strict=True)]


def _stages_from_runs(runs: list[tuple[float, float, Stage]], epoch_s: float) -> np.ndarray:
    n_epochs = max((math.ceil(round((onset + length) / epoch_s, 6)) for onset, length, _ in runs), default=0)
    stages = np.full(n_epochs, Stage.UNSCORED, dtype=np.int8)
    for onset, duration, stage in runs:
        first = int(round(onset / epoch_s))
        stages[first : first + max(1, int(round(duration / epoch_s)))] = stage
    return stages


def _number(path: Path, text: str | None, field: str) -> float:
    try:
        value = float((text or "").strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise FormatError(path, f"{field}: expected a number of seconds, got {text!r}")
    return value


def _clock_time(text: str | None) -> datetime | None:
    """``dd.mm.yy HH.MM.SS`` -> datetime; None for NSRR's anonymised ``00.00.00`` date or no text."""
    try:
        return datetime.strptime((text or "").strip(), _CLOCK_FORMAT)
    except ValueError:
        return None
