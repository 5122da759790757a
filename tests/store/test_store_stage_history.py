"""A real bed's stage measurements are stored with its epochs, so a worker taking the bed over resumes them."""

from __future__ import annotations

import pytest

from psg.errors import MessageError
from store import Store


def measured(epoch: int) -> dict:
    return {"spectral": [float(epoch)] * 3, "available": [1.0, 0.0], "eeg_ok": True, "yasa": None}


def test_measurements_are_kept_per_epoch_first_write_wins(store: Store, record) -> None:
    store.insert_epochs([record(e, stage_measurements=measured(e)) for e in (2, 0, 1)] + [record(3)])
    store.insert_epochs([record(1, stage_measurements=measured(99))])  # a replay keeps what was stored first
    assert store.stage_measurements("bed-1", "rec-1", before_epoch=10) == [(e, measured(e)) for e in (0, 1, 2)]
    assert store.stage_measurements("bed-1", "rec-1", before_epoch=2) == [(0, measured(0)), (1, measured(1))]
    assert store.stage_measurements("bed-1", "other", before_epoch=10) == []


@pytest.mark.parametrize(
    ("measurements", "message"),
    [
        ([1, 2], "field 'stage_measurements': expected an object or null"),
        ({"spectral": [float("nan")]}, "field 'stage_measurements': expected plain JSON"),
        ({"spectral": [0.5] * 10_000}, "field 'stage_measurements': .* bytes, expected at most"),
    ],
)
def test_bad_measurements_refuse_the_record(store: Store, record, measurements: object, message: str) -> None:
    with pytest.raises(MessageError, match=message):
        store.insert_epochs([record(0, stage_measurements=measurements)])
    assert store.count_epochs() == 0
