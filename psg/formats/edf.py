"""EDF+ recordings: signals plus the scored truth as EDF+ annotations, through ``edfio``.

Writing (``write_edf``) makes an EDF+C file (Kemp & Olivan 2003) with one signal per
``Recording.signals`` entry, in order. The physical range of a standard montage channel is the
amplifier range in ``psg.montage.CHANNELS`` and samples outside it are clipped, as a real amplifier
clips; other channels use their own data range. Samples are stored as 16-bit integers, so values come
back within half a quantisation step, (max - min) / 65535 / 2 (0.008 uV on EEG). The data record
lasts 1 s whenever every rate is a whole number of Hz; channels shorter than the longest are padded
with their last sample to whole data records (EDF has one record count for all signals).

Annotations carry ``Recording.timeline``:

* one ``Sleep stage W|N1|N2|N3|R|?`` per epoch (onset, duration = epoch length);
* one per event, text from ``psg.formats.vocabulary`` (type, subtype, ``@@channel``, per-epoch mark);
* one ``R-peak`` (no duration) per real beat in ``beat_times_s``: about 30 000 for a night. Measured
  on an 8-h, 12-channel night this adds ~1.5 MB and well under a second to write and read, so beat
  times travel with the file (the caption benchmark needs them).

Onsets and durations are rounded to the microsecond; ``minute_labels`` are not written.
The start date/time comes from ``Recording.start_time``; without one the file says
``Startdate X`` (EDF+'s "unknown" convention) and reads back with ``start_time=None``. The
``record_id`` travels in the EDF+ recording field (hospital administration code).

Reading (``read_edf``) returns float64 physical samples, rates, units and start time, and a
``Timeline`` rebuilt from the annotations: stage annotations (also run-length ones such as
Sleep-EDF's, and R&K ``Sleep stage 1..4``) fill their epochs; R&K ``Movement time`` gives UNSCORED
epochs plus a ``movement`` event; event texts in the vocabulary become events; ``R-peak``
annotations become ``beat_times_s``; other texts (lights on/off, technician notes) are skipped and
logged. The timeline is None when the file has neither stages nor events nor beats.
"""

from __future__ import annotations

import logging
import math
import warnings
from datetime import datetime, time
from fractions import Fraction
from pathlib import Path

import edfio
import numpy as np

from psg.channel_map_format import ChannelMapFile
from psg.channels import ChannelReport, map_recording, require_recognised
from psg.errors import FormatError, PSGError
from psg.formats import vocabulary as vocab
from psg.montage import CHANNELS
from psg.recording import Recording, Signal
from psg.timeline import EPOCH_S, Event, Stage, Timeline

log = logging.getLogger(__name__)

BEAT_TEXT = "R-peak"
_TRUNCATION_WARNINGS = "Incomplete data record|EDF header indicates"
_TIME_DECIMALS = 6  # microseconds: far below any sampling interval we store


def write_edf(recording: Recording, path: str | Path) -> None:
    """Write ``recording`` (signals and, if present, its timeline as annotations) as EDF+C."""
    path = Path(path)
    if not recording.signals:
        raise PSGError(f"recording {recording.record_id!r} has no signals to write to {path}")
    record_s = _data_record_duration([s.fs for s in recording.signals.values()])
    n_records = max(1, math.ceil(round(recording.duration_s / record_s, 9)))
    signals = [_edf_signal(sig, n_records * record_s, path) for sig in recording.signals.values()]
    start = recording.start_time
    edf = edfio.Edf(
        signals,
        patient=edfio.Patient(),
        recording=edfio.Recording(
            startdate=start.date() if start else None,
            hospital_administration_code=_edf_field(recording.record_id),
        ),
        starttime=start.time().replace(microsecond=0) if start else time(0, 0, 0),
        data_record_duration=record_s,
        annotations=_annotations(recording.timeline) if recording.timeline else None,
    )
    try:
        edf.write(path)
    except OSError as exc:
        raise FormatError(path, f"cannot write EDF ({exc})") from exc


