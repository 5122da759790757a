"""The store: what the sink writes and the API reads (SQLite file by default, PostgreSQL by URL).

Writes are idempotent: an epoch is keyed (bed, recording, epoch) and the first write wins, so a
worker that replays captions after a crash never changes or duplicates a stored epoch; the caller
learns which records were new (to count duplicates and observe latency). Every write is one
transaction. Reads are plain queries; the live feed pages through inserts by row id (``Cursor``).
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, func, select, text
from sqlalchemy.engine import Connection, Row

from psg.errors import PSGError
from store.engine import make_engine, write_connection
from store.migrate import upgrade
from store.models import DeviceEventRow, EpochRow, RecordingRow
from store.records import caption_row, device_event_row

#: Stage label of an epoch the store does not have (a gap in the hypnogram).
MISSING_STAGE = "?"
_EPOCH_KEY = ("bed_id", "recording_id", "epoch")
_DEVICE_KEY = ("bed_id", "recording_id", "stream", "type", "at")
EPOCHS = EpochRow.__table__
DEVICE_EVENTS = DeviceEventRow.__table__


class UnknownBed(LookupError):
    """The store has no epoch of this bed (or of this recording of it)."""


@dataclass(frozen=True, order=True)
class Cursor:
    """A position in the live feed: the last epoch row id and device-event row id already delivered.

    Written ``"<epoch id>-<event id>"`` (the SSE event id a client sends back as ``Last-Event-ID``).
    """

    epoch_id: int = 0
    event_id: int = 0

    def __str__(self) -> str:
        return f"{self.epoch_id}-{self.event_id}"

    @classmethod
    def parse(cls, value: str) -> Cursor:
        """``Cursor`` from its text; ``PSGError`` saying the expected form otherwise."""
        parts = value.strip().split("-")
        if len(parts) != 2 or not all(part.isdigit() for part in parts):
            raise PSGError(f"cursor {value!r}: expected '<epoch id>-<event id>' (two integers >= 0)")
        return cls(int(parts[0]), int(parts[1]))


def _insert(connection: Connection, model: type) -> Any:
    """The dialect's INSERT that supports ON CONFLICT DO NOTHING."""
    name = connection.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        raise PSGError(f"database {name!r}: the store supports sqlite and postgresql")
    return insert(model)


def _epoch_dict(row: Row) -> dict[str, Any]:
    return {
        "bed_id": row.bed_id,
        "recording_id": row.recording_id,
        "epoch": row.epoch,
        "start_time": row.start_time,
        "epoch_s": row.epoch_s,
        "stage": row.stage,
        "stage_source": row.stage_source,
        "captions": row.captions,
        "features": row.features,
        "quality": row.quality,
        "events": row.events,
    }


def _device_dict(row: Row) -> dict[str, Any]:
    return {
        "bed_id": row.bed_id,
        "recording_id": row.recording_id,
        "stream": row.stream,
        "type": row.type,
        "at": row.at,
        "detail": row.detail,
    }


