"""The live feed over a real uvicorn: epochs and device events stored after connecting arrive as SSE,
Last-Event-ID resumes exactly, the bed filter holds, and shutdown ends an open feed."""

from __future__ import annotations

import json
import time

import httpx
import pytest


def _lost(bed: str, at: float) -> dict:
    return {
        "kind": "technical",
        "bed_id": bed,
        "recording_id": "rec-1",
        "stream": "resp",
        "type": "stream_lost",
        "at": at,
        "detail": "no samples for 5 s",
    }


@pytest.mark.usefixtures("store_backend")
def test_feed_delivers_what_is_stored_after_connecting_and_resumes(api, store, record, read_sse) -> None:
    store.insert_epochs([record(0)])  # before connecting: not part of a fresh feed
    with api.client(timeout=10.0) as client:
        with client.stream("GET", "/api/stream") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = read_sse(response.iter_lines())
            hello = next(events)
            assert "comment" in hello and hello["retry"] == "2000"
            store.insert_epochs([record(1, stage="N3")])
            store.insert_device_events([_lost("bed-1", 1_700_000_100.0)])
            first, second = next(events), next(events)
        assert first["event"] == "epoch"
        epoch = json.loads(first["data"])
        assert (epoch["bed_id"], epoch["recording_id"], epoch["epoch"], epoch["stage"]) == ("bed-1", "rec-1", 1, "N3")
        assert set(epoch["captions"]) == {"stage_event", "brain", "cardiac", "respiratory", "somatic"}
        assert second["event"] == "device"
        assert json.loads(second["data"]) == {
            "bed_id": "bed-1",
            "recording_id": "rec-1",
            "stream": "resp",
            "type": "stream_lost",
            "at": 1_700_000_100.0,
            "detail": "no samples for 5 s",
        }

        # reconnect as a browser would, with the id of the last event it got: the feed goes on from there
        store.insert_epochs([record(2)])
        with client.stream("GET", "/api/stream", headers={"Last-Event-ID": first["id"]}) as response:
            events = read_sse(response.iter_lines())
            next(events)
            resumed = [next(events) for _ in range(2)]
        assert [(e["event"], e["id"]) for e in resumed] == [("device", second["id"]), ("epoch", resumed[1]["id"])]
        assert json.loads(resumed[1]["data"])["epoch"] == 2


@pytest.mark.usefixtures("store_backend")
def test_feed_filtered_by_bed(api, store, record, read_sse) -> None:
    with api.client(timeout=10.0) as client:
        with client.stream("GET", "/api/stream", params={"bed": "bed-2"}) as response:
            events = read_sse(response.iter_lines())
            next(events)
            store.insert_epochs([record(0, bed="bed-1"), record(1, bed="bed-1")])
            store.insert_device_events([_lost("bed-1", 5.0)])
            store.insert_epochs([record(0, bed="bed-2")])
            got = next(events)
    assert got["event"] == "epoch" and json.loads(got["data"])["bed_id"] == "bed-2"


def test_bad_last_event_id_is_a_clear_422(client: httpx.Client) -> None:
    response = client.get("/api/stream", headers={"Last-Event-ID": "yesterday"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "last-event-id"]


def test_shutdown_ends_an_open_feed_promptly(api, read_sse) -> None:
    with api.client(timeout=10.0) as client:
        with client.stream("GET", "/api/stream") as response:
            events = read_sse(response.iter_lines())
            next(events)
            took = api.stop()
            assert list(events) == []  # the stream ended cleanly (no error while reading)
    assert took < 3.0  # well under uvicorn's graceful timeout: the feed ended itself


def test_a_client_that_goes_away_ends_its_feed(api, read_sse) -> None:
    def running_requests() -> int:
        return len(api.server.server_state.tasks)  # uvicorn's request tasks: one per open feed

    with api.client(timeout=10.0) as client:
        with client.stream("GET", "/api/stream") as response:
            next(read_sse(response.iter_lines()))
            assert _within(5.0, lambda: running_requests() == 1), "the open feed is not a running request"
    assert _within(5.0, lambda: running_requests() == 0), "the feed kept running after its client left"


def _within(seconds: float, condition) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