def read_edf(path: str | Path) -> Recording:
    """Read an EDF/EDF+ file: physical signals, start time and the timeline from its annotations."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "no such file")
    try:
        with warnings.catch_warnings():
            # edfio warns and silently drops an incomplete last record; a cut night is an error here
            warnings.filterwarnings("error", message=_TRUNCATION_WARNINGS, category=UserWarning)
            edf = edfio.read_edf(path)
        raw_signals = [(s.label, s.data, s.sampling_frequency, s.physical_dimension) for s in edf.signals]
        annotations = edf.annotations
        admin_code = edf.recording.hospital_administration_code if _is_edfplus(edf) else "X"
        start_time = _start_time(edf)
    except Exception as exc:  # edfio raises ValueError/IndexError/UnicodeDecodeError on damaged files
        raise FormatError(path, f"not a readable EDF/EDF+ file ({type(exc).__name__}: {exc})") from exc
    signals = {label: Signal(label, np.asarray(data, dtype=np.float64), fs, unit)
               for label, data, fs, unit in raw_signals}
    record_id = admin_code if admin_code != "X" else path.stem
    recording = Recording(record_id=record_id, signals=signals, start_time=start_time)
    recording.timeline = _timeline(path, annotations, recording)
    return recording


def read_mapped_edf(
    path: str | Path, overrides: dict[str, str] | None = None, lab_map: ChannelMapFile | None = None,
) -> tuple[Recording, ChannelReport]:
    """``read_edf`` with the channels recognised onto the montage (``psg.channels.map_recording``).

    ``PSGError`` naming the file and its labels when no channel is recognised.
    """
    recording, report = map_recording(read_edf(path), overrides, lab_map)
    report.source = str(path)
    require_recognised(report, str(path))
    return recording, report


def _edf_signal(signal: Signal, duration_s: float, path: Path) -> edfio.EdfSignal:
    data = signal.data
    if not np.all(np.isfinite(data)):
        raise PSGError(f"signal {signal.label!r}: EDF cannot store NaN/inf samples (writing {path})")
    n = int(round(duration_s * signal.fs))
    if data.size < n:
        data = np.pad(data, (0, n - data.size), mode="edge") if data.size else np.zeros(n)
    spec = CHANNELS.get(signal.label)
    if spec is not None:
        low, high = spec.physical_min, spec.physical_max
        data = np.clip(data, low, high)
    else:
        low, high = float(data.min()), float(data.max())
        if high - low < 1e-9:
            low, high = low - 1.0, high + 1.0
    return edfio.EdfSignal(
        data, signal.fs, label=signal.label, physical_dimension=signal.unit, physical_range=(low, high)
    )


def _data_record_duration(rates: list[float]) -> float:
    """1 s when every rate is whole Hz, else the shortest duration holding whole samples of each."""
    fractions = [Fraction(fs).limit_denominator(1_000_000) for fs in rates]
    return float(math.lcm(*(f.denominator for f in fractions)))


def _edf_field(text: str) -> str:
    """EDF+ header subfields are space-separated: spaces inside a value become underscores."""
    return "_".join(text.split()) or "X"


def _annotations(timeline: Timeline) -> list[edfio.EdfAnnotation]:
    epoch_s = timeline.epoch_s
    annotations = [
        edfio.EdfAnnotation(_seconds(i * epoch_s), epoch_s, vocab.stage_text(stage))
        for i, stage in enumerate(timeline.stages)
    ]
    annotations += [
        edfio.EdfAnnotation(_seconds(e.onset_s), _seconds(e.duration_s), vocab.event_text(e))
        for e in timeline.events
    ]
    if timeline.beat_times_s is not None:
        annotations += [edfio.EdfAnnotation(_seconds(t), None, BEAT_TEXT) for t in timeline.beat_times_s]
    return annotations


def _seconds(value: float) -> float:
    return round(float(value), _TIME_DECIMALS)


def _is_edfplus(edf: edfio.Edf) -> bool:
    return edf.local_recording_identification.startswith("Startdate ")


def _start_time(edf: edfio.Edf) -> datetime | None:
    """Start date/time; None when an EDF+ file anonymises the date (``Startdate X``)."""
    try:
        return datetime.combine(edf.startdate, edf.starttime)
    except edfio.AnonymizedDateError:
        return None


def _timeline(
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
        stages[int(round(onset / epoch_s)): end] = stage
    return stages
