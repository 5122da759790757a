"""Discontinuous recordings (EDF+D): nothing is detected, measured, staged or counted from a gap's zeros.

The recordings are simulated nights with a stretch zeroed and declared a gap (``Recording.gaps``), which is
what the EDF reader makes of an EDF+D file's missing records.
"""

from __future__ import annotations

import numpy as np
import pytest

from psg.captions import caption_night
from psg.captions.gaps import gap_sentence
from psg.detectors import detect_events
from psg.detectors.agreement import match_events
from psg.detectors.base import to_events
from psg.recording import Recording
from psg.simulate import simulate
from psg.summary import night_summary
from psg.synthetic import synthetic_timeline
from psg.timeline import RESPIRATORY_EVENT_TYPES, Event, Stage

#: Between two of the night's respiratory events (seed 11: 1030-1052 s and 1208-1229 s), not epoch-aligned.
GAP = (1095.0, 1200.0)


@pytest.fixture(scope="module")
def continuous() -> Recording:
    return simulate(synthetic_timeline(hours=1.0, seed=11, ahi=40), seed=11)


def _with_gap(recording: Recording, gap: tuple[float, float] = GAP, declared: bool = True) -> Recording:
    """A copy of ``recording`` with every signal zero in ``gap`` (and the gap declared unless told not to)."""
    from psg.recording import Signal

    signals = {}
    for label, sig in recording.signals.items():
        data = sig.data.copy()
        data[int(gap[0] * sig.fs) : int(np.ceil(gap[1] * sig.fs))] = 0.0
        signals[label] = Signal(label, data, sig.fs, sig.unit)
    return Recording(
        recording.record_id, signals, recording.start_time, recording.timeline, gaps=(gap,) if declared else ()
    )


def _overlaps_gap(start: float, end: float) -> bool:
    return min(end, GAP[1]) - max(start, GAP[0]) > 0


def test_the_fixture_has_events_on_both_sides_of_the_gap(continuous: Recording) -> None:
    assert continuous.timeline is not None
    onsets = [e.onset_s for e in continuous.timeline.events if e.type in RESPIRATORY_EVENT_TYPES]
    assert any(t < GAP[0] - 60 for t in onsets) and any(t > GAP[1] + 60 for t in onsets)
    assert not any(_overlaps_gap(e.onset_s, e.end_s) for e in continuous.timeline.events)


def test_undeclared_zeros_read_as_lost_signal_which_is_what_the_gap_prevents(continuous: Recording) -> None:
    undeclared = detect_events(_with_gap(continuous, declared=False))
    assert sum(e.type == "signal_loss" and _overlaps_gap(e.onset_s, e.end_s) for e in undeclared) >= 8


def test_detect_runs_per_segment_nothing_clinical_in_or_at_the_gap(continuous: Recording) -> None:
    gapped = _with_gap(continuous)
    found = detect_events(gapped)
    gap_events = [e for e in found if e.reason == "gap"]
    assert [(e.type, e.onset_s, e.duration_s, e.channel) for e in gap_events] == [
        ("signal_loss", GAP[0], GAP[1] - GAP[0], None)
    ]
    others = [e for e in found if e.reason != "gap"]
    assert not any(_overlaps_gap(e.onset_s, e.end_s) for e in others)
    # Events in both segments are found at their true times (as in the continuous recording)
    truth = [e for e in continuous.timeline.events if e.type in RESPIRATORY_EVENT_TYPES]
    detected = [e for e in to_events(others) if e.type in RESPIRATORY_EVENT_TYPES]
    before = match_events([e for e in detected if e.end_s <= GAP[0]], [e for e in truth if e.end_s <= GAP[0]])
    after = match_events([e for e in detected if e.onset_s >= GAP[1]], [e for e in truth if e.onset_s >= GAP[1]])
    assert before.tp >= 2 and after.tp >= 2
    assert before.recall >= 0.8 and after.recall >= 0.8
    matched = match_events(detected, truth)
    for i, j in matched.pairs:
        assert abs(detected[i].onset_s - truth[j].onset_s) < 6
    # Away from the gap, the detections are those of the continuous recording
    plain = [e for e in detect_events(continuous) if e.type in RESPIRATORY_EVENT_TYPES]
    far = [(e.type, round(e.onset_s)) for e in plain if e.end_s < GAP[0] - 120 or e.onset_s > GAP[1] + 120]
    assert far == [(e.type, round(e.onset_s)) for e in detected if e.end_s < GAP[0] - 120 or e.onset_s > GAP[1] + 120]


def test_a_missing_channel_is_one_loss_over_the_whole_recording(continuous: Recording) -> None:
    gapped = _with_gap(continuous)
    del gapped.signals["HR"]
    missing = [e for e in detect_events(gapped) if e.reason == "missing"]
    assert [(e.channel, e.onset_s, e.duration_s) for e in missing] == [("HR", 0.0, gapped.duration_s)]


