"""The EDF/BDF header as a file wrote it, checked field by field and repaired where writers are known to err.

Why our own header pass before ``edfio``: edfio reads valid EDF, EDF+ and BDF well, but a header fault
(a record count of -1, a blanked start date, a signal with 0 samples per record, a physical range of
"abc") either refuses the whole file with an internal message or, worse, scales a signal silently
wrong. This module reads the fixed-width ASCII header (Kemp et al. 1992; EDF+ 2003; BioSemi's 24-bit
BDF), decides per field, and hands edfio a repaired header:

* tolerated with a warning, where the standard or real writers allow it: a record count of -1 (an
  interrupted EDF+ recording) or one that disagrees with the file size is recomputed from the size,
  an incomplete last record is dropped; a blanked or impossible start date/time (de-identification)
  becomes "unknown" and times stay relative to the start; a header-size field that disagrees with
  the signal count is recomputed;
* a signal that cannot be read correctly is dropped with a warning naming it, the rest of the file is
  used: 0 samples per record (removed from the header; it holds no bytes), a non-numeric or empty
  physical/digital range, physical min = max (no scale), digital min >= max (an inverted or empty
  scale); such a signal is given a placeholder scale so edfio can read past it, then left out;
* refused with one line naming the file and the field: anything that makes the data layout unknown
  (signal count, samples per record, record duration of a file with signals) and GDF (a different
  format with a similar purpose).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, time

from psg.errors import FormatError

EDF_MAGIC = b"0       "
BDF_MAGIC = b"\xffBIOSEMI"
#: Bytes per sample and the digital range of each format.
SAMPLE_BYTES = {"EDF": 2, "BDF": 3}
DIGITAL_LIMITS = {"EDF": (-32768, 32767), "BDF": (-8388608, 8388607)}
#: (field, width) of the fixed part, then of each signal's header (stored field by field for all signals).
MAIN_FIELDS = (
    ("version", 8),
    ("patient", 80),
    ("recording", 80),
    ("startdate", 8),
    ("starttime", 8),
    ("header_bytes", 8),
    ("reserved", 44),
    ("n_records", 8),
    ("record_s", 8),
    ("n_signals", 4),
)
SIGNAL_FIELDS = (
    ("label", 16),
    ("transducer", 80),
    ("dimension", 8),
    ("physical_min", 8),
    ("physical_max", 8),
    ("digital_min", 8),
    ("digital_max", 8),
    ("prefiltering", 80),
    ("samples", 8),
    ("reserved", 32),
)
#: Start date and time written in place of a blanked or impossible one (EDF's clipping date 1985).
UNKNOWN_DATE, UNKNOWN_TIME = "01.01.85", "00.00.00"
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


@dataclass
class SignalHeader:
    """One signal's header fields, as text (decoded; the label as UTF-8 when valid, else Latin-1)."""

    label: str
    transducer: str
    dimension: str
    physical_min: str
    physical_max: str
    digital_min: str
    digital_max: str
    prefiltering: str
    samples: int
    reserved: str
    #: Why this signal cannot be read (then it carries a placeholder scale and is dropped after reading).
    unreadable: str | None = None

    @property
    def is_annotation(self) -> bool:
        return self.label.strip() in ("EDF Annotations", "BDF Annotations")


@dataclass
class EdfHeader:
    """The whole header: format, the fixed fields and every signal's fields."""

    fmt: str
    patient: str
    recording: str
    startdate: str
    starttime: str
    reserved: str
    n_records: int
    record_s: float
    record_s_text: str
    #: Where the data records start in the file: after the header as written (every signal counted).
    data_offset: int
    signals: list[SignalHeader]
    #: What was repaired or dropped, one line each (the reader passes them on as warnings).
    warnings: list[str] = field(default_factory=list)
    start_known: bool = True

    @property
    def header_bytes(self) -> int:
        return 256 * (len(self.signals) + 1)

    @property
    def record_bytes(self) -> int:
        return sum(s.samples for s in self.signals) * SAMPLE_BYTES[self.fmt]

    @property
    def is_discontinuous(self) -> bool:
        """EDF+D / BDF+D: data records may have gaps between them (their onsets are in the annotations)."""
        return self.reserved.strip().upper().startswith(("EDF+D", "BDF+D"))

    def to_bytes(self) -> bytes:
        """The header as a file would hold it (the repaired values, every field padded to its width)."""
        magic = EDF_MAGIC if self.fmt == "EDF" else BDF_MAGIC
        main = {
            "patient": self.patient,
            "recording": self.recording,
            "startdate": self.startdate,
            "starttime": self.starttime,
            "header_bytes": str(self.header_bytes),
            "reserved": self.reserved,
            "n_records": str(self.n_records),
            "record_s": self.record_s_text,
            "n_signals": str(len(self.signals)),
        }
        out = [magic] + [_field(main[name], width) for name, width in MAIN_FIELDS[1:]]
        for name, width in SIGNAL_FIELDS:
            out += [_field(str(getattr(s, name)), width) for s in self.signals]
        return b"".join(out)


