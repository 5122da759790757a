"""The live feed: epochs, device events and alert transitions after a cursor, in store order, paged, per bed."""

from __future__ import annotations

import pytest

from psg.errors import PSGError
from store import Cursor, Store


def _lost(bed: str, at: float) -> dict:
    return {"bed_id": bed, "recording_id": "rec-1", "stream": "resp", "type": "stream_lost", "at": at, "detail": ""}


def test_feed_pages_through_epochs_and_events_in_store_order(store: Store, record) -> None:
    start = store.feed_head()
    assert start == Cursor(0, 0)
    store.insert_epochs([record(0), record(1)])
    store.insert_device_events([_lost("bed-1", 1.0)])
    store.insert_epochs([record(2, bed="bed-2")])

    items, cursor = store.feed_since(start)
    assert [(i["kind"], i["cursor"]) for i in items] == [
        ("epoch", "1-0-0"),
        ("epoch", "2-0-0"),
        ("device", "2-1-0"),
        ("epoch", "3-1-0"),
    ]
    assert items[2]["data"] == {
        "bed_id": "bed-1",
        "recording_id": "rec-1",
        "stream": "resp",
        "type": "stream_lost",
        "at": 1.0,
        "detail": "",
    }
    assert items[3]["data"]["bed_id"] == "bed-2" and items[3]["data"]["stage"] == "N2"
    assert cursor == Cursor(3, 1) == store.feed_head()
    assert store.feed_since(cursor) == ([], cursor)

    first, after_two = store.feed_since(start, limit=2)
    rest, end = store.feed_since(str(after_two), limit=2)
    assert [i["cursor"] for i in first + rest] == [i["cursor"] for i in items]
    assert end == cursor


def test_feed_filtered_by_bed_skips_other_beds_and_moves_on(store: Store, record) -> None:
    store.insert_epochs([record(e, bed="bed-1") for e in range(3)])
    store.insert_device_events([_lost("bed-2", 5.0)])
    store.insert_epochs([record(0, bed="bed-2")])
    items, cursor = store.feed_since(None, bed_id="bed-2")
    assert [(i["kind"], i["data"]["bed_id"]) for i in items] == [("device", "bed-2"), ("epoch", "bed-2")]
    assert cursor == store.feed_head()
    nothing, same = store.feed_since(cursor, bed_id="bed-2")
    assert nothing == [] and same == cursor


def test_cursor_text_round_trips_and_bad_text_is_explained() -> None:
    assert Cursor.parse(str(Cursor(12, 3, 7))) == Cursor(12, 3, 7)
    assert Cursor.parse("12-3") == Cursor(12, 3, 0)  # the form of clients from before alerts
    with pytest.raises(PSGError, match=r"cursor 'abc': expected '<epoch id>-<event id>-<alert id>'"):
        Cursor.parse("abc")