def test_gap_epochs_have_no_features_and_the_rest_are_measured(continuous: Recording) -> None:
    from psg.features import epoch_features

    gapped = _with_gap(continuous)
    features = epoch_features(gapped)
    flags = gapped.gap_epochs()
    assert list(np.flatnonzero(flags)) == [36, 37, 38, 39]  # 1095 s is in epoch 36, 1200 s starts epoch 40
    assert all(all(v is None for v in features[i].values()) for i in np.flatnonzero(flags))
    assert all(
        features[i]["hr_bpm"] is not None and features[i]["c3_delta"] is not None for i in np.flatnonzero(~flags)
    )
    assert epoch_features(gapped, epochs=[32, 33]) == [features[32], features[33]]


def test_caption_night_flags_and_captions_gap_epochs(continuous: Recording) -> None:
    gapped = _with_gap(continuous)
    gapped.timeline = None  # rule stages and detected events
    records, summary = caption_night(gapped)
    gap = gapped.gap_epochs()
    for record, in_gap in zip(records, gap, strict=True):
        assert record["quality"] == (["gap"] if in_gap else [])
        if in_gap:
            assert record["stage"] == "?"
            assert all(v is None for v in record["features"].values())
            assert all("recording gap" in text for text in record["captions"].values())
        else:
            assert "recording gap" not in record["captions"]["stage_event"]
    assert records[36]["captions"]["brain"] == (
        "No signal was recorded in this epoch from 15.0 to 30.0 s (recording gap)."
    )
    assert records[37]["captions"]["cardiac"] == "No signal was recorded in this epoch (recording gap)."
    assert summary["gap_min"] == pytest.approx((GAP[1] - GAP[0]) / 60, abs=0.01)
    assert summary["gaps"] == [list(GAP)]
    assert summary["tib_min"] == (len(records) - gap.sum()) * 0.5
    assert "not recorded (recording gaps)" in summary["caption"]


def test_a_scored_stage_in_a_gap_is_kept_after_the_gap_sentence(continuous: Recording) -> None:
    records, summary = caption_night(_with_gap(continuous))
    scored = continuous.timeline.stages
    assert records[37]["stage"] == Stage(int(scored[37])).label != "?"
    assert records[37]["captions"]["stage_event"].startswith("No signal was recorded in this epoch (recording gap). ")
    assert records[37]["quality"] == ["gap"]
    assert summary["tib_min"] == len(records) * 0.5  # every epoch was scored: the scorer's night


def test_summary_counts_no_gap_time_as_recorded_time() -> None:
    w, n2, q = int(Stage.W), int(Stage.N2), int(Stage.UNSCORED)
    stages = np.array([w, w, q, q, q, n2, n2, n2, n2, w])  # epochs 2-4 unscored in a gap from 65 to 140 s
    events = [Event("obstructive_apnea", 170.0, 15.0), Event("obstructive_apnea", 200.0, 12.0)]
    summary = night_summary(stages, events, None, gaps=[(65.0, 140.0)])
    assert summary["tib_min"] == 3.5 and summary["tst_min"] == 2.0 and summary["gap_min"] == 1.25
    assert summary["unscored_min"] == 0.0 and summary["sleep_onset_latency_min"] == 1.0
    assert summary["waso_min"] == 0.5  # TIB = SOL + TST + WASO with no gap time in it
    assert summary["ahi"] == 60.0
    assert night_summary(stages, events, None)["tib_min"] == 5.0  # no gaps: as before


def test_summary_oximetry_reads_no_sample_in_a_gap() -> None:
    from psg.recording import Signal

    stages = np.full(4, int(Stage.N2))
    spo2 = np.full(120, 95.0)
    spo2[40:70] = 85.0  # a scored epoch in a gap whose samples would be "valid" SpO2
    summary = night_summary(stages, [], Signal("SpO2", spo2, 1.0, "%"), gaps=[(40.0, 70.0)])
    assert summary["spo2_min"] == 95.0 and summary["t90_min"] == 0.0


def test_gap_sentence_names_the_missing_part() -> None:
    assert gap_sentence([(10.0, 20.0)], 0.0) == (
        "No signal was recorded in this epoch from 10.0 to 20.0 s (recording gap)."
    )
    assert gap_sentence([(0.0, 12.0), (12.0, 31.0)], 0.0) == "No signal was recorded in this epoch (recording gap)."


def test_the_report_shows_the_gap(continuous: Recording) -> None:
    import matplotlib.pyplot as plt

    from psg.report import night_report
    from psg.report_document import header_table, hourly_table, index_table, shade_gaps

    gapped = _with_gap(continuous)
    gapped.timeline = None
    report = night_report(gapped)
    assert report.gaps == [GAP]
    assert "1.8 min not recorded (gaps)" in dict(header_table(report).rows)["Duration"]
    assert dict(index_table(report.summary).rows)["Not recorded (gaps)"].startswith("1.8 min in 1 gaps")
    assert hourly_table(report).rows[0][1].endswith("; gap 2 min")
    assert all(e.onset_s >= GAP[1] or e.end_s <= GAP[0] for e in report.detected if e.subtype != "gap")
    fig, axes = plt.subplots(2, 1)
    shade_gaps(axes, report)
    assert all(len(ax.patches) == 1 for ax in axes)
    plt.close(fig)