def file_format(path: str, head: bytes) -> str:
    """'EDF' or 'BDF' from the first 8 bytes; ``FormatError`` for GDF and anything else."""
    if head.startswith(b"GDF"):
        raise FormatError(path, "GDF file: not supported; export the recording as EDF, EDF+ or BDF")
    if head[:8] == EDF_MAGIC:
        return "EDF"
    if head[:8] == BDF_MAGIC:
        return "BDF"
    raise FormatError(
        path,
        f"not an EDF or BDF file: it starts with {head[:8]!r}; expected "
        f"{EDF_MAGIC.decode()!r} (EDF/EDF+) or '\\xffBIOSEMI' (BDF)",
    )


def read_header(path: str, raw: bytes, file_size: int) -> EdfHeader:
    """Parse and repair the header at the start of ``raw`` (the file's first bytes, at least the header)."""
    fmt = file_format(path, raw[:8])
    if len(raw) < 256:
        raise FormatError(path, f"header truncated: the file has {len(raw)} bytes; an EDF header has at least 256")
    main = _split(raw[:256], MAIN_FIELDS)
    n_signals = _whole(path, "number of signals", main["n_signals"])
    if n_signals < 1:
        raise FormatError(path, f"header field 'number of signals' is {n_signals}; expected 1 or more")
    if len(raw) < 256 * (n_signals + 1):
        raise FormatError(
            path,
            f"header truncated: {n_signals} signals need a {256 * (n_signals + 1)}-byte "
            f"header; the file has {len(raw)} bytes",
        )
    header = EdfHeader(
        fmt=fmt,
        patient=main["patient"],
        recording=main["recording"],
        startdate=main["startdate"].strip(),
        starttime=main["starttime"].strip(),
        reserved=main["reserved"],
        n_records=0,
        record_s=0.0,
        record_s_text=main["record_s"].strip(),
        data_offset=256 * (n_signals + 1),
        signals=_signal_headers(path, raw[256 : 256 * (n_signals + 1)], n_signals),
    )
    _check_header_size(header, main["header_bytes"])
    _check_record_duration(path, header)
    _check_start(header)
    _check_scales(header)
    _drop_empty_signals(path, header)
    _check_record_count(path, header, main["n_records"], file_size)
    return header


def repaired(header: EdfHeader) -> EdfHeader:
    """A copy whose unreadable signals carry a placeholder scale edfio accepts (they are dropped later)."""
    low, high = DIGITAL_LIMITS[header.fmt]
    signals = [
        replace(s, physical_min="-1", physical_max="1", digital_min=str(low), digital_max=str(high))
        if s.unreadable
        else s
        for s in header.signals
    ]
    return replace(header, signals=signals, warnings=list(header.warnings))


def _signal_headers(path: str, raw: bytes, n: int) -> list[SignalHeader]:
    fields: dict[str, list[str]] = {}
    offset = 0
    for name, width in SIGNAL_FIELDS:
        fields[name] = [_text(raw[offset + i * width : offset + (i + 1) * width]) for i in range(n)]
        offset += width * n
    signals = []
    for i in range(n):
        label = fields["label"][i].strip()
        samples = _whole(path, f"samples per data record of signal {i + 1} ({label!r})", fields["samples"][i])
        if samples < 0:
            raise FormatError(path, f"signal {label!r}: samples per data record is {samples}; expected 0 or more")
        signals.append(
            SignalHeader(
                label=label,
                transducer=fields["transducer"][i],
                dimension=fields["dimension"][i].strip(),
                physical_min=fields["physical_min"][i].strip(),
                physical_max=fields["physical_max"][i].strip(),
                digital_min=fields["digital_min"][i].strip(),
                digital_max=fields["digital_max"][i].strip(),
                prefiltering=fields["prefiltering"][i],
                samples=samples,
                reserved=fields["reserved"][i],
            )
        )
    return signals


def _check_header_size(header: EdfHeader, text: str) -> None:
    stated = text.strip()
    if stated != str(header.header_bytes):
        header.warnings.append(
            f"header size field is {stated!r}, but {len(header.signals)} signals make a "
            f"{header.header_bytes}-byte header: used {header.header_bytes}"
        )


def _check_record_duration(path: str, header: EdfHeader) -> None:
    """A file with signals needs a positive record duration; an annotation-only file may say 0."""
    text = header.record_s_text
    value = float(text) if _NUMBER.match(text) else None
    has_samples = any(s.samples and not s.is_annotation for s in header.signals)
    if value is None or value < 0 or (value == 0 and has_samples):
        if has_samples:
            raise FormatError(
                path, f"header field 'duration of a data record' is {text!r}; expected a positive number of seconds"
            )
        header.record_s_text, value = "0", 0.0
    header.record_s = value


