"""Malformed input: every reader raises FormatError whose message names the file and the problem."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from psg.errors import FormatError
from psg.formats import read_edf, read_timeline, write_edf
from psg.recording import Recording, Signal


def _raises(path: Path, *fragments: str) -> None:
    with pytest.raises(FormatError) as info:
        read_timeline(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"stages": [0, 1]}', "non-empty JSON list"),
        ("[]", "non-empty JSON list"),
        ("[0, 1, 7]", "epoch 2: stage code 7"),
        ("[0, 1,", "not a readable JSON"),
    ],
)
def test_dreem_json(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "night.json"
    path.write_text(content)
    _raises(path, fragment)


def test_sleep_edf_bad_code_names_line(tmp_path: Path) -> None:
    path = tmp_path / "SC0000E0-PSG.edf.csv"
    path.write_text("W\n1\nX\n")
    _raises(path, "line 3", "'X'")


def test_ucddb_bad_stage_code_and_empty(tmp_path: Path) -> None:
    path = tmp_path / "ucddb001_stage.txt"
    path.write_text("0\n2\n9\n")
    _raises(path, "line 3", "'9'")
    path.write_text("\n\n")
    _raises(path, "empty")


@pytest.mark.parametrize(
    ("csv_text", "fragment"),
    [
        ("record_id,epoch_id,event_types\nucddb001,0,HYP-O\n", "missing column(s) event_start_sec"),
        (
            "record_id,event_types,event_start_sec,event_duration_sec\nucddb001,HYP-O; APNEA-C,10,12\n",
            "line 2: 2 event types, 1 starts",
        ),
        ("record_id,event_types,event_start_sec,event_duration_sec\nucddb001,SNORE,10,12\n", "'SNORE'"),
        ("record_id,event_types,event_start_sec,event_duration_sec\nucddb001,HYP-O,ten,12\n", "not numbers"),
    ],
)
def test_ucddb_malformed_events_csv(tmp_path: Path, csv_text: str, fragment: str) -> None:
    (tmp_path / "ucddb001_stage.txt").write_text("0\n2\n")
    csv_path = tmp_path / "events_by_epoch.csv"
    csv_path.write_text(csv_text)
    with pytest.raises(FormatError) as info:
        read_timeline(tmp_path / "ucddb001_stage.txt")
    assert str(csv_path) in str(info.value) and fragment in str(info.value)


def test_slpdb_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="rec.hea: missing"):
        read_timeline(tmp_path / "rec.st")  # nothing there: the first missing file is named
    (tmp_path / "rec.hea").write_text("rec 1 250 30000\nrec.dat 212 200 12 0 0 0 0 ECG\n")
    (tmp_path / "rec.st").write_bytes(b"\xff\x13garbage")
    (tmp_path / "rec.ecg").write_bytes(b"\x00")
    pytest.importorskip("wfdb", reason="reading a WFDB record needs the wfdb extra")
    _raises(tmp_path / "rec", "not a readable WFDB record")


def test_slpdb_without_the_wfdb_extra_names_the_file_and_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The base install has no wfdb (it requires pandas): a WFDB record then says what to install."""
    for ext in ("hea", "st", "ecg"):
        (tmp_path / f"rec.{ext}").write_bytes(b"\x00")
    monkeypatch.setitem(sys.modules, "wfdb", None)  # what `import wfdb` meets where it is not installed
    _raises(tmp_path / "rec.st", "needs the wfdb package: pip install 'sleeplm[wfdb]'")


def test_slpdb_unknown_codes(tmp_path: Path) -> None:
    wfdb = pytest.importorskip("wfdb", reason="writing the WFDB test record needs the wfdb extra")

    (tmp_path / "rec.hea").write_text("rec 1 250 15000\nrec.dat 212 200 12 0 0 0 0 ECG\n")
    wfdb.wrann("rec", "ecg", np.array([100]), symbol=["N"], fs=250, write_dir=str(tmp_path))
    wfdb.wrann(
        "rec", "st", np.array([1, 7500]), symbol=['"'] * 2, aux_note=["W", "2 ZZ"], fs=250, write_dir=str(tmp_path)
    )
    _raises(tmp_path / "rec.st", "epoch 1", "unknown event code 'ZZ'")
    wfdb.wrann("rec", "st", np.array([1]), symbol=['"'], aux_note=["Q"], fs=250, write_dir=str(tmp_path))
    _raises(tmp_path / "rec.st", "epoch 0", "expected a stage")


def test_apnea_ecg_npz(tmp_path: Path) -> None:
    path = tmp_path / "a99.npz"
    np.savez(path, t=np.array([0.1, 0.2]))
    _raises(path, "missing array(s) apn")
    np.savez(path, t=np.array([0.2, 0.1]), apn=np.zeros(1, bool))
    _raises(path, "strictly increasing")
    path.write_bytes(b"not a zip archive")
    _raises(path, "not a readable .npz")


@pytest.mark.parametrize(
    ("xml", "fragment"),
    [
        ("<PSGAnnotation><EpochLength>30</EpochLength></PSGAnnotation>", "<ScoredEvents>"),
        ("<PSGAnnotation><ScoredEvents><ScoredEvent>", "not a readable XML"),
        (
            "<PSGAnnotation><ScoredEvents><ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>"
            "Stage 2 sleep|2</EventConcept><Start>abc</Start><Duration>30</Duration></ScoredEvent>"
            "</ScoredEvents></PSGAnnotation>",
            "Start: expected a number",
        ),
        (
            "<PSGAnnotation><ScoredEvents><ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>"
            "Deep|7</EventConcept><Start>0</Start><Duration>30</Duration></ScoredEvent>"
            "</ScoredEvents></PSGAnnotation>",
            "unknown stage concept",
        ),
        ('<!DOCTYPE x [<!ENTITY a "aaaa">]><PSGAnnotation>&a;</PSGAnnotation>', "not a readable XML"),
    ],
)
def test_nsrr_xml(tmp_path: Path, xml: str, fragment: str) -> None:
    path = tmp_path / "night-nsrr.xml"
    path.write_text(xml)
    _raises(path, fragment)


def test_edf_not_edf_and_truncated(tmp_path: Path) -> None:
    text = tmp_path / "notes.edf"
    text.write_text("this is not an EDF file\n" * 20)
    with pytest.raises(FormatError, match="not an EDF or BDF file: it starts with b'this is '") as info:
        read_edf(text)
    assert str(text) in str(info.value)
    good = tmp_path / "good.edf"
    write_edf(Recording("r", {"X": Signal("X", np.arange(200.0), 100.0, "uV")}), good)
    truncated = tmp_path / "truncated.edf"
    truncated.write_bytes(good.read_bytes()[:-150])  # a night cut mid-record: the whole records are kept
    cut = read_edf(truncated)
    assert cut.duration_s == 1.0 and any("incomplete last data record" in w for w in cut.read_warnings)
    assert any("number of data records is '2'; the file holds 1" in w for w in cut.read_warnings)
    _raises(good, "no stage, event or R-peak annotations")


def test_read_timeline_unknown_empty_missing(tmp_path: Path) -> None:
    unknown = tmp_path / "night.parquet"
    unknown.write_bytes(b"PAR1")
    _raises(unknown, "unknown annotation format")
    empty = tmp_path / "night.json"
    empty.write_text("")
    _raises(empty, "empty file")
    _raises(tmp_path / "absent.xml", "no such file")
