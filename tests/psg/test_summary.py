"""Night summary on a hand-built hypnogram: every number checked against the AASM definitions by hand."""

from __future__ import annotations

import numpy as np
import pytest

from psg.recording import Signal
from psg.summary import ahi_severity, night_summary, summary_caption
from psg.timeline import Event, Stage

W, N1, N2, N3, R, U = Stage.W, Stage.N1, Stage.N2, Stage.N3, Stage.R, Stage.UNSCORED
# 22 epochs = 11 min: 4 W, 2 N1, 4 N2, 2 W, 2 N2, 3 N3, 3 R, 2 W.
HYPNOGRAM = np.array([W, W, W, W, N1, N1, N2, N2, N2, N2, W, W, N2, N2, N3, N3, N3, R, R, R, W, W])
EVENTS = [
    Event("obstructive_apnea", 185.0, 12.0),  # epoch 6, N2: counts
    Event("hypopnea", 200.0, 15.0, subtype="obstructive"),  # epoch 6: counts
    Event("central_apnea", 310.0, 12.0),  # epoch 10, W: not during sleep
    Event("hypopnea", 400.0, 11.0),  # epoch 13, N2: counts
    Event("desaturation", 190.0, 20.0),
    Event("arousal", 520.0, 5.0),  # epoch 17, R
    Event("limb_movement", 200.0, 2.0),
]


def _spo2() -> Signal:
    data = np.full(HYPNOGRAM.size * 30, 95.0)
    data[180:200] = 88.0  # 20 s below 90 % in N2
    data[420:430] = 0.0  # probe off for 10 s during N3: excluded
    data[0:30] = 80.0  # while awake: not counted in sleep oximetry
    return Signal("SpO2", data, 1.0, "%")


def test_sleep_architecture_matches_hand_count() -> None:
    s = night_summary(HYPNOGRAM, EVENTS, _spo2())
    assert s["tib_min"] == 11.0
    assert s["tst_min"] == 7.0
    assert s["sleep_efficiency_pct"] == round(100 * 7 / 11, 2)
    assert s["sleep_onset_latency_min"] == 2.0
    assert s["rem_latency_min"] == 6.5  # epoch 17 - onset epoch 4 = 13 epochs
    assert s["waso_min"] == 2.0  # 11 - 2 - 7: the mid-night and final awakenings
    assert (s["n1_min"], s["n2_min"], s["n3_min"], s["r_min"]) == (1.0, 3.0, 1.5, 1.5)
    assert s["n2_pct_tst"] == round(100 * 3 / 7, 2)
    assert s["w_min"] == 4.0


def test_indices_count_only_events_during_sleep() -> None:
    s = night_summary(HYPNOGRAM, EVENTS, _spo2())
    assert (s["apnea_count"], s["hypopnea_count"]) == (1, 2)
    assert s["ahi"] == round(3 * 60 / 7, 2)
    assert s["odi"] == round(60 / 7, 2)
    assert s["arousal_index"] == round(60 / 7, 2)
    unscored = night_summary(HYPNOGRAM, EVENTS, None, arousals_scored=False)
    assert unscored["arousal_index"] is None and unscored["arousal_count"] is None
    assert "no arousal index (arousals not assessed)" in summary_caption(unscored)


def test_oximetry_during_sleep_excludes_probe_artifacts() -> None:
    s = night_summary(HYPNOGRAM, EVENTS, _spo2())
    assert s["spo2_min"] == 88.0
    assert s["spo2_mean"] == round((390 * 95 + 20 * 88) / 410, 2)
    assert s["t90_min"] == round(20 / 60, 2)
    assert s["t90_pct_tst"] == round(100 * 20 / 410, 2)


def test_no_sleep_gives_undefined_indices_not_zero() -> None:
    for stages in (np.full(10, W), np.full(10, U)):
        s = night_summary(stages, EVENTS, _spo2())
        assert s["tst_min"] == 0.0 and s["sleep_efficiency_pct"] == 0.0
        assert s["sleep_onset_latency_min"] is None and s["rem_latency_min"] is None and s["waso_min"] is None
        assert s["ahi"] is None and s["odi"] is None and s["spo2_mean"] is None
        assert "No sleep during the recording." in summary_caption(s)


def test_no_spo2_and_no_rem() -> None:
    stages = np.array([W, N2, N2, N3, W])
    s = night_summary(stages, [], None)
    assert s["rem_latency_min"] is None and s["spo2_min"] is None
    assert s["ahi"] == 0.0
    text = summary_caption(s)
    assert "no REM sleep occurred" in text and "SpO2 during sleep was not measurable" in text


def test_caption_carries_the_summary_numbers() -> None:
    s = night_summary(HYPNOGRAM, EVENTS, _spo2())
    text = summary_caption(s)
    for expected in (
        "11.0 min",
        "7.0 min",
        "63.6%",
        "REM latency 6.5 min",
        "25.7 events/h",
        "(moderate;",
        "lowest value of 88.0%",
        "N3 1.5 min (21.4% of sleep)",
    ):
        assert expected in text


@pytest.mark.parametrize(
    ("ahi", "label"), [(0.0, "within normal limits"), (5.0, "mild"), (29.9, "moderate"), (30.0, "severe")]
)
def test_ahi_severity_cutoffs(ahi: float, label: str) -> None:
    assert ahi_severity(ahi) == label
