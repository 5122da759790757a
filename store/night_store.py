"""What the bed view shows beyond epochs: the latest waveform, the night's events, its embeddings (search).

Caption records may carry two optional fields that the sink keeps next to the epoch, in the epoch's
own transaction (``Store.insert_epochs``):

* ``waveform``: ``{"fs", "channels", "data_b64"}``, the epoch's model-montage traces downsampled and as
  float16 (``data_b64`` = base64 of little-endian float16, channels x samples). Only the newest epoch
  of each bed is kept: the nurse looks at the last 30 s, and a night of traces per bed would be 50 MB.
* ``embedding``: the epoch's unit vector in SleepLM's joint space, kept for every epoch (256 bytes)
  so a clinician can search the whole night in plain language.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from psg.errors import MessageError
from store.dialect import insert_statement
from store.models import EmbeddingRow, EpochRow, WaveformRow

WAVEFORMS = WaveformRow.__table__
EMBEDDINGS = EmbeddingRow.__table__
#: Longest embedding a record may carry (SleepLM-Base uses 512).
MAX_EMBEDDING_DIM = 2048
MAX_WAVEFORM_VALUES = 64 * 1920


def waveform_values(record: dict[str, Any], what: str = "caption record") -> dict[str, Any] | None:
    """The ``waveforms`` row of a record's ``waveform`` field (None without one); ``MessageError`` naming it."""
    wave = record.get("waveform")
    if wave is None:
        return None
    if not isinstance(wave, dict):
        raise MessageError(f"{what} field 'waveform': expected an object with fs, channels and data_b64")
    fs, channels, data = wave.get("fs"), wave.get("channels"), wave.get("data_b64")
    if isinstance(fs, bool) or not isinstance(fs, (int, float)) or not 0 < fs <= 1024:
        raise MessageError(f"{what} field 'waveform.fs': expected a rate in (0, 1024] Hz, got {fs!r}")
    if not isinstance(channels, list) or not channels or not all(isinstance(c, str) for c in channels):
        raise MessageError(f"{what} field 'waveform.channels': expected a non-empty list of channel labels")
    try:
        raw = base64.b64decode(data, validate=True) if isinstance(data, str) else None
    except (binascii.Error, ValueError):
        raw = None
    if raw is None or len(raw) % (2 * len(channels)) or not 0 < len(raw) // 2 <= MAX_WAVEFORM_VALUES:
        raise MessageError(
            f"{what} field 'waveform.data_b64': expected base64 float16 samples, {len(channels)} channels x n"
        )
    return {
        "bed_id": record["bed_id"],
        "recording_id": record["recording_id"],
        "epoch": record["epoch"],
        "start_time": float(record["start_time"]),
        "fs": float(fs),
        "channels": channels,
        "data": raw,
    }


def embedding_values(record: dict[str, Any], what: str = "caption record") -> dict[str, Any] | None:
    """The ``embeddings`` row of a record's ``embedding`` field (None without one); ``MessageError`` naming it."""
    vector = record.get("embedding")
    if vector is None:
        return None
    if (
        not isinstance(vector, list)
        or not 0 < len(vector) <= MAX_EMBEDDING_DIM
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vector)
    ):
        raise MessageError(f"{what} field 'embedding': expected a list of at most {MAX_EMBEDDING_DIM} numbers")
    try:
        with np.errstate(over="ignore"):  # a float beyond float32 becomes inf, refused just below
            array = np.asarray(vector, dtype="<f4")
    except OverflowError:  # an integer beyond any float (Python ints are unbounded)
        array = np.full(len(vector), np.inf, dtype="<f4")
    if not np.all(np.isfinite(array)):
        raise MessageError(f"{what} field 'embedding': expected finite numbers")
    return {
        "bed_id": record["bed_id"],
        "recording_id": record["recording_id"],
        "epoch": record["epoch"],
        "vector": array.tobytes(),
    }


