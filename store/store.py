"""The store: what the sink writes and the API reads (SQLite file by default, PostgreSQL by URL).

Writes are idempotent: an epoch is keyed (bed, recording, epoch) and the first write wins, so a
worker that replays captions after a crash never changes or duplicates a stored epoch; the caller
learns which records were new (to count duplicates and observe latency). Every write is one
transaction. Reads are plain queries; the live feed pages through inserts by row id (``Cursor``).
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, func, select, text, tuple_
from sqlalchemy.engine import Connection, Row

from psg.codecs import INFO_FLAGS
from psg.errors import PSGError
from store.access_store import AccessStore
from store.alert_store import ALERT_EVENTS, PRIORITY_RANK, AlertStore
from store.dialect import insert_statement
from store.engine import make_engine, write_connection
from store.migrate import upgrade
from store.models import AlertEventRow, AlertRow, DeviceEventRow, EpochRow, RecordingRow
from store.night_store import NightStore, embedding_values, waveform_values, write_night_data
from store.records import caption_row, device_event_row
from store.stage_history_store import StageHistoryStore, stage_measurement_values, write_stage_measurements
from store.watch_store import WatchStore

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
    """A position in the live feed: the last epoch, device-event and alert-transition row ids delivered.

    Written ``"<epoch id>-<event id>-<alert id>"`` (the SSE event id a client sends back as
    ``Last-Event-ID``). The two-part form of older clients is read with the alert part at 0.
    """

    epoch_id: int = 0
    event_id: int = 0
    alert_id: int = 0

    def __str__(self) -> str:
        return f"{self.epoch_id}-{self.event_id}-{self.alert_id}"

    @classmethod
    def parse(cls, value: str) -> Cursor:
        """``Cursor`` from its text; ``PSGError`` saying the expected form otherwise."""
        parts = value.strip().split("-")
        if len(parts) not in (2, 3) or not all(part.isdigit() for part in parts):
            raise PSGError(f"cursor {value!r}: expected '<epoch id>-<event id>-<alert id>' (integers >= 0)")
        return cls(*(int(part) for part in parts))


def caption_values(record: Any, what: str = "caption record") -> tuple[dict, dict | None, dict | None, dict | None]:
    """A caption record's epoch row, waveform row, embedding row and stage-measurement row (the last three
    optional), validated: ``MessageError`` naming the record and field. The sink calls it per message to
    dead-letter exactly the bad ones; ``insert_epochs`` calls it again for the batch."""
    row = caption_row(record, what=what)
    return row, waveform_values(record, what), embedding_values(record, what), stage_measurement_values(record, what)


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


class Store(AlertStore, AccessStore, WatchStore, NightStore, StageHistoryStore):
    """The database at ``url``, migrated to this package's schema when opened.

    Epochs, device events and the live feed are here; alerts, tokens and audit, watch rules and
    thresholds, waveforms and embeddings are the mixins' (one module each)."""

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
        first wins, as for replays). A record's ``waveform``, ``embedding`` and ``stage_measurements`` are
        kept in the same transaction (``store.night_store``, ``store.stage_history_store``). ``MessageError``
        naming the record and field if one is invalid; then nothing is stored.
        """
        rows: dict[tuple, dict[str, Any]] = {}
        waveforms: list[dict[str, Any]] = []
        embeddings: list[dict[str, Any]] = []
        measurements: list[dict[str, Any]] = []
        for index, record in enumerate(records):
            row, waveform, embedding, measured = caption_values(record, what=f"caption record {index}")
            rows.setdefault(tuple(row[k] for k in _EPOCH_KEY), row)
            waveforms += [waveform] if waveform else []
            embeddings += [embedding] if embedding else []
            measurements += [measured] if measured else []
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
            connection.execute(
                insert_statement(connection, RecordingRow).on_conflict_do_nothing(), list(recordings.values())
            )
            statement = (
                insert_statement(connection, EpochRow)
                .on_conflict_do_nothing(index_elements=list(_EPOCH_KEY))
                .returning(EpochRow.id, EpochRow.bed_id, EpochRow.recording_id, EpochRow.epoch)
            )
            new = connection.execute(statement, list(rows.values())).all()
            write_night_data(connection, waveforms, embeddings, now)
            write_stage_measurements(connection, measurements)
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
                insert_statement(connection, DeviceEventRow)
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
        latest = ranked.subquery()
        return select(latest.c.bed_id, latest.c.recording_id, latest.c.started_at).where(latest.c.rank == 1)

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
                int(connection.scalar(select(func.max(AlertEventRow.id))) or 0),
            )

    def feed_since(
        self, cursor: Cursor | str | None = None, bed_id: str | None = None, limit: int = 500
    ) -> tuple[list[dict[str, Any]], Cursor]:
        """Epochs, device events and alert transitions stored after ``cursor`` (of one bed if given), in
        store order.

        Returns at most ``limit`` items ``{"kind": "epoch"|"device"|"alert", "cursor": str, "data": {...}}``
        (``cursor`` = the position just after that item) and the cursor to ask from next time. An alert
        item's data is the alert as it was after the transition, plus ``transition`` (raised, updated,
        acknowledged, escalated, resolved). Writers commit in id order (see ``store.engine``), so
        nothing is skipped.
        """
        if not isinstance(cursor, Cursor):
            cursor = Cursor() if cursor is None else Cursor.parse(cursor)
        head = self.feed_head()
        sources = (
            ("epoch", EPOCHS, EpochRow, cursor.epoch_id, head.epoch_id),
            ("device", DEVICE_EVENTS, DeviceEventRow, cursor.event_id, head.event_id),
            ("alert", ALERT_EVENTS, AlertEventRow, cursor.alert_id, head.alert_id),
        )
        fetched: dict[str, Sequence[Row]] = {}
        with self.engine.connect() as connection:
            for kind, table, model, after, upto in sources:
                query = select(table).where(model.id > after, model.id <= upto)
                if bed_id is not None:
                    query = query.where(model.bed_id == bed_id)
                fetched[kind] = connection.execute(query.order_by(model.id).limit(limit)).all()
        tagged = (_tagged(kind, rows) for kind, rows in fetched.items())
        merged = heapq.merge(*tagged, key=lambda item: item[1].stored_at)
        items: list[dict[str, Any]] = []
        position = {"epoch": cursor.epoch_id, "device": cursor.event_id, "alert": cursor.alert_id}
        for kind, row in merged:
            if len(items) == limit:
                return items, Cursor(position["epoch"], position["device"], position["alert"])
            position[kind] = row.id
            items.append(
                {
                    "kind": kind,
                    "cursor": str(Cursor(position["epoch"], position["device"], position["alert"])),
                    "data": _FEED_DATA[kind](row),
                }
            )
        if all(len(rows) < limit for rows in fetched.values()):
            return items, head  # everything up to head was seen, including other beds' rows
        return items, Cursor(position["epoch"], position["device"], position["alert"])

    # --- the ward ---------------------------------------------------------------------------------

    def ward(self, stale_after_s: float, now: float | None = None) -> list[dict[str, Any]]:
        """Per bed (latest recording): ``beds`` plus the latest epoch's stage_event caption, SpO2 and heart
        rate, its bad channels, the active alert count and the highest-priority active alert."""
        beds = self.beds(stale_after_s, now)
        if not beds:
            return []
        keys = [(b["bed_id"], b["recording_id"], b["last_epoch"]) for b in beds]
        with self.engine.connect() as connection:
            latest = {
                (r.bed_id, r.recording_id, r.epoch): r
                for r in connection.execute(
                    select(
                        EpochRow.bed_id,
                        EpochRow.recording_id,
                        EpochRow.epoch,
                        EpochRow.captions,
                        EpochRow.features,
                        EpochRow.quality,
                    ).where(tuple_(EpochRow.bed_id, EpochRow.recording_id, EpochRow.epoch).in_(keys))
                ).all()
            }
            active = connection.execute(select(AlertRow).where(AlertRow.state.in_(("raised", "acknowledged")))).all()
        by_bed: dict[str, list[Row]] = {}
        for alert in active:
            by_bed.setdefault(alert.bed_id, []).append(alert)
        out = []
        for bed, key in zip(beds, keys, strict=True):
            row = latest.get(key)
            features = row.features if row is not None else {}
            alerts = sorted(
                by_bed.get(bed["bed_id"], []),
                key=lambda a: (PRIORITY_RANK.get(a.priority, 9), a.state != "raised", -a.raised_at),
            )
            top = alerts[0] if alerts else None
            out.append(
                {
                    **bed,
                    "caption": row.captions.get("stage_event") if row is not None else None,
                    "spo2": _finite(features.get("spo2_mean")),
                    "hr": _finite(features.get("hr_bpm")),
                    "bad_channels": sorted(
                        c for c, flags in (row.quality if row is not None else {}).items() if set(flags) - INFO_FLAGS
                    ),
                    "active_alerts": len(alerts),
                    "top_alert": None
                    if top is None
                    else {
                        "id": top.id,
                        "type": top.type,
                        "priority": top.priority,
                        "state": top.state,
                        "escalated": bool(top.escalated),
                        "raised_at": top.raised_at,
                    },
                }
            )
        return out


def _tagged(kind: str, rows: Sequence[Row]) -> Iterator[tuple[str, Row]]:
    for row in rows:
        yield kind, row


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _alert_feed_dict(row: Row) -> dict[str, Any]:
    return {**row.alert, "transition": row.kind}


_FEED_DATA = {"epoch": _epoch_dict, "device": _device_dict, "alert": _alert_feed_dict}
