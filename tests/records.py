"""Caption records exactly as ``sleep.captions`` carries them, for the store and API tests."""

from __future__ import annotations

import time
from typing import Any


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
