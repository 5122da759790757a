"""The Timeline/Event types: validation with clear messages, stage parsing, time queries."""

import numpy as np
import pytest

from psg.errors import PSGError
from psg.timeline import Event, Stage, Timeline


def test_stage_labels_parse_rk_and_aasm_spellings() -> None:
    assert Stage.from_label("Sleep stage 4") is Stage.N3
    assert Stage.from_label("S3") is Stage.N3
    assert Stage.from_label("REM") is Stage.R
    assert Stage.from_label("?") is Stage.UNSCORED
    assert Stage.N2.label == "N2" and Stage.UNSCORED.label == "?"
    with pytest.raises(PSGError, match="unknown sleep stage label 'Q'"):
        Stage.from_label("Q")


def test_event_rejects_unknown_type_and_negative_times() -> None:
    with pytest.raises(PSGError, match="unknown event type 'apnoea'"):
        Event("apnoea", 0.0, 10.0)
    with pytest.raises(PSGError, match="onset_s"):
        Event("hypopnea", -1.0, 10.0)
    with pytest.raises(PSGError, match="duration_s"):
        Event("hypopnea", 1.0, float("nan"))


def test_timeline_validates_stage_codes_and_beats() -> None:
    with pytest.raises(PSGError, match=r"stage codes \[7\]"):
        Timeline("r1", np.array([0, 7]))
    with pytest.raises(PSGError, match="strictly increasing"):
        Timeline("r1", np.array([0, 1]), beat_times_s=np.array([1.0, 0.5]))


def test_timeline_queries() -> None:
    tl = Timeline(
        "r1",
        np.array([Stage.W, Stage.N1, Stage.N2, Stage.N2, Stage.W]),
        events=[Event("hypopnea", 70.0, 15.0, subtype="obstructive"), Event("arousal", 10.0, 5.0)],
    )
    assert tl.n_epochs == 5 and tl.duration_s == 150.0
    assert [e.type for e in tl.events] == ["arousal", "hypopnea"]  # sorted by onset
    assert tl.stage_at(65.0) is Stage.N2 and tl.stage_at(1e6) is Stage.UNSCORED
    assert [e.type for e in tl.events_in(60.0, 90.0)] == ["hypopnea"]
    assert tl.sleep_period() == (1, 3)
    assert Timeline("r2", np.zeros(3)).sleep_period() is None
