"""REST routes over a real uvicorn and SQLite: shapes exactly as the issue lists them, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

MODALITIES = ("stage_event", "brain", "cardiac", "respiratory", "somatic")


@pytest.mark.usefixtures("store_backend")
def test_health_reports_store_and_version(client: httpx.Client) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": response.json()["version"], "store": "ok"}
    assert response.json()["version"]


@pytest.mark.usefixtures("store_backend")
def test_beds_epochs_and_hypnogram_have_exactly_the_issue_fields(client: httpx.Client, store, record) -> None:
    store.insert_epochs([record(e, stage=s) for e, s in [(0, "W"), (1, "N1"), (3, "N2")]])
    store.insert_epochs([record(0, bed="bed-2", stage="R")])

    beds = client.get("/api/beds").json()
    assert [set(bed) for bed in beds] == [{"bed_id", "recording_id", "status", "last_epoch", "stage", "updated_at"}] * 2
    assert [(b["bed_id"], b["recording_id"], b["status"], b["last_epoch"], b["stage"]) for b in beds] == [
        ("bed-1", "rec-1", "live", 3, "N2"),
        ("bed-2", "rec-1", "live", 0, "R"),
    ]

    epochs = client.get("/api/beds/bed-1/epochs", params={"since": 1, "limit": 5}).json()
    assert [set(e) for e in epochs] == [{"epoch", "start_time", "stage", "captions", "features", "quality"}] * 2
    assert [e["epoch"] for e in epochs] == [1, 3]
    assert set(epochs[0]["captions"]) == set(MODALITIES)
    assert epochs[0] == {
        "epoch": 1,
        "start_time": 1_700_000_030.0,
        "stage": "N1",
        "captions": {m: f"{m} text 1" for m in MODALITIES},
        "features": {"hr_mean": 61.5},
        "quality": {"ECG": [], "AF": ["flat"]},
    }
    assert [e["epoch"] for e in client.get("/api/beds/bed-1/epochs", params={"limit": 1}).json()] == [0]

    assert client.get("/api/beds/bed-1/hypnogram").json() == {
        "bed_id": "bed-1",
        "recording_id": "rec-1",
        "epoch_s": 30.0,
        "start_time": 1_700_000_000.0,
        "stages": ["W", "N1", "?", "N2"],
    }


@pytest.mark.usefixtures("store_backend")
def test_unknown_bed_is_404_and_bad_parameters_are_422(client: httpx.Client, store, record) -> None:
    store.insert_epochs([record(0)])
    for path in ("/api/beds/bed-9/epochs", "/api/beds/bed-9/hypnogram"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "no epochs stored for bed 'bed-9'"}
    missing = client.get("/api/beds/bed-1/epochs", params={"recording": "rec-7"})
    assert missing.status_code == 404 and "recording 'rec-7' of bed 'bed-1'" in missing.json()["detail"]
    for params, field in [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"since": -1}, "since"),
        ({"since": "x"}, "since"),
    ]:
        response = client.get("/api/beds/bed-1/epochs", params=params)
        assert response.status_code == 422
        assert [e["loc"] for e in response.json()["detail"]] == [["query", field]]
    assert client.get("/api/beds/bed-1/epochs", params={"limit": 1000}).status_code == 200


def test_unreachable_store_is_503_not_500(serve, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the database folder should be")
    api = serve(db_url=f"sqlite:///{blocker / 'sleeplm.db'}")
    # no token can be made in a store that cannot open; any token-shaped one reaches the store check
    with httpx.Client(base_url=api.url, headers={"Authorization": "Bearer slm_unverifiable"}) as client:
        health = client.get("/api/health")
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable" and "unavailable" in health.json()["store"]
        beds = client.get("/api/beds")
        assert beds.status_code == 503 and "store" in beds.json()["detail"]
    assert os.path.isfile(blocker)
