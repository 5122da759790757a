"""No caption, event or report index claims a channel the recording does not have (issue 12).

A simulated night with its respiratory, oximetry, position and cardiac channels removed (always runs),
the Sleep-EDF short recording (chin EMG at 1 Hz = not analysable, no SpO2/ECG/position) and the
full-montage Nox file (nothing missing: nothing "not recorded") from the shared data.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from psg.captions import caption_night
from psg.captions.availability import (
    GROUPS,
    MISSING_SENTENCES,
    channel_groups,
    drop_claims,
    event_available,
    missing_group_sentence,
    restrict_caption,
)
from psg.montage import ABD, AF, ECG, HR, POS, SPO2, THX
from psg.recording import Recording
from psg.simulate import simulate
from psg.timeline import Event, Stage, Timeline
from tests.conftest import real_file

#: Words that claim something about each group (the test's own list, independent of the module's).
FORBIDDEN = {
    "respiratory": r"apnea|hypopnea|airflow|breathing",
    "spo2": r"spo2|desaturation|oxygen|oximetry",
    "position": r"position(?! not recorded)",
    "ecg": r"heart rate|bpm|rmssd|electrocardiogram",
}


def _claims(text: str, missing: set[str]) -> list[str]:
    text = text.replace(MISSING_SENTENCES["spo2"], "").replace(MISSING_SENTENCES["respiratory"], "")
    text = text.replace(MISSING_SENTENCES["ecg"], "")
    return [g for g in missing if g in FORBIDDEN and re.search(FORBIDDEN[g], text, re.IGNORECASE)]


def _assert_no_claims(records: list[dict], summary: dict, groups: set[str]) -> None:
    missing = GROUPS - groups
    for record in records:
        for level, text in record["captions"].items():
            assert not _claims(text, missing), (record["epoch"], level, text)
        assert all(event_available(e, groups) for e in record["events"]), record["events"]
    joined = {level: " ".join(r["captions"][level] for r in records) for level in records[0]["captions"]}
    for group, level in (
        ("respiratory", "respiratory"),
        ("spo2", "respiratory"),
        ("position", "somatic"),
        ("ecg", "cardiac"),
        ("eeg", "brain"),
        ("eog", "brain"),
        ("emg", "somatic"),
    ):
        if group in missing:
            assert all(missing_group_sentence(group) in r["captions"][level] for r in records), group
        else:
            assert missing_group_sentence(group) not in joined[level], group
    if "respiratory" in missing:
        assert summary["ahi"] is None and summary["apnea_count"] is None
        assert summary["not_recorded"]["ahi"] == "respiratory channels not recorded"
    if "spo2" in missing:
        assert summary["odi"] is None and summary["spo2_mean"] is None and "odi" in summary["not_recorded"]
        assert "No SpO2 recorded." in summary["caption"]


@pytest.fixture(scope="module")
def simulated() -> Recording:
    """Five minutes of N2 with an apnea, a hypopnea, a desaturation and a position change."""
    events = [
        Event("obstructive_apnea", 35.0, 15.0),
        Event("hypopnea", 95.0, 14.0, subtype="obstructive"),
        Event("desaturation", 55.0, 20.0, channel=SPO2),
        Event("position_change", 200.0, 0.0, subtype="left"),
    ]
    timeline = Timeline("sim", np.array([Stage.N2] * 10), events)
    return simulate(timeline, seed=2)


def test_simulated_night_without_cardiorespiratory_channels_claims_nothing_about_them(simulated) -> None:
    removed = {AF, THX, ABD, SPO2, POS, ECG, HR}
    night = Recording(
        simulated.record_id,
        {k: s for k, s in simulated.signals.items() if k not in removed},
        timeline=simulated.timeline,
    )
    groups = channel_groups(night)
    assert groups == {"eeg", "eog", "emg"}
    records, summary = caption_night(night)
    _assert_no_claims(records, summary, groups)
    assert "Respiratory channels not recorded. No SpO2 recorded." == records[0]["captions"]["respiratory"]
    assert records[0]["captions"]["cardiac"] == "No ECG recorded."


def test_full_simulated_night_keeps_its_captions(simulated) -> None:
    records, summary = caption_night(simulated)
    assert channel_groups(simulated) == set(GROUPS)
    assert summary["ahi"] is not None and summary["not_recorded"] == {}
    assert any(
        "hypopnea" in r["captions"]["stage_event"].lower() or "apnea" in r["captions"]["stage_event"].lower()
        for r in records
    )
    assert not any(
        "not recorded" in t.replace("Body position was not recorded", "")
        for r in records
        for t in r["captions"].values()
    )


def test_generated_text_loses_its_claims_about_missing_groups() -> None:
    text = (
        "Sleep stage analysis shows Stable Light Sleep (N2) for this epoch. The Central Apnea event is "
        "documented from 2.0 to 14.0 seconds. The Desaturation event on SpO2 is documented from 20.0 to 30.0 "
        "seconds."
    )
    assert drop_claims(text, {"eeg"}) == "Sleep stage analysis shows Stable Light Sleep (N2) for this epoch."
    assert drop_claims(text, set(GROUPS)) == text
    somatic = "Chin EMG: tone 3.10 µV RMS with median frequency 40.0 Hz. Recorded body position is right."
    assert restrict_caption(somatic, "somatic", {"emg"}) == (
        "Body position not recorded. Chin EMG: tone 3.10 µV RMS with median frequency 40.0 Hz."
    )
    cardiac = "Electrocardiogram: estimated beat rate at 61.0 bpm; RMSSD is 30.00 ms."
    assert restrict_caption(cardiac, "cardiac", {"eeg"}) == "No ECG recorded."
    resp = "Respiration: breathing rate 14.0 breaths/min. SpO2 averages 95.0% (lowest 93.0%)."
    assert restrict_caption(resp, "respiratory", {"respiratory"}) == (
        "No SpO2 recorded. Respiration: breathing rate 14.0 breaths/min."
    )
    assert restrict_caption(resp, "respiratory", set()) == "Respiratory channels not recorded. No SpO2 recorded."
    assert not event_available(Event("signal_loss", 0.0, 30.0, channel=SPO2), {"eeg"})
    assert event_available({"type": "signal_loss", "channel": "EEG C3-A2"}, {"eeg"})


def test_sleep_edf_short_says_what_it_did_not_record(real_signals: Path) -> None:
    from psg.formats import read_mapped_edf

    recording, report = read_mapped_edf(real_file(real_signals, "sleep-edf-short/short_psg.edf"))
    groups = channel_groups(recording)
    assert {"spo2", "ecg", "position", "emg"}.isdisjoint(groups)  # a 1-Hz chin EMG is not analysable
    assert "respiratory" in groups  # its 1-Hz oro-nasal flow is
    records, summary = caption_night(recording)
    _assert_no_claims(records, summary, groups)
    assert not any("EOG-R" in r["captions"]["stage_event"] for r in records)  # never recorded, so never "lost"


def test_nox_full_montage_has_nothing_not_recorded(real_signals: Path) -> None:
    from psg.formats import read_mapped_edf

    recording, _ = read_mapped_edf(real_file(real_signals, "nox-a1-2min/subject1.edf"))
    groups = channel_groups(recording)
    assert groups == set(GROUPS)
    records, summary = caption_night(recording)
    _assert_no_claims(records, summary, groups)
    assert summary["not_recorded"] == {}
    assert not any("not recorded" in t for r in records for t in r["captions"].values())


def test_report_of_a_night_without_breathing_channels_says_not_recorded(simulated, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from psg.formats import write_edf
    from sleeplm.cli import app

    night = Recording(
        simulated.record_id,
        {k: s for k, s in simulated.signals.items() if k not in {AF, THX, ABD, SPO2}},
        timeline=simulated.timeline,
    )
    write_edf(night, tmp_path / "night.edf")
    result = CliRunner().invoke(
        app, ["report", str(tmp_path / "night.edf"), "--out", str(tmp_path / "r"), "--format", "html"]
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    document = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert {AF, THX, ABD, SPO2} <= set(document["channels"]["missing"])
    summary = document["summary"]
    assert summary["ahi"] is None and summary["odi"] is None and summary["desaturation_count"] is None
    assert summary["not_recorded"]["ahi"] == "respiratory channels not recorded"
    events = set(document["scored_events"]) | set(document["detected_events"])
    assert not {"obstructive_apnea", "hypopnea", "desaturation"} & events and "arousal" in events
    page = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert "not recorded (respiratory channels not recorded)" in page
