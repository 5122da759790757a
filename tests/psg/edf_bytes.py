"""EDF/BDF files byte by byte, for tests: every header field settable, so damaged files are as easy as valid ones.

Independent of ``edfio`` and of our reader on purpose: a test of the reader must not write its files
with the code it tests. Follows the EDF spec (Kemp 1992), EDF+ (2003: the ``EDF Annotations`` signal with
one time-keeping TAL per record) and BioSemi's BDF (24-bit little-endian samples).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SignalSpec:
    """One ordinary signal: physical samples (one row per data record) and its header fields as text."""

    label: str
    samples_per_record: int
    data: np.ndarray  # (n_records, samples_per_record) physical values
    dimension: str = "uV"
    physical_min: str | None = None  # None: the data's range
    physical_max: str | None = None
    digital_min: str | None = None  # None: the format's full range
    digital_max: str | None = None


@dataclass
class FileSpec:
    """A whole file: format, header fields, signals, EDF+ record onsets and annotations."""

    signals: list[SignalSpec]
    record_s: float = 1.0
    fmt: str = "EDF"  # or "BDF"
    plus: str | None = "C"  # "C", "D" or None (plain EDF/BDF: no annotation signal)
    onsets: list[float] | None = None  # per record; None: back to back
    annotations: list[tuple[float, float | None, str]] = field(default_factory=list)
    startdate: str = "02.03.21"
    starttime: str = "22.15.00"
    n_records_field: str | None = None  # None: the true count
    record_s_field: str | None = None
    truncate_bytes: int = 0
    annotation_bytes: int = 512

    @property
    def n_records(self) -> int:
        return self.signals[0].data.shape[0] if self.signals else 1


def build(spec: FileSpec) -> bytes:
    """The file's bytes."""
    width = 2 if spec.fmt == "EDF" else 3
    low, high = (-32768, 32767) if spec.fmt == "EDF" else (-8388608, 8388607)
    headers, columns = [], []
    for s in spec.signals:
        pmin, pmax, dmin, dmax = _scale(spec, s)
        counts = np.round((s.data - pmin) / (pmax - pmin) * (dmax - dmin) + dmin).astype(np.int64)
        columns.append(_encode(np.clip(counts, low, high), width).reshape(spec.n_records, -1))
        headers.append(
            (
                s.label,
                s.dimension,
                _given(s.physical_min, _num(pmin)),
                _given(s.physical_max, _num(pmax)),
                _given(s.digital_min, str(dmin)),
                _given(s.digital_max, str(dmax)),
                s.samples_per_record,
            )
        )
    if spec.plus:
        n = spec.annotation_bytes // width
        columns.append(np.vstack([_tal_record(spec, i, n * width) for i in range(spec.n_records)]))
        headers.append((f"{spec.fmt} Annotations", "", "-1", "1", str(low), str(high), n))
    data = np.hstack(columns).tobytes() if columns else b""
    header = _header(spec, headers)
    out = header + data
    return out[: len(out) - spec.truncate_bytes] if spec.truncate_bytes else out


def quantum(spec: FileSpec, signal: SignalSpec) -> float:
    """One digital step of ``signal`` in physical units: how close a reader can get to the written data."""
    pmin, pmax, dmin, dmax = _scale(spec, signal)
    return (pmax - pmin) / (dmax - dmin)


def _scale(spec: FileSpec, s: SignalSpec) -> tuple[float, float, int, int]:
    """(physical min, max, digital min, max) used to write ``s``: its header's numbers where they are numbers."""
    low, high = (-32768, 32767) if spec.fmt == "EDF" else (-8388608, 8388607)
    data_min, data_max = (float(s.data.min()), float(s.data.max())) if s.data.size else (0.0, 0.0)
    pmin = float(s.physical_min) if _is_number(s.physical_min) else _outward(data_min, -1)
    pmax = float(s.physical_max) if _is_number(s.physical_max) else _outward(data_max, 1)
    if pmax == pmin:
        pmax = _outward(pmin + max(abs(pmin) * 1e-3, 1e-6), 1)
    dmin = int(s.digital_min) if _is_int(s.digital_min) else low
    dmax = int(s.digital_max) if _is_int(s.digital_max) else high
    if dmax <= dmin:
        dmin, dmax = low, high
    return pmin, pmax, dmin, dmax