class Store:
    """The database at ``url``, migrated to this package's schema when opened."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    # --- writes -----------------------------------------------------------------------------------

    def insert_epochs(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store caption records, ignoring epochs already stored; returns the rows that were new.

        Each returned row is the stored values (``id``, ``stored_at``, ``latency_s`` = stored_at -
        end_received_at, ...), in input order. A record repeated within ``records`` counts once (the
        first wins, as for replays). ``MessageError`` naming the record and field if one is invalid;
        then nothing is stored.
        """
        rows: dict[tuple, dict[str, Any]] = {}
        for index, record in enumerate(records):
            row = caption_row(record, what=f"caption record {index}")
            rows.setdefault(tuple(row[k] for k in _EPOCH_KEY), row)
        if not rows:
            return []
        now = time.time()
        recordings: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows.values():
            row["stored_at"] = now
            row["latency_s"] = None if row["end_received_at"] is None else now - row["end_received_at"]
            started = row["start_time"] - row["epoch"] * row["epoch_s"]
            key = (row["bed_id"], row["recording_id"])
            if key not in recordings or started < recordings[key]["started_at"]:
                recordings[key] = {
                    "bed_id": key[0],
                    "recording_id": key[1],
                    "started_at": started,
                    "first_seen_at": now,
                }
        with write_connection(self.engine) as connection:
            connection.execute(_insert(connection, RecordingRow).on_conflict_do_nothing(), list(recordings.values()))
            statement = (
                _insert(connection, EpochRow)
                .on_conflict_do_nothing(index_elements=list(_EPOCH_KEY))
                .returning(EpochRow.id, EpochRow.bed_id, EpochRow.recording_id, EpochRow.epoch)
            )
            new = connection.execute(statement, list(rows.values())).all()
        inserted = {(r.bed_id, r.recording_id, r.epoch): r.id for r in new}
        return [{"id": inserted[key], **row} for key, row in rows.items() if key in inserted]

    def insert_device_events(self, events: list[dict[str, Any]]) -> int:
        """Store technical events (stream lost/resumed, spool overflow); replays are ignored. Returns how
        many were new. ``MessageError`` naming the event and field if one is invalid."""
        rows: dict[tuple, dict[str, Any]] = {}
        for index, event in enumerate(events):
            row = device_event_row(event, what=f"device event {index}")
            rows.setdefault(tuple(row[k] for k in _DEVICE_KEY), row)
        if not rows:
            return 0
        now = time.time()
        for row in rows.values():
            row["stored_at"] = now
        with write_connection(self.engine) as connection:
            statement = (
                _insert(connection, DeviceEventRow)
                .on_conflict_do_nothing(index_elements=list(_DEVICE_KEY))
                .returning(DeviceEventRow.id)
            )
            return len(connection.execute(statement, list(rows.values())).all())

    # --- reads ------------------------------------------------------------------------------------

    def _latest_recordings(self, bed_id: str | None = None) -> Select:
        """Each bed's (or one bed's) latest recording by device start time."""
        ranked = select(
            RecordingRow.bed_id,
            RecordingRow.recording_id,
            RecordingRow.started_at,
            func.row_number()
            .over(
                partition_by=RecordingRow.bed_id,
                order_by=(RecordingRow.started_at.desc(), RecordingRow.first_seen_at.desc()),
            )
            .label("rank"),
        )
        if bed_id is not None:
            ranked = ranked.where(RecordingRow.bed_id == bed_id)
        ranked = ranked.subquery()
        return select(ranked.c.bed_id, ranked.c.recording_id, ranked.c.started_at).where(ranked.c.rank == 1)

    def _recording(self, connection: Connection, bed_id: str, recording_id: str | None) -> tuple[str, float]:
        """(recording id, started_at) of the bed's given or latest recording; ``UnknownBed`` if none."""
        if recording_id is None:
            found = connection.execute(self._latest_recordings(bed_id)).first()
        else:
            found = connection.execute(
                select(RecordingRow.recording_id, RecordingRow.started_at).where(
                    RecordingRow.bed_id == bed_id, RecordingRow.recording_id == recording_id
                )
            ).first()
        if found is None:
            what = f"bed {bed_id!r}" if recording_id is None else f"recording {recording_id!r} of bed {bed_id!r}"
            raise UnknownBed(f"no epochs stored for {what}")
        return found.recording_id, found.started_at

    def beds(self, stale_after_s: float, now: float | None = None) -> list[dict[str, Any]]:
        """Every bed's latest recording: last epoch, its stage, when it was stored, live or stale."""
        now = time.time() if now is None else now
        latest = self._latest_recordings().subquery()
        last = (
            select(
                EpochRow.bed_id,
                EpochRow.recording_id,
                func.max(EpochRow.epoch).label("last_epoch"),
                func.max(EpochRow.stored_at).label("updated_at"),
            )
            .join(latest, and_(EpochRow.bed_id == latest.c.bed_id, EpochRow.recording_id == latest.c.recording_id))
            .group_by(EpochRow.bed_id, EpochRow.recording_id)
            .subquery()
        )
        query = (
            select(last, EpochRow.stage)
            .join(
                EpochRow,
                and_(
                    EpochRow.bed_id == last.c.bed_id,
                    EpochRow.recording_id == last.c.recording_id,
                    EpochRow.epoch == last.c.last_epoch,
                ),
            )
            .order_by(last.c.bed_id)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            {
                "bed_id": row.bed_id,
                "recording_id": row.recording_id,
                "status": "live" if now - row.updated_at < stale_after_s else "stale",
                "last_epoch": row.last_epoch,
                "stage": row.stage,
                "updated_at": row.updated_at,
            }
            for row in rows
        ]

    def epochs(
        self, bed_id: str, since: int = 0, limit: int = 100, recording_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Epochs ``>= since`` of the bed's latest (or the given) recording, in epoch order, at most
        ``limit``; ``UnknownBed`` if the store has none of that bed/recording."""
        with self.engine.connect() as connection:
            recording, _ = self._recording(connection, bed_id, recording_id)
            rows = connection.execute(
                select(EPOCHS)
                .where(EpochRow.bed_id == bed_id, EpochRow.recording_id == recording, EpochRow.epoch >= since)
                .order_by(EpochRow.epoch)
                .limit(limit)
            ).all()
            return [_epoch_dict(row) for row in rows]

    def hypnogram(self, bed_id: str, recording_id: str | None = None) -> dict[str, Any]:
        """The stage of every epoch from 0 to the last stored one, ``"?"`` where an epoch is missing."""
        with self.engine.connect() as connection:
            recording, started_at = self._recording(connection, bed_id, recording_id)
            rows = connection.execute(
                select(EpochRow.epoch, EpochRow.stage, EpochRow.epoch_s)
                .where(EpochRow.bed_id == bed_id, EpochRow.recording_id == recording)
                .order_by(EpochRow.epoch)
            ).all()
        stages = [MISSING_STAGE] * (rows[-1].epoch + 1)  # a recording row is only ever stored with epochs
        for row in rows:
            stages[row.epoch] = row.stage
        return {
            "bed_id": bed_id,
            "recording_id": recording,
            "epoch_s": rows[0].epoch_s,
            "start_time": started_at,
            "stages": stages,
        }

    def count_epochs(self, bed_id: str | None = None, recording_id: str | None = None) -> int:
        """How many epochs are stored (of a bed, of a recording)."""
        query = select(func.count()).select_from(EpochRow)
        if bed_id is not None:
            query = query.where(EpochRow.bed_id == bed_id)
        if recording_id is not None:
            query = query.where(EpochRow.recording_id == recording_id)
        with self.engine.connect() as connection:
            return int(connection.scalar(query) or 0)

    # --- live feed --------------------------------------------------------------------------------

    def feed_head(self) -> Cursor:
        """The cursor just past everything stored now (where a new live-feed client starts)."""
        with self.engine.connect() as connection:
            return Cursor(
                int(connection.scalar(select(func.max(EpochRow.id))) or 0),
                int(connection.scalar(select(func.max(DeviceEventRow.id))) or 0),
            )

    def feed_since(
        self, cursor: Cursor | str | None = None, bed_id: str | None = None, limit: int = 500
    ) -> tuple[list[dict[str, Any]], Cursor]:
        """Epochs and device events stored after ``cursor`` (of one bed if given), in store order.

        Returns at most ``limit`` items ``{"kind": "epoch"|"device", "cursor": str, "data": {...}}``
        (``cursor`` = the position just after that item) and the cursor to ask from next time.
        Writers commit in id order (see ``store.engine``), so nothing is skipped.
        """
        if not isinstance(cursor, Cursor):
            cursor = Cursor() if cursor is None else Cursor.parse(cursor)
        head = self.feed_head()
        with self.engine.connect() as connection:
            epoch_query = select(EPOCHS).where(EpochRow.id > cursor.epoch_id, EpochRow.id <= head.epoch_id)
            event_query = select(DEVICE_EVENTS).where(
                DeviceEventRow.id > cursor.event_id, DeviceEventRow.id <= head.event_id
            )
            if bed_id is not None:
                epoch_query = epoch_query.where(EpochRow.bed_id == bed_id)
                event_query = event_query.where(DeviceEventRow.bed_id == bed_id)
            epochs = connection.execute(epoch_query.order_by(EpochRow.id).limit(limit)).all()
            events = connection.execute(event_query.order_by(DeviceEventRow.id).limit(limit)).all()
        merged = heapq.merge(
            (("epoch", row) for row in epochs), (("device", row) for row in events), key=lambda item: item[1].stored_at
        )
        items: list[dict[str, Any]] = []
        epoch_id, event_id = cursor.epoch_id, cursor.event_id
        for kind, row in merged:
            if len(items) == limit:
                return items, Cursor(epoch_id, event_id)
            if kind == "epoch":
                epoch_id = row.id
                data = _epoch_dict(row)
            else:
                event_id = row.id
                data = _device_dict(row)
            items.append({"kind": kind, "cursor": str(Cursor(epoch_id, event_id)), "data": data})
        if len(epochs) < limit and len(events) < limit:
            return items, head  # everything up to head was seen, including other beds' rows
        return items, Cursor(epoch_id, event_id)