def _check_start(header: EdfHeader) -> None:
    """A blanked or impossible start date/time (de-identified files) becomes unknown, with a warning."""
    parsed_date = _date(header.startdate)
    parsed_time = _time(header.starttime)
    if parsed_date is None or parsed_time is None:
        bad = header.startdate if parsed_date is None else header.starttime
        what = "start date" if parsed_date is None else "start time"
        header.warnings.append(
            f"{what} {bad!r} is not a valid dd.mm.yy / hh.mm.ss value (de-identified?): "
            "the start is unknown; times stay relative to the recording start"
        )
        header.startdate, header.starttime, header.start_known = UNKNOWN_DATE, UNKNOWN_TIME, False


def _check_scales(header: EdfHeader) -> None:
    """Mark signals whose counts cannot be scaled to physical values (physical min > max is legal: inverted)."""
    for s in header.signals:
        if s.is_annotation or s.samples == 0:
            continue
        numbers = [s.physical_min, s.physical_max, s.digital_min, s.digital_max]
        names = ("physical minimum", "physical maximum", "digital minimum", "digital maximum")
        bad = [f"{name} {value!r}" for name, value in zip(names, numbers, strict=True) if not _NUMBER.match(value)]
        if bad:
            s.unreadable = f"{', '.join(bad)} is not a number"
        elif float(s.physical_min) == float(s.physical_max):
            s.unreadable = (
                f"physical minimum = maximum = {s.physical_min}: no scale from counts to {s.dimension or 'units'}"
            )
        elif float(s.digital_min) >= float(s.digital_max):
            s.unreadable = (
                f"digital minimum {s.digital_min} >= maximum {s.digital_max}: the scale would invert or divide by zero"
            )
        if s.unreadable:
            header.warnings.append(f"signal {s.label!r} dropped: {s.unreadable}")


def _drop_empty_signals(path: str, header: EdfHeader) -> None:
    """A signal with 0 samples per record holds no bytes: removing it from the header leaves the data intact."""
    empty = [s.label for s in header.signals if s.samples == 0]
    if len(empty) == len(header.signals):
        raise FormatError(path, "every signal has 0 samples per data record: the file holds no data")
    for label in empty:
        header.warnings.append(f"signal {label!r} dropped: 0 samples per data record")
    header.signals = [s for s in header.signals if s.samples > 0]


def _check_record_count(path: str, header: EdfHeader, text: str, file_size: int) -> None:
    """Recompute the record count from the file size when the header's is -1, stale or not a number."""
    record_bytes = header.record_bytes
    available = max(file_size - header.data_offset, 0)
    actual, rest = divmod(available, record_bytes)
    stated = text.strip()
    if actual == 0:
        raise FormatError(
            path,
            f"no complete data record: {available} bytes of data after the header, one record "
            f"is {record_bytes} bytes (header field 'number of data records' is {stated!r})",
        )
    if stated != str(actual):
        reason = (
            "-1 (an interrupted recording)"
            if stated == "-1"
            else f"{stated!r}" + (" (not a number)" if not stated.lstrip("-").isdigit() else "")
        )
        header.warnings.append(f"number of data records is {reason}; the file holds {actual}: used {actual}")
    if rest:
        header.warnings.append(f"incomplete last data record ({rest} of {record_bytes} bytes) dropped")
    header.n_records = actual


def _date(text: str) -> date | None:
    """dd.mm.yy with EDF's clipping: yy 85-99 -> 19yy, 00-84 -> 20yy."""
    match = re.fullmatch(r"(\d\d)\.(\d\d)\.(\d\d)", text)
    if not match:
        return None
    day, month, year = (int(g) for g in match.groups())
    try:
        return date(1900 + year if year >= 85 else 2000 + year, month, day)
    except ValueError:
        return None


def _time(text: str) -> time | None:
    match = re.fullmatch(r"(\d\d)[.:](\d\d)[.:](\d\d)", text)
    if not match:
        return None
    try:
        hour, minute, second = (int(g) for g in match.groups())
        return time(hour, minute, second)
    except ValueError:
        return None


def _split(raw: bytes, fields: tuple[tuple[str, int], ...]) -> dict[str, str]:
    out, offset = {}, 0
    for name, width in fields:
        out[name] = _text(raw[offset : offset + width])
        offset += width
    return out


def _whole(path: str, name: str, text: str) -> int:
    value = text.strip()
    if not re.fullmatch(r"[+-]?\d+", value):
        raise FormatError(path, f"header field {name!r} is {value!r}; expected a whole number")
    return int(value)


def _text(raw: bytes) -> str:
    """Header text: UTF-8 when it decodes (EDF+ allows only ASCII, writers use both), else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _field(text: str, width: int) -> bytes:
    """``text`` in a fixed-width field: UTF-8 when it fits (a label keeps its accents), else ASCII."""
    raw = text.encode("utf-8")
    if len(raw) > width:
        raw = text.encode("ascii", "replace")[:width]
    return raw.ljust(width, b" ")
