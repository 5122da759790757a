"""EDF/EDF+/BDF recordings: signals plus the scored truth as EDF+ annotations, through ``edfio``.

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
``record_id`` travels in the EDF+ recording field (hospital administration code, cut to the
characters that 80-character field leaves); a simulated
recording (``Recording.metadata[ORIGIN]``) says so in its equipment code, and ``read_edf`` gives every
recording the origin its header states (``psg.recording.ORIGIN``: simulated, else recorded).

Reading (``read_edf``) takes EDF, EDF+C, EDF+D, BDF and BDF+ (GDF is refused by name) and returns
float64 physical samples, rates, units and start time, and a ``Timeline`` rebuilt from the annotations
(``psg.formats.edf_timeline``). The header is checked and repaired first (``psg.formats.edf_header``:
what is tolerated with a warning, what drops one signal, what refuses the file); EDF+D records are
placed at their onsets with ``Recording.gaps`` between them (``psg.formats.edf_records``); a repeated
label is kept with a " (2)" suffix. Everything tolerated is in ``Recording.read_warnings`` (and the
channel report), never a Python warning on stderr.
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
from psg.formats.edf_header import EdfHeader, file_format, read_header, repaired
from psg.formats.edf_records import gaps_between, place_records, record_onsets
from psg.formats.edf_timeline import BEAT_TEXT, annotations_timeline
from psg.montage import CHANNELS
from psg.recording import ORIGIN, RECORDED, SIMULATED, SIMULATOR_EQUIPMENT, Recording, Signal
from psg.timeline import Timeline

log = logging.getLogger(__name__)

_TIME_DECIMALS = 6  # microseconds: far below any sampling interval we store
_RECORDING_FIELD = 80  # characters of the EDF header's local recording identification


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
        recording=_recording_field(recording),
        starttime=start.time().replace(microsecond=0) if start else time(0, 0, 0),
        data_record_duration=record_s,
        annotations=_annotations(recording.timeline) if recording.timeline else None,
    )
    try:
        edf.write(path)
    except OSError as exc:
        raise FormatError(path, f"cannot write EDF ({exc})") from exc


def read_edf(path: str | Path) -> Recording:
    """Read an EDF, EDF+C/D, BDF or BDF+ file: physical signals on the recording's time axis, start time,
    the timeline from its annotations, EDF+D ``gaps`` and the problems tolerated (``read_warnings``).

    An annotation-only file (a hypnogram) comes back with no signals and its timeline. ``FormatError``
    (one line: the file, the field, what was expected) for what cannot be read without guessing.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "no such file")
    size = path.stat().st_size
    if size == 0:
        raise FormatError(path, "empty file")
    header = read_header(str(path), _header_bytes(path, size), size)
    records = np.memmap(
        path, dtype=np.uint8, mode="r", offset=header.data_offset, shape=(header.n_records, header.record_bytes)
    )
    edf = _decode(path, header, records)
    warnings_seen = list(header.warnings)
    onsets = record_onsets(str(path), header, records) if header.record_s > 0 else None
    gaps = gaps_between(onsets, header.record_s) if onsets is not None else ()
    if gaps and not header.is_discontinuous:
        warnings_seen.append(
            f"the header says {header.reserved.strip() or 'continuous'}, but the records' "
            f"onsets leave {len(gaps)} gap(s): placed as EDF+D"
        )
    duration_s = (
        float(onsets[-1] + header.record_s) if gaps and onsets is not None else header.n_records * header.record_s
    )
    signals = _signals(header, edf, onsets if gaps else None, duration_s, warnings_seen)
    start_time = _start_time(edf, header, warnings_seen)
    plus = _is_edfplus(edf)
    admin_code = edf.recording.hospital_administration_code if plus else "X"
    simulated = plus and edf.recording.equipment_code == SIMULATOR_EQUIPMENT
    recording = Recording(
        record_id=admin_code if admin_code not in ("X", "") else path.stem,
        signals=signals,
        start_time=start_time,
        gaps=gaps,
        read_warnings=warnings_seen,
        metadata={ORIGIN: SIMULATED if simulated else RECORDED},
    )
    try:
        annotations = edf.annotations
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        log.debug("%s: annotations not decodable", path, exc_info=exc)
        raise FormatError(
            path, "the EDF+ annotation signal cannot be decoded; expected time-stamped annotation lists (TALs)"
        ) from None
    recording.timeline = annotations_timeline(path, annotations, recording)
    if not signals and recording.timeline is None:
        raise FormatError(path, "no readable signal and no stage, event or R-peak annotation: nothing to use")
    for line in warnings_seen:
        log.info("%s: %s", path, line)
    return recording


