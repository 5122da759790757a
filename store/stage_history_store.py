"""A real bed's stage measurements, kept so that a worker taking the bed over mid-night resumes its history.

Why: the live stage head stages a real bed's epoch against the bed's night so far (robust scaling, YASA's
smoothing), a history the runtime keeps in memory. A worker restart or a rebalance used to start it again
mid-night, and the next 40 epochs were right about half as often (``benchmarks/RESULTS.md``, "How much
history the live stage head needs"). The sink stores each record's ``stage_measurements`` (~2.5 KB per epoch
of a real bed; simulated beds carry none) in the sink's transaction, insert-or-ignore like the epoch; the
inference agent reads a bed's back on first sight of it (``stage_measurements``), as the alert monitor takes
a bed's active alerts over from the store.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from psg.errors import MessageError
from store.dialect import insert_statement
from store.models import StageMeasurementRow

#: Largest ``stage_measurements`` object a record may carry, as JSON (a two-EEG full montage is ~2.5 KB).
MAX_MEASUREMENT_BYTES = 32 * 1024


def stage_measurement_values(record: dict[str, Any], what: str = "caption record") -> dict[str, Any] | None:
    """The ``stage_measurements`` row of a record (None without them); ``MessageError`` naming the field.
    Their inner fields are the runtime's to check (``psg.features.live_stage``): a bad one is skipped there."""
    measurements = record.get("stage_measurements")
    if measurements is None:
        return None
    if not isinstance(measurements, dict):
        raise MessageError(f"{what} field 'stage_measurements': expected an object or null")
    try:
        size = len(json.dumps(measurements, allow_nan=False))
    except (TypeError, ValueError):
        raise MessageError(f"{what} field 'stage_measurements': expected plain JSON (finite numbers)") from None
    if size > MAX_MEASUREMENT_BYTES:
        raise MessageError(f"{what} field 'stage_measurements': {size} bytes, expected at most {MAX_MEASUREMENT_BYTES}")
    return {
        "bed_id": record["bed_id"],
        "recording_id": record["recording_id"],
        "epoch": record["epoch"],
        "measurements": measurements,
    }


def write_stage_measurements(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """In the sink's transaction: insert-or-ignore (a replayed epoch keeps what was stored first)."""
    if rows:
        connection.execute(
            insert_statement(connection, StageMeasurementRow).on_conflict_do_nothing(
                index_elements=["bed_id", "recording_id", "epoch"]
            ),
            rows,
        )


class StageHistoryStore:
    """Mixin of ``store.Store``: needs ``self.engine``."""

    engine: Engine

    def stage_measurements(self, bed_id: str, recording_id: str, before_epoch: int) -> list[tuple[int, dict[str, Any]]]:
        """(epoch, measurements) of one recording's epochs before ``before_epoch``, in epoch order."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(StageMeasurementRow.epoch, StageMeasurementRow.measurements)
                .where(
                    StageMeasurementRow.bed_id == bed_id,
                    StageMeasurementRow.recording_id == recording_id,
                    StageMeasurementRow.epoch < before_epoch,
                )
                .order_by(StageMeasurementRow.epoch)
            ).all()
        return [(int(r.epoch), dict(r.measurements)) for r in rows]