def write_night_data(
    connection: Connection, waveforms: list[dict[str, Any]], embeddings: list[dict[str, Any]], now: float
) -> None:
    """In the sink's transaction: embeddings insert-or-ignore, each bed's newest waveform replaces an older one."""
    if embeddings:
        connection.execute(
            insert_statement(connection, EmbeddingRow).on_conflict_do_nothing(
                index_elements=["bed_id", "recording_id", "epoch"]
            ),
            embeddings,
        )
    newest: dict[str, dict[str, Any]] = {}
    for row in waveforms:
        if row["bed_id"] not in newest or row["start_time"] > newest[row["bed_id"]]["start_time"]:
            newest[row["bed_id"]] = row
    for row in newest.values():
        statement = insert_statement(connection, WaveformRow).values(**row, stored_at=now)
        statement = statement.on_conflict_do_update(
            index_elements=["bed_id"],
            set_={name: statement.excluded[name] for name in (*row, "stored_at") if name != "bed_id"},
            where=WaveformRow.start_time < statement.excluded.start_time,
        )
        connection.execute(statement)


class NightStore:
    """Mixin of ``store.Store``: needs ``self.engine``."""

    engine: Engine

    def waveform(self, bed_id: str) -> dict[str, Any] | None:
        """The bed's newest stored traces: ``{"recording_id", "epoch", "start_time", "fs", "channels",
        "signals": [[...], ...]}`` (z-scored, model montage), or None."""
        with self.engine.connect() as connection:
            row = connection.execute(select(WAVEFORMS).where(WaveformRow.bed_id == bed_id)).first()
        if row is None:
            return None
        samples = np.frombuffer(row.data, dtype="<f2").astype(np.float32).reshape(len(row.channels), -1)
        return {
            "bed_id": bed_id,
            "recording_id": row.recording_id,
            "epoch": row.epoch,
            "start_time": row.start_time,
            "fs": row.fs,
            "channels": list(row.channels),
            "signals": [[round(float(v), 3) for v in channel] for channel in samples],
        }

    def night_embeddings(self, bed_id: str, recording_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(epoch indices (n,), unit vectors (n, E)) of one recording, in epoch order; empty arrays if none."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(EmbeddingRow.epoch, EmbeddingRow.vector)
                .where(EmbeddingRow.bed_id == bed_id, EmbeddingRow.recording_id == recording_id)
                .order_by(EmbeddingRow.epoch)
            ).all()
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return (
            np.array([r.epoch for r in rows], np.int64),
            np.stack([np.frombuffer(r.vector, dtype="<f4") for r in rows]),
        )

    def night_events(self, bed_id: str, recording_id: str) -> list[dict[str, Any]]:
        """Every distinct detector event of a recording (an event spanning two epochs is listed once),
        in onset order, times in seconds from the recording start."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(EpochRow.events)
                .where(EpochRow.bed_id == bed_id, EpochRow.recording_id == recording_id)
                .order_by(EpochRow.epoch)
            ).all()
        seen: dict[tuple[str, float], dict[str, Any]] = {}
        for row in rows:
            for event in row.events or []:
                key = (str(event.get("type")), round(float(event.get("onset_s", 0.0)), 1))
                # the later epoch's window saw more of an event the earlier one cut short: keep the longest
                if float(event.get("duration_s") or 0.0) >= float(seen.get(key, {}).get("duration_s") or 0.0):
                    seen[key] = event
        return sorted(seen.values(), key=lambda e: float(e.get("onset_s", 0.0)))

    def night_captions(self, bed_id: str, recording_id: str) -> list[dict[str, Any]]:
        """Every stored epoch of a recording as ``{"epoch", "start_time", "stage", "captions"}``, in epoch order
        (what a search over the night ranks)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(EpochRow.epoch, EpochRow.start_time, EpochRow.stage, EpochRow.captions)
                .where(EpochRow.bed_id == bed_id, EpochRow.recording_id == recording_id)
                .order_by(EpochRow.epoch)
            ).all()
        return [dict(row._mapping) for row in rows]
