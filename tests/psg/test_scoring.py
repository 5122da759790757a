"""A PSG's scoring from another file (``psg.formats.scoring``) and the report of a scoring file (issue 13)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from psg.errors import PSGError
from psg.formats import read_edf, read_psg, write_nsrr_xml
from psg.formats.scoring import SCORING_FROM_KEY, SCORING_KEY, sleep_edf_pair
from psg.recording import Recording
from psg.report import scored_night_report
from psg.timeline import Stage, Timeline
from tests.scoring_files import simulated_night, write_events_only, write_hypnogram, write_psg, write_short_psg

START = datetime(2021, 3, 4, 22, 30, 0)


@pytest.fixture(scope="module")
def night() -> Recording:
    return simulated_night(hours=0.5)


def test_sleep_edf_pair_is_the_one_hypnogram_with_the_same_six_characters(tmp_path: Path) -> None:
    psg = tmp_path / "SC4123E0-PSG.edf"
    psg.touch()
    assert sleep_edf_pair(psg) is None
    (tmp_path / "SC4124EC-Hypnogram.edf").touch()  # another night of the subject: not a pair
    (tmp_path / "SC4123E0-PSG.edf.csv").touch()
    assert sleep_edf_pair(psg) is None
    (tmp_path / "SC4123EC-Hypnogram.edf").touch()
    assert sleep_edf_pair(psg) == tmp_path / "SC4123EC-Hypnogram.edf"
    (tmp_path / "SC4123EJ-Hypnogram.edf").touch()  # two scorers: ambiguous, give --scoring
    assert sleep_edf_pair(psg) is None
    other = tmp_path / "night-PSG.edf"
    other.touch()
    assert sleep_edf_pair(other) is None


def test_psg_reads_its_paired_hypnogram_as_truth(night: Recording, tmp_path: Path) -> None:
    psg = write_psg(night, tmp_path / "ST7011J0-PSG.edf", START)
    assert read_edf(psg).timeline is None
    hypnogram = write_hypnogram(night.timeline, tmp_path / "ST7011JP-Hypnogram.edf", START)
    recording, _ = read_psg(psg)
    assert recording.metadata[SCORING_KEY] == str(hypnogram)
    assert "Sleep-EDF" in recording.metadata[SCORING_FROM_KEY]
    assert np.array_equal(recording.timeline.stages, night.timeline.stages)
    assert [(e.type, e.onset_s) for e in recording.timeline.events] == [
        (e.type, e.onset_s) for e in night.timeline.events
    ]


def test_explicit_scoring_wins_and_nsrr_xml_reads_too(night: Recording, tmp_path: Path) -> None:
    psg = write_psg(night, tmp_path / "SC4123E0-PSG.edf")
    write_hypnogram(night.timeline, tmp_path / "SC4123EC-Hypnogram.edf", events=False)
    xml = tmp_path / "elsewhere.xml"
    write_nsrr_xml(night.timeline, xml)
    recording, _ = read_psg(psg, scoring=xml)
    assert recording.metadata == {**recording.metadata, SCORING_KEY: str(xml), SCORING_FROM_KEY: "--scoring"}
    assert np.array_equal(recording.timeline.stages, night.timeline.stages)
    assert len(recording.timeline.events) == len(night.timeline.events)


def test_nsrr_xml_beside_the_edf_is_still_found(night: Recording, tmp_path: Path) -> None:
    psg = write_psg(night, tmp_path / "night.edf")
    write_nsrr_xml(night.timeline, tmp_path / "night-nsrr.xml")
    recording, _ = read_psg(psg)
    assert recording.metadata[SCORING_KEY] == str(tmp_path / "night-nsrr.xml")


def test_a_later_start_and_20_s_epochs_land_on_the_psg_epochs(night: Recording, tmp_path: Path) -> None:
    """A scoring starting 60 s after the PSG moves two epochs right; R&K 20-s epochs map by epoch centre."""
    psg = write_psg(night, tmp_path / "night.edf", START)
    cycle = np.array([Stage.W, Stage.N1, Stage.N2, Stage.N3, Stage.R], dtype=np.int8)
    twenty = np.resize(cycle, night.n_epochs * 3 // 2 - 3)  # 20-s epochs up to the PSG's end
    late = write_hypnogram(
        Timeline("x", twenty, epoch_s=20.0), tmp_path / "late.edf", START + timedelta(seconds=60), events=False
    )
    recording, _ = read_psg(psg, scoring=late)
    stages = recording.timeline.stages
    assert recording.timeline.epoch_s == 30.0 and stages.size == night.n_epochs
    assert list(stages[:2]) == [Stage.UNSCORED] * 2
    # PSG epoch i has its centre (i + 0.5) * 30 s, which is (i + 0.5) * 30 - 60 s into the scoring
    centres = np.floor(((np.arange(2, stages.size) + 0.5) * 30.0 - 60.0) / 20.0).astype(int)
    assert np.array_equal(stages[2:], twenty[centres])


@pytest.mark.parametrize("problem", ["past the end", "unreadable", "annotation-only psg"])
def test_a_wrong_scoring_file_is_one_line_naming_it(problem: str, night: Recording, tmp_path: Path) -> None:
    psg = write_psg(night, tmp_path / "night.edf")
    scoring = tmp_path / "scoring.edf"
    if problem == "past the end":
        longer = simulated_night(hours=1.0)
        write_hypnogram(longer.timeline, scoring)
        expected = "after the PSG's end"
    elif problem == "unreadable":
        scoring.write_text("not an EDF\n")
        expected = "(the scoring of night.edf)"
    else:
        write_hypnogram(night.timeline, scoring)
        psg, scoring = scoring, scoring
        expected = "--scoring applies to a PSG"
    with pytest.raises(PSGError) as error:
        read_psg(psg, scoring=scoring, allow_annotation_only=True)
    message = str(error.value)
    assert str(scoring) in message and expected in message and "\n" not in message


def test_annotation_only_and_short_files_follow_the_one_rule(night: Recording, tmp_path: Path) -> None:
    hypnogram = write_hypnogram(night.timeline, tmp_path / "SC4001EC-Hypnogram.edf")
    with pytest.raises(PSGError, match="annotation-only file: no signals to analyse"):
        read_psg(hypnogram)
    assert read_psg(hypnogram, allow_annotation_only=True)[0].is_annotation_only
    short = write_short_psg(tmp_path / "short.edf")
    with pytest.raises(PSGError, match=r"short.edf: recording lasts 6.0 s, shorter than one 30-s epoch"):
        read_psg(short, allow_annotation_only=True)


def test_scored_report_of_a_hypnogram(night: Recording, tmp_path: Path) -> None:
    recording = read_edf(write_hypnogram(night.timeline, tmp_path / "h.edf"))
    report = scored_night_report(recording)
    summary = report.summary
    assert np.array_equal(report.stages, night.timeline.stages)
    assert summary["stage_source"] == "scored" and summary["event_source"] == "annotation"
    assert summary["tib_min"] == night.timeline.n_epochs / 2 and summary["tst_min"] > 0
    assert summary["spo2_mean"] is None and "spo2_mean" in summary["not_recorded"]
    respiratory = {"obstructive_apnea", "central_apnea", "mixed_apnea", "hypopnea"}
    if any(e.type in respiratory for e in night.timeline.events):
        assert summary["ahi"] is not None
    no_events = scored_night_report(read_edf(write_hypnogram(night.timeline, tmp_path / "s.edf", events=False)))
    assert no_events.summary["ahi"] is None
    assert no_events.summary["not_recorded"]["ahi"] == "no respiratory events in the scoring"


def test_events_without_stages_report_the_rei(tmp_path: Path) -> None:
    report = scored_night_report(read_edf(write_events_only(tmp_path / "cpap.edf", n=97, every_s=60.0)))
    hours = report.duration_s / 3600.0
    assert report.summary["ahi"] is None and report.summary["rei"] == pytest.approx(97 / hours, abs=0.01)
    assert "REI" in report.summary["caption"] and len(report.scored) == 97
