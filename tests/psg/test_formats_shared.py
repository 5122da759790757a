"""Every shared real-data format reads, with counts checked against the files themselves."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from psg.formats import read_edf, read_timeline
from psg.timeline import Stage


def test_dreem_every_night_and_scorer(shared_data: Path) -> None:
    files = sorted((shared_data / "dreem").glob("*/scorer_*/*.json"))
    assert len(files) == (20 + 44) * 5
    lengths: dict[str, set[int]] = {}
    for f in files:
        timeline = read_timeline(f)
        assert timeline.record_id == f.stem
        lengths.setdefault(f.stem, set()).add(timeline.n_epochs)
    assert len(lengths) == 64
    assert all(len(n) == 1 for n in lengths.values()), "the five scorers of a night score the same epochs"


def test_ucddb002_stages_and_deduplicated_events(shared_data: Path) -> None:
    folder = shared_data / "ucddb"
    timeline = read_timeline(folder / "ucddb002_stage.txt")
    assert timeline.n_epochs == len((folder / "ucddb002_stage.txt").read_text().split())  # 748
    with (folder / "events_by_epoch.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["record_id"] == "ucddb002"]
    mentions = [
        (code.strip(), float(start))
        for r in rows
        if r["event_types"]
        for code, start in zip(r["event_types"].split(";"), r["event_start_sec"].split(";"), strict=True)
    ]
    assert len(mentions) > len(set(mentions))  # events spanning two epochs are listed twice
    assert len(timeline.events) == len(set(mentions)) == 124
    kinds = Counter((e.type, e.subtype) for e in timeline.events)
    assert set(kinds) <= {
        ("obstructive_apnea", None),
        ("central_apnea", None),
        ("mixed_apnea", None),
        ("hypopnea", "obstructive"),
        ("hypopnea", "central"),
        ("hypopnea", "mixed"),
    }
    assert timeline.source == str(folder / "ucddb002_stage.txt")


def test_ucddb_all_records_read_including_undocumented_code_8(shared_data: Path) -> None:
    for f in sorted((shared_data / "ucddb").glob("ucddb*_stage.txt")):
        assert read_timeline(f).n_epochs > 600
    ucddb008 = read_timeline(shared_data / "ucddb" / "ucddb008_stage.txt")
    assert np.all(ucddb008.stages[363:370] == Stage.UNSCORED)


def test_sleep_edf_hypnograms(shared_data: Path) -> None:
    files = sorted((shared_data / "sleep-edfx-hypnograms").glob("*.edf.csv"))
    assert len(files) == 41
    for f in files:
        timeline = read_timeline(f)
        assert timeline.n_epochs == len(f.read_text().split())
    night = read_timeline(shared_data / "sleep-edfx-hypnograms" / "SC4032E0-PSG.edf.csv")
    assert night.record_id == "SC4032E0-PSG" and night.n_epochs == 2880
    assert {Stage.W, Stage.N1, Stage.N2, Stage.N3, Stage.R, Stage.UNSCORED} <= set(night.stages.tolist())


def test_slpdb_records_stages_events_and_beats(shared_data: Path) -> None:
    folder = shared_data / "slpdb"
    for name in (folder / "RECORDS").read_text().split():
        timeline = read_timeline(folder / f"{name}.st")
        beats = timeline.beat_times_s
        assert beats is not None and beats.size > 1000 and np.all(np.diff(beats) > 0)
        assert beats[-1] <= timeline.duration_s + 30
        assert all(e.epoch_resolution and e.duration_s == 30.0 for e in timeline.events)
    slp01a = read_timeline(folder / "slp01a")  # the record stem works too
    assert slp01a.n_epochs == 240 and slp01a.beat_times_s.size == 7806
    assert slp01a.start_time == datetime(1989, 1, 19, 23, 7)
    assert slp01a.events_of("limb_movement") and slp01a.events_of("arousal")
    assert read_timeline(folder / "slp01a.hea").n_epochs == 240
    slp14 = read_timeline(folder / "slp14.st")  # scoring starts at epoch 6
    assert slp14.n_epochs == 720 and np.all(slp14.stages[:6] == Stage.UNSCORED)
    assert read_timeline(folder / "slp67x.st").start_time is None  # header has a time but no date


def test_apnea_ecg_beats_and_minutes(shared_data: Path) -> None:
    timeline = read_timeline(shared_data / "apnea-ecg" / "a01.npz")
    with np.load(shared_data / "apnea-ecg" / "a01.npz") as npz:
        n_beats, n_minutes = npz["t"].size, npz["apn"].size
    assert timeline.beat_times_s.size == n_beats
    assert timeline.minute_labels["apnea"].size == n_minutes and timeline.minute_labels["apnea"].any()
    assert timeline.n_epochs == n_minutes * 2 and np.all(timeline.stages == Stage.UNSCORED)


def test_edfplus_sample_file(shared_data: Path) -> None:
    path = shared_data / "edf" / "stage_annotations_edfplus.edf"
    recording = read_edf(path)
    assert recording.signals == {} and recording.start_time is None  # 'Startdate X': date anonymised
    timeline = recording.timeline
    # 856 annotations: 854 'Sleep stage' epochs plus 'Lights off' / 'Lights on', which are not events
    assert timeline.n_epochs == 854 and timeline.events == []
    counts = Counter(Stage(s).label for s in timeline.stages)
    assert counts == {"N2": 430, "W": 151, "R": 141, "N1": 109, "N3": 23}
    assert read_timeline(path).n_epochs == 854


@pytest.mark.parametrize("name", ["slp02b", "ucddb003_stage.txt"])
def test_real_timeline_survives_nsrr_xml(shared_data: Path, tmp_path: Path, name: str) -> None:
    from psg.formats import read_nsrr_xml, write_nsrr_xml

    folder = "slpdb" if name.startswith("slp") else "ucddb"
    timeline = read_timeline(shared_data / folder / name)
    out = tmp_path / f"{timeline.record_id}.xml"
    write_nsrr_xml(timeline, out)
    back = read_nsrr_xml(out)
    assert np.array_equal(back.stages, timeline.stages) and back.events == timeline.events
    assert back.start_time == timeline.start_time