def _header(spec: FileSpec, signals: list[tuple]) -> bytes:
    magic = b"0       " if spec.fmt == "EDF" else b"\xffBIOSEMI"
    ns = len(signals)
    reserved = f"{spec.fmt}+{spec.plus}" if spec.plus else ""
    recording = "Startdate 02-MAR-2021 X X X" if spec.plus else "test recording"
    main = (
        magic
        + _f("X X X X", 80)
        + _f(recording, 80)
        + _f(spec.startdate, 8)
        + _f(spec.starttime, 8)
        + _f(str(256 * (ns + 1)), 8)
        + _f(reserved, 44)
        + _f(spec.n_records_field if spec.n_records_field is not None else str(spec.n_records), 8)
        + _f(spec.record_s_field if spec.record_s_field is not None else _num(spec.record_s), 8)
        + _f(str(ns), 4)
    )
    columns = list(zip(*signals, strict=True)) if signals else [()] * 7
    label, dim, pmin, pmax, dmin, dmax, spr = columns
    parts = [
        b"".join(_f(v, 16) for v in label),
        b"".join(_f("", 80) for _ in label),
        b"".join(_f(v, 8) for v in dim),
        b"".join(_f(v, 8) for v in pmin),
        b"".join(_f(v, 8) for v in pmax),
        b"".join(_f(v, 8) for v in dmin),
        b"".join(_f(v, 8) for v in dmax),
        b"".join(_f("", 80) for _ in label),
        b"".join(_f(str(v), 8) for v in spr),
        b"".join(_f("", 32) for _ in label),
    ]
    return main + b"".join(parts)


def _tal_record(spec: FileSpec, i: int, size: int) -> np.ndarray:
    onset = spec.onsets[i] if spec.onsets is not None else i * spec.record_s
    raw = f"+{_num(onset)}\x14\x14\x00".encode()
    if i == 0:
        for at, duration, text in spec.annotations:
            raw += f"+{_num(at)}".encode() + (f"\x15{_num(duration)}".encode() if duration else b"")
            raw += f"\x14{text}\x14\x00".encode()
    if len(raw) > size:
        raise ValueError(f"annotations need {len(raw)} bytes, record has {size}: raise annotation_bytes")
    return np.frombuffer(raw.ljust(size, b"\x00"), dtype=np.uint8)


def _encode(counts: np.ndarray, width: int) -> np.ndarray:
    """(n,) counts -> (n * width,) little-endian bytes, two's complement."""
    raw = counts.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :width]
    return raw.reshape(counts.shape[0], -1) if counts.ndim == 2 else raw.ravel()


def _f(text: str, width: int) -> bytes:
    raw = text.encode("latin-1")
    if len(raw) > width:
        raise ValueError(f"{text!r} does not fit {width} bytes")
    return raw.ljust(width, b" ")


def _num(value: float) -> str:
    """The shortest text of at most 8 characters close to ``value`` (EDF's numeric header fields)."""
    for digits in range(7, 0, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 8:
            return text
    raise ValueError(f"{value!r} does not fit 8 characters")


def _given(text: str | None, default: str) -> str:
    """The header text a test set (even an empty or non-numeric one), else what the data needs."""
    return default if text is None else text


def _outward(value: float, direction: int) -> float:
    """``value`` as the 8-character header text would hold it, rounded away from the data (never clips)."""
    nudged = value
    while True:
        text = _num(nudged)
        if (float(text) - value) * direction >= 0:
            return float(text)
        nudged += direction * (abs(nudged) * 1e-4 + 1e-9)


def _is_number(text: str | None) -> bool:
    try:
        float(text)  # type: ignore[arg-type]
        return True
    except (TypeError, ValueError):
        return False


def _is_int(text: str | None) -> bool:
    return text is not None and text.lstrip("+-").isdigit()
