"""Fixtures of the store tests: a migrated SQLite file in tmp_path and caption records as the sink gets them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from store import Store


def make_record(epoch: int, bed: str = "bed-1", recording: str = "rec-1", stage: str = "N2", **extra: Any) -> dict:
    """A caption record exactly as ``sleep.captions`` carries it (schema key included)."""
    record = {
        "schema": 1,
        "bed_id": bed,
        "recording_id": recording,
        "epoch": epoch,
        "start_time": 1_700_000_000.0 + 30.0 * epoch,
        "epoch_s": 30.0,
        "stage": stage,
        "stage_source": "rules",
        "probabilities": None,
        "captions": {m: f"{m} text {epoch}" for m in ("stage_event", "brain", "cardiac", "respiratory", "somatic")},
        "features": {"hr_mean": 61.5, "spo2_min": 94.0},
        "quality": {"ECG": [], "AF": ["flat"]},
        "events": [{"type": "obstructive_apnea", "onset_s": 30.0 * epoch + 3.0, "duration_s": 12.0}],
        "advisories": [],
        "end_received_at": time.time() - 2.0,
        "runtime": "rules",
    }
    record.update(extra)
    return record


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'sleeplm.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store(db_url) as opened:
        yield opened


@pytest.fixture
def record() -> Callable[..., dict]:
    return make_record