def read_mapped_edf(
    path: str | Path,
    overrides: dict[str, str] | None = None,
    lab_map: ChannelMapFile | None = None,
) -> tuple[Recording, ChannelReport]:
    """``read_edf`` with the channels recognised onto the montage (``psg.channels.map_recording``).

    ``PSGError`` naming the file and its labels when no channel is recognised (an annotation-only file,
    which has none to recognise, comes back as it is: callers that need signals refuse it).
    """
    recording, report = map_recording(read_edf(path), overrides, lab_map)
    report.source = str(path)
    report.file_warnings = list(recording.read_warnings)
    if not recording.is_annotation_only:
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


def _recording_field(recording: Recording) -> edfio.Recording:
    """The EDF+ recording field: start date, ``record_id`` as the administration code (cut to what the
    80-character field leaves, so a long id cannot make the file unwritable) and the simulator mark."""
    start = recording.start_time
    equipment = SIMULATOR_EQUIPMENT if recording.metadata.get(ORIGIN) == SIMULATED else "X"
    room = _RECORDING_FIELD - len("Startdate 01-JAN-2000  X ") - len(equipment)
    return edfio.Recording(
        startdate=start.date() if start else None,
        hospital_administration_code=_edf_field(recording.record_id)[:room],
        equipment_code=equipment,
    )


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
        edfio.EdfAnnotation(_seconds(e.onset_s), _seconds(e.duration_s), vocab.event_text(e)) for e in timeline.events
    ]
    if timeline.beat_times_s is not None:
        annotations += [edfio.EdfAnnotation(_seconds(t), None, BEAT_TEXT) for t in timeline.beat_times_s]
    return annotations


def _seconds(value: float) -> float:
    return round(float(value), _TIME_DECIMALS)


def _is_edfplus(edf: edfio.Edf | edfio.Bdf) -> bool:
    return edf.local_recording_identification.startswith("Startdate ")


def _header_bytes(path: Path, size: int) -> bytes:
    """The header as written: 256 bytes, then 256 per signal (the count read from the first 256)."""
    with path.open("rb") as fh:
        head = fh.read(256)
        file_format(str(path), head)  # GDF or a foreign file: refused before its count is parsed
        count = head[252:256].decode("latin-1").strip()
        n_signals = int(count) if count.isdigit() else 0
        return head + fh.read(min(256 * n_signals, max(size - 256, 0)))


def _decode(path: Path, header: EdfHeader, records: np.ndarray) -> edfio.Edf | edfio.Bdf:
    """edfio's reading of the repaired header and the whole records; its warnings become ours."""
    source: Path | bytes = path
    if header.warnings or any(s.unreadable for s in header.signals) or header.data_offset != header.header_bytes:
        source = repaired(header).to_bytes() + records.tobytes()
    reader = edfio.read_bdf if header.fmt == "BDF" else edfio.read_edf
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            edf = reader(source, header_encoding="latin-1")
            edf.signals  # noqa: B018 - parses the signal headers now, inside the guard
    except (ValueError, IndexError, UnicodeDecodeError, OverflowError, ZeroDivisionError) as exc:
        log.debug("%s: edfio could not read it", path, exc_info=exc)
        raise FormatError(
            path,
            f"{header.fmt} header or data records do not decode "
            f"({type(exc).__name__}); expected a file conforming to {header.fmt}",
        ) from None
    header.warnings += [str(w.message).splitlines()[0] for w in caught]
    return edf


def _signals(
    header: EdfHeader,
    edf: edfio.Edf | edfio.Bdf,
    onsets: np.ndarray | None,
    duration_s: float,
    warnings_seen: list[str],
) -> dict[str, Signal]:
    """The readable ordinary signals by label; a repeated label gets " (2)", " (3)" ... and a warning."""
    ordinary = [s for s in header.signals if not s.is_annotation]
    out: dict[str, Signal] = {}
    file_signals: tuple[edfio.EdfSignal | edfio.BdfSignal, ...] = edf.signals
    for spec, signal in zip(ordinary, file_signals, strict=True):
        if spec.unreadable:
            continue
        label, n = spec.label, 1
        while label in out:
            n += 1
            label = f"{spec.label} ({n})"
        if n > 1:
            warnings_seen.append(f"label {spec.label!r} repeats: this one kept as {label!r}")
        data = np.asarray(signal.data, dtype=np.float64)
        if onsets is not None:
            data = place_records(data, spec.samples, onsets, signal.sampling_frequency, duration_s)
        out[label] = Signal(label, data, signal.sampling_frequency, spec.dimension, signal.physical_range)
    return out


def _start_time(edf: edfio.Edf | edfio.Bdf, header: EdfHeader, warnings_seen: list[str]) -> datetime | None:
    """Start date/time; None when the date is anonymised (EDF+ ``Startdate X``), blanked or impossible."""
    if not header.start_known:
        return None
    try:
        return datetime.combine(edf.startdate, edf.starttime)
    except edfio.AnonymizedDateError:
        return None
    except ValueError as exc:  # an EDF+ "Startdate 31-FEB-1989" the recording field could not hold
        warnings_seen.append(f"start date not valid ({exc}): the start is unknown")
        return None
