"""Idempotent writes and the reads the API serves, on a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import time

import pytest

from psg.errors import MessageError
from store import Store, UnknownBed


def test_insert_returns_new_rows_with_store_time_and_latency(store: Store, record) -> None:
    before = time.time()
    new = store.insert_epochs([record(0), record(1)])
    assert [row["epoch"] for row in new] == [0, 1]
    for row in new:
        assert before <= row["stored_at"] <= time.time()
        assert row["latency_s"] == pytest.approx(row["stored_at"] - row["end_received_at"])
        assert 1.9 < row["latency_s"] < 10.0
        assert isinstance(row["id"], int)
    assert store.count_epochs("bed-1") == 2


def test_duplicates_are_ignored_and_reported_first_write_wins(store: Store, record) -> None:
    store.insert_epochs([record(0, stage="W"), record(1)])
    replay = store.insert_epochs([record(0, stage="R"), record(1), record(2), record(2, stage="R")])
    assert [row["epoch"] for row in replay] == [2]  # 0 and 1 were stored, 2 appears twice in the batch
    assert store.count_epochs() == 3
    stored = {row["epoch"]: row["stage"] for row in store.epochs("bed-1")}
    assert stored == {0: "W", 1: "N2", 2: "N2"}
    assert store.insert_epochs([]) == []


def test_an_invalid_record_names_the_field_and_stores_nothing(store: Store, record) -> None:
    with pytest.raises(MessageError, match=r"caption record 1 field 'epoch': expected an integer >= 0, got -3"):
        store.insert_epochs([record(0), record(-3)])
    with pytest.raises(MessageError, match=r"caption record 0 field 'start_time': expected a finite number"):
        store.insert_epochs([record(0, start_time=float("nan"))])
    with pytest.raises(MessageError, match=r"field 'captions.brain': expected a string"):
        store.insert_epochs([record(0, captions={**record(0)["captions"], "brain": 3})])
    with pytest.raises(MessageError, match=r"field 'captions.stage_event': expected a string, got None"):
        store.insert_epochs([record(0, captions={"brain": "b"})])
    with pytest.raises(MessageError, match=r"field 'bed_id': expected a non-empty string"):
        store.insert_epochs([record(0, bed="")])
    assert store.count_epochs() == 0


def test_epochs_since_limit_and_unknown_bed(store: Store, record) -> None:
    store.insert_epochs([record(e) for e in range(10)])
    page = store.epochs("bed-1", since=4, limit=3)
    assert [row["epoch"] for row in page] == [4, 5, 6]
    first = page[0]
    assert first["start_time"] == 1_700_000_000.0 + 120.0
    assert first["captions"]["brain"] == "brain text 4"
    assert first["quality"] == {"ECG": [], "AF": ["flat"]}
    assert first["features"]["hr_mean"] == 61.5
    assert first["events"][0]["type"] == "obstructive_apnea"
    with pytest.raises(UnknownBed, match="bed 'bed-9'"):
        store.epochs("bed-9")
    with pytest.raises(UnknownBed, match="recording 'nope' of bed 'bed-1'"):
        store.epochs("bed-1", recording_id="nope")


def test_hypnogram_marks_missing_epochs(store: Store, record) -> None:
    store.insert_epochs([record(0, stage="W"), record(1, stage="N1"), record(4, stage="N3")])
    hypnogram = store.hypnogram("bed-1")
    assert hypnogram == {
        "bed_id": "bed-1",
        "recording_id": "rec-1",
        "epoch_s": 30.0,
        "start_time": 1_700_000_000.0,
        "stages": ["W", "N1", "?", "?", "N3"],
    }
    with pytest.raises(UnknownBed):
        store.hypnogram("bed-2")


def test_beds_show_the_latest_recording_live_or_stale(store: Store, record) -> None:
    store.insert_epochs([record(e, bed="bed-1", stage="N2") for e in range(3)])
    store.insert_epochs([record(0, bed="bed-2", stage="W")])
    # bed-2 starts a new night (later device start): the overview follows it
    store.insert_epochs([record(0, bed="bed-2", recording="rec-2", stage="N1", start_time=1_800_000_000.0)])
    now = time.time()
    beds = store.beds(stale_after_s=90.0, now=now)
    assert [(b["bed_id"], b["recording_id"], b["last_epoch"], b["stage"], b["status"]) for b in beds] == [
        ("bed-1", "rec-1", 2, "N2", "live"),
        ("bed-2", "rec-2", 0, "N1", "live"),
    ]
    assert all(now - 5 < b["updated_at"] <= now for b in beds)
    later = store.beds(stale_after_s=90.0, now=now + 91.0)
    assert {b["status"] for b in later} == {"stale"}
    assert store.epochs("bed-2")[0]["recording_id"] == "rec-2"
    assert [r["epoch"] for r in store.epochs("bed-2", recording_id="rec-1")] == [0]


def test_device_events_replays_are_ignored(store: Store) -> None:
    event = {
        "kind": "technical",
        "bed_id": "bed-1",
        "recording_id": "rec-1",
        "stream": "exg",
        "type": "stream_lost",
        "at": 1_700_000_100.0,
        "detail": "no samples for 5 s",
    }
    assert store.insert_device_events([event, dict(event)]) == 1
    assert store.insert_device_events([event, {**event, "type": "stream_resumed", "at": 1_700_000_130.0}]) == 1
    with pytest.raises(MessageError, match=r"device event 0 field 'at': expected a finite number"):
        store.insert_device_events([{**event, "at": "soon"}])


def test_the_store_requires_every_caption_level_of_the_contract() -> None:
    """One definition of the caption levels (``psg.contracts``): the captions package writes them, and the
    store refuses a record without any one of them, naming it."""
    from psg.captions import MODALITIES
    from psg.contracts import CAPTION_LEVELS
    from psg.errors import MessageError
    from store.records import caption_row
    from tests.records import make_record

    assert MODALITIES == CAPTION_LEVELS
    caption_row(make_record(0))
    for level in CAPTION_LEVELS:
        record = make_record(0)
        del record["captions"][level]
        with pytest.raises(MessageError, match=f"captions.{level}"):
            caption_row(record)


def test_what_postgresql_would_refuse_is_named_or_kept_on_both_backends(store: Store, record) -> None:
    """Found running this suite on PostgreSQL: a non-finite number inside a JSON column (``json`` refuses the
    ``NaN`` token) and a stage_source/runtime longer than its VARCHAR failed the whole batch there with a
    DataError the sink does not expect. Now: JSON stores them as null (as the API shows them) and the
    lengths are checked with the rest of the record, the same on SQLite."""
    nan, inf = float("nan"), float("inf")
    new = store.insert_epochs(
        [record(0, features={"spo2_mean": nan, "hr_bpm": inf, "ok": 1.5}, probabilities=[0.5, nan, 0.5, 0.0, 0.0])]
    )
    assert len(new) == 1
    assert store.epochs("bed-1")[0]["features"] == {"spo2_mean": None, "hr_bpm": None, "ok": 1.5}
    with pytest.raises(MessageError, match=r"field 'stage_source': expected a string of at most 32 characters"):
        store.insert_epochs([record(1, stage_source="x" * 33)])
    with pytest.raises(MessageError, match=r"field 'runtime': expected a string of at most 64 characters"):
        store.insert_epochs([record(1, runtime="x" * 65)])
    assert len(store.insert_epochs([record(1, stage_source="x" * 32, runtime="y" * 64)])) == 1
    assert store.count_epochs() == 2
