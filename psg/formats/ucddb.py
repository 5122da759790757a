"""St. Vincent's / UCD Sleep Apnea Database (PhysioNet ``ucddb``): hypnogram plus respiratory events.

Stages come from ``ucddbNNN_stage.txt``, one integer per 30-s epoch in the database's own coding:
0 W, 1 REM, 2 S1, 3 S2, 4 S3, 5 S4, 6 artifact, 7 indeterminate. S3 and S4 are N3 (AASM 2007);
artifact and indeterminate epochs are UNSCORED. Code 8 is not in the database documentation but
occurs in ucddb008 (epochs 363-369 and 537-540); nothing says it is sleep, so it is UNSCORED too.
Anything else is a format error.

Events come from ``events_by_epoch.csv`` beside the stage files (the shared export of the
database's respiratory event lists): per-epoch rows whose ``event_types``, ``event_start_sec`` and
``event_duration_sec`` hold ``; ``-separated lists. An event spanning two epochs is listed in both
rows, so events are de-duplicated on (type, start). APNEA-O/C/M map to obstructive/central/mixed
apnea; HYP-O/C/M to ``hypopnea`` with subtype obstructive/central/mixed.

Decision for a stage file without ``events_by_epoch.csv`` beside it: the timeline has the stages and
no events, and ``source`` says so (a hypnogram alone is still a valid night); a csv that exists but
is malformed raises ``FormatError``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from psg.errors import FormatError
from psg.timeline import Event, Stage, Timeline

EVENTS_CSV = "events_by_epoch.csv"

_STAGE_CODES: dict[str, Stage] = {
    "0": Stage.W,
    "1": Stage.R,
    "2": Stage.N1,
    "3": Stage.N2,
    "4": Stage.N3,
    "5": Stage.N3,
    "6": Stage.UNSCORED,
    "7": Stage.UNSCORED,
    "8": Stage.UNSCORED,
}

_EVENT_CODES: dict[str, tuple[str, str | None]] = {
    "APNEA-O": ("obstructive_apnea", None),
    "APNEA-C": ("central_apnea", None),
    "APNEA-M": ("mixed_apnea", None),
    "HYP-O": ("hypopnea", "obstructive"),
    "HYP-C": ("hypopnea", "central"),
    "HYP-M": ("hypopnea", "mixed"),
}
_EVENT_COLUMNS = ("record_id", "event_types", "event_start_sec", "event_duration_sec")


def read_ucddb(path: str | Path) -> Timeline:
    """Read ``ucddbNNN_stage.txt`` and that record's events from ``events_by_epoch.csv`` beside it."""
    path = Path(path)
    record_id = path.name.removesuffix("_stage.txt")
    stages = _read_stages(path)
    events_path = path.with_name(EVENTS_CSV)
    if not events_path.is_file():
        return Timeline(record_id, stages, source=f"{path} (stages only: no {EVENTS_CSV} beside it)")
    return Timeline(record_id, stages, events=read_ucddb_events(events_path, record_id), source=str(path))


def _read_stages(path: Path) -> np.ndarray:
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(path, f"not a readable ucddb stage file ({exc})") from exc
    codes: list[Stage] = []
    for line_no, line in enumerate(lines, start=1):
        code = line.strip()
        if not code:
            continue
        if code not in _STAGE_CODES:
            raise FormatError(
                path,
                f"line {line_no}: stage code {code!r} is not one of 0 W, 1 REM, 2-5 S1-S4, 6 artifact, 7 indeterminate",
            )
        codes.append(_STAGE_CODES[code])
    if not codes:
        raise FormatError(path, "empty stage file: expected one ucddb stage code per 30-s epoch")
    return np.asarray(codes, dtype=np.int8)


def read_ucddb_events(path: str | Path, record_id: str) -> list[Event]:
    """The de-duplicated respiratory events of ``record_id`` from an ``events_by_epoch.csv``."""
    path = Path(path)
    events: dict[tuple[str, str | None, float], Event] = {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in _EVENT_COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise FormatError(path, f"missing column(s) {', '.join(missing)}; expected {', '.join(_EVENT_COLUMNS)}")
            for row in reader:
                if row["record_id"] == record_id:
                    for event in _row_events(path, reader.line_num, row):
                        events.setdefault((event.type, event.subtype, event.onset_s), event)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FormatError(path, f"not a readable csv ({exc})") from exc
    return list(events.values())


def _row_events(path: Path, line_no: int, row: dict[str, str]) -> list[Event]:
    fields = [(row[c] or "").strip() for c in _EVENT_COLUMNS[1:]]
    if not any(fields):
        return []
    types, starts, durations = ([item.strip() for item in f.split(";")] for f in fields)
    if not len(types) == len(starts) == len(durations):
        raise FormatError(
            path,
            f"line {line_no}: {len(types)} event types, {len(starts)} starts, {len(durations)} durations",
        )
    events = []
    for code, start, duration in zip(types, starts, durations, strict=True):
        if code not in _EVENT_CODES:
            raise FormatError(path, f"line {line_no}: event type {code!r} is not one of {', '.join(_EVENT_CODES)}")
        try:
            onset_s, duration_s = float(start), float(duration)
        except ValueError as exc:
            raise FormatError(
                path, f"line {line_no}: event {code} start/duration {start!r}/{duration!r} are not numbers of seconds"
            ) from exc
        event_type, subtype = _EVENT_CODES[code]
        try:
            events.append(Event(event_type, onset_s, duration_s, subtype))
        except ValueError as exc:
            raise FormatError(path, f"line {line_no}: {exc}") from exc
    return events
