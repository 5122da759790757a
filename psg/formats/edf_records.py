"""Where each EDF+/BDF+ data record lies in time, and signals placed on the recording's time axis.

Why: in EDF+D (discontinuous: oximeter exports, Nihon Kohden, recordings paused overnight) consecutive
data records need not be adjacent in time; each record's onset is the first, empty annotation of the
first annotation signal in that record (EDF+ "time-keeping TAL"). Read as continuous, every sample after
a gap is misplaced by the gap's length and the annotations fall past the end. Here the records are put
where their onsets say, the stretches between them become ``Recording.gaps`` (zeros in the signals),
and the annotations, whose onsets are on the same axis, land where they belong.
"""

from __future__ import annotations

import re

import numpy as np

from psg.errors import FormatError
from psg.formats.edf_header import SAMPLE_BYTES, EdfHeader

#: A gap shorter than this between two records is clock rounding, not a gap (EDF+ onsets have 0.1 µs steps).
GAP_TOLERANCE_S = 1e-3
_ONSET = re.compile(rb"^([+-]\d+(?:\.\d*)?)\x14\x14")


def record_onsets(path: str, header: EdfHeader, records: np.ndarray) -> np.ndarray | None:
    """Each data record's onset in seconds after the first one's, from the time-keeping annotations.

    ``records``: the data as (n_records, record_bytes) uint8. None when the file has no annotation
    signal (plain EDF/BDF is continuous by definition). ``FormatError`` when a record has no
    time-keeping annotation or records go back in time or overlap (the data would be misplaced).
    """
    offset = 0
    for signal in header.signals:
        width = signal.samples * SAMPLE_BYTES[header.fmt]
        if signal.is_annotation:
            break
        offset += width
    else:
        return None
    onsets = np.empty(records.shape[0])
    for i, record in enumerate(records[:, offset : offset + width]):
        match = _ONSET.match(record.tobytes())
        if match is None:
            raise FormatError(
                path,
                f"data record {i + 1} has no EDF+ time-keeping annotation; expected "
                "'+<seconds>\\x14\\x14' at the start of its annotation signal",
            )
        onsets[i] = float(match.group(1))
    onsets -= onsets[0]
    steps = np.diff(onsets)
    if np.any(steps < header.record_s - GAP_TOLERANCE_S):
        i = int(np.argmax(steps < header.record_s - GAP_TOLERANCE_S)) + 1
        raise FormatError(
            path,
            f"data record {i + 1} starts at {onsets[i]:g} s, before record {i} ends "
            f"({onsets[i - 1] + header.record_s:g} s); expected records in time order, "
            "not overlapping",
        )
    return onsets


def gaps_between(onsets: np.ndarray, record_s: float) -> tuple[tuple[float, float], ...]:
    """The stretches ``[end of a record, onset of the next)`` longer than ``GAP_TOLERANCE_S``."""
    ends = onsets[:-1] + record_s
    return tuple(
        (float(end), float(start)) for end, start in zip(ends, onsets[1:], strict=True) if start - end > GAP_TOLERANCE_S
    )


def place_records(
    data: np.ndarray, samples_per_record: int, onsets: np.ndarray, fs: float, duration_s: float
) -> np.ndarray:
    """``data`` (records back to back) with each record moved to its onset; zeros between records.

    An onset off this signal's sample grid (a slow signal, an onset at a fraction of a second) is placed
    at the nearest sample (halves up, so records that follow each other stay adjacent): within half a
    sample period of where the file says.
    """
    starts = np.floor(onsets * fs + 0.5).astype(np.int64)  # half up: adjacent records stay adjacent
    out = np.zeros(max(int(round(duration_s * fs)), int(starts[-1]) + samples_per_record), dtype=np.float64)
    index = (starts[:, None] + np.arange(samples_per_record)[None, :]).ravel()
    keep = index < out.size
    out[index[keep]] = data[: index.size][keep]
    return out
