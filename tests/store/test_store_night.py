"""Waveforms (newest per bed), embeddings, the night's events and the ward overview from caption records."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from psg.errors import MessageError
from store import Store


def waveform(value: float, channels: int = 2, samples: int = 960) -> dict:
    data = np.full((channels, samples), value, dtype="<f2")
    return {
        "fs": 32.0,
        "channels": [f"C{i}" for i in range(channels)],
        "data_b64": base64.b64encode(data.tobytes()).decode(),
    }


def test_newest_waveform_per_bed_wins_even_out_of_order(store: Store, record) -> None:
    store.insert_epochs([record(1, waveform=waveform(1.0)), record(0, waveform=waveform(0.5))])
    wave = store.waveform("bed-1")
    assert wave["epoch"] == 1 and wave["fs"] == 32.0 and wave["channels"] == ["C0", "C1"]
    assert len(wave["signals"]) == 2 and len(wave["signals"][0]) == 960 and wave["signals"][0][0] == 1.0
    store.insert_epochs([record(0, recording="rec-0", waveform=waveform(9.0))])  # an older start time
    assert store.waveform("bed-1")["epoch"] == 1
    store.insert_epochs([record(2, waveform=waveform(2.0))])
    assert store.waveform("bed-1")["signals"][1][5] == 2.0
    assert store.waveform("bed-9") is None


def test_embeddings_are_kept_per_epoch(store: Store, record) -> None:
    vectors = np.eye(3, dtype=np.float32)
    store.insert_epochs([record(e, embedding=vectors[e].tolist()) for e in range(3)] + [record(3)])
    epochs, found = store.night_embeddings("bed-1", "rec-1")
    assert epochs.tolist() == [0, 1, 2] and np.array_equal(found, vectors)
    assert store.night_embeddings("bed-1", "other")[1].shape == (0, 0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"embedding": ["a"]}, "field 'embedding': expected a list"),
        ({"embedding": [float("inf")]}, "field 'embedding': expected finite numbers"),
        ({"waveform": {"fs": 32, "channels": ["a"], "data_b64": "***"}}, "field 'waveform.data_b64'"),
        ({"waveform": {"fs": -1, "channels": ["a"], "data_b64": ""}}, "field 'waveform.fs'"),
        ({"waveform": [1, 2]}, "field 'waveform': expected an object"),
    ],
)
def test_bad_waveform_or_embedding_refuses_the_record(store: Store, record, extra: dict, message: str) -> None:
    with pytest.raises(MessageError, match=message):
        store.insert_epochs([record(0, **extra)])
    assert store.count_epochs() == 0


def test_night_events_are_listed_once(store: Store, record) -> None:
    spanning = {"type": "hypopnea", "onset_s": 25.0, "duration_s": 15.0}
    store.insert_epochs(
        [
            record(0, events=[spanning]),
            record(1, events=[spanning, {"type": "desaturation", "onset_s": 40.0, "duration_s": 12.0}]),
        ]
    )
    assert [(e["type"], e["onset_s"]) for e in store.night_events("bed-1", "rec-1")] == [
        ("hypopnea", 25.0),
        ("desaturation", 40.0),
    ]


def test_ward_shows_latest_caption_vitals_and_top_alert(store: Store, record) -> None:
    store.insert_epochs(
        [
            record(0, features={"hr_bpm": 60.0, "spo2_mean": 97.0}),
            record(
                1,
                features={"hr_bpm": 58.0, "spo2_mean": float("nan")},
                quality={"SpO2": ["flat"], "ECG": [], "EEG C3-A2": ["band_limited"]},
            ),
            record(0, bed="bed-2"),
        ]
    )
    alert = {
        "id": "bed-1:desaturation:1",
        "bed_id": "bed-1",
        "recording_id": "rec-1",
        "type": "desaturation",
        "priority": "medium",
        "state": "raised",
        "raised_at": 50.0,
        "updated_at": 50.0,
        "evidence": {},
    }
    store.apply_alert_events([{"event": "raised", "alert": alert}])
    ward = {b["bed_id"]: b for b in store.ward(stale_after_s=90.0)}
    one = ward["bed-1"]
    assert (one["last_epoch"], one["caption"], one["hr"], one["spo2"]) == (1, "stage_event text 1", 58.0, None)
    assert one["bad_channels"] == ["SpO2"] and one["active_alerts"] == 1  # band_limited is not a fault
    assert one["top_alert"]["type"] == "desaturation" and one["top_alert"]["priority"] == "medium"
    assert ward["bed-2"]["top_alert"] is None and ward["bed-2"]["active_alerts"] == 0
