"""Round trips through our writers (NSRR XML, EDF+) and readers of small generated files."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path

import edfio
import numpy as np
import pytest

from psg.formats import read_edf, read_timeline, write_edf, write_nsrr_xml
from psg.formats import vocabulary as vocab
from psg.montage import CHANNELS, EEG_C3, POS, SPO2
from psg.recording import ORIGIN, RECORDED, SIMULATED, SIMULATOR_EQUIPMENT, Recording, Signal
from psg.timeline import Event, Stage, Timeline

W, N1, N2, N3, R, U = Stage.W, Stage.N1, Stage.N2, Stage.N3, Stage.R, Stage.UNSCORED
STAGES = [W, W, N1, N2, N2, N3, N3, R, U, W]
EVENTS = [
    Event("obstructive_apnea", 61.25, 14.5, channel="AF"),
    Event("central_apnea", 90.0, 11.0),
    Event("mixed_apnea", 100.0, 12.0),
    Event("hypopnea", 120.125, 18.0, subtype="central"),
    Event("hypopnea", 150.0, 16.0),
    Event("arousal", 76.0, 4.5),
    Event("arousal", 180.0, 30.0, epoch_resolution=True),
    Event("desaturation", 80.0, 20.0, channel="SpO2"),
    Event("limb_movement", 200.0, 2.0),
    Event("movement", 240.0, 30.0, epoch_resolution=True),
    Event("bradycardia", 210.0, 12.0),
    Event("tachycardia", 215.0, 8.0),
    Event("asystole", 220.0, 3.5),
    Event("signal_loss", 230.0, 40.0, channel=EEG_C3),
    Event("artifact", 260.0, 1.0, subtype="lead_off", channel="EEG C3-A2"),
    Event("position_change", 270.0, 0.0, subtype="supine"),
]


def _timeline(**kwargs: object) -> Timeline:
    return Timeline("night 1", np.array(STAGES), list(EVENTS), start_time=datetime(2024, 3, 1, 22, 15, 30), **kwargs)


def test_vocabulary_round_trips_every_event() -> None:
    for event in EVENTS:
        parsed = vocab.parse_event_text(vocab.event_text(event))
        assert parsed is not None and parsed.event(event.onset_s, event.duration_s) == event
        _, concept = vocab.nsrr_event_concept(event)
        parsed = vocab.parse_nsrr_concept(concept)
        assert (parsed.type, parsed.subtype) == (event.type, event.subtype)
    assert vocab.event_text(EVENTS[-2]) == "Artifact (lead_off)@@EEG C3-A2"
    assert vocab.nsrr_event_concept(EVENTS[5]) == ("Arousals|Arousals", "Arousal|Arousal ()")


def test_vocabulary_reads_nsrr_and_edf_aliases() -> None:
    cases = {
        "Obstructive apnea|Obstructive Apnea": ("obstructive_apnea", None, None),
        "Limb movement - left|Limb Movement (Left)": ("limb_movement", "Left", None),
        "Periodic leg movement - right|PLM (Right)": ("limb_movement", "Right", None),
        "SpO2 artifact|SpO2 artifact": ("artifact", None, "SpO2"),
        "Body position change to left|POSITION-LEFT": ("position_change", "left", None),
        "Spontaneous arousal|Arousal (ARO SPONT)": ("arousal", "ARO SPONT", None),
    }
    for concept, expected in cases.items():
        parsed = vocab.parse_nsrr_concept(concept)
        assert (parsed.type, parsed.subtype, parsed.channel) == expected, concept
    assert vocab.parse_event_text("Lights off@@EEG F4-A1") is None
    assert vocab.parse_event_text("Movement time").type == "movement"


def test_nsrr_xml_round_trip_is_exact(tmp_path: Path) -> None:
    timeline = _timeline()
    path = tmp_path / "night1.xml"
    write_nsrr_xml(timeline, path)
    back = read_timeline(path)
    assert np.array_equal(back.stages, timeline.stages)
    assert back.events == timeline.events
    assert back.start_time == timeline.start_time and back.epoch_s == timeline.epoch_s
    assert "<EventConcept>Stage 3 sleep|3</EventConcept>" in path.read_text()


def test_nsrr_xml_reads_cohort_style_file(tmp_path: Path) -> None:
    path = tmp_path / "shhs1-200001-nsrr.xml"
    path.write_text("""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<PSGAnnotation><SoftwareVersion>Compumedics</SoftwareVersion><EpochLength>30</EpochLength><ScoredEvents>
<ScoredEvent><EventType/><EventConcept>Recording Start Time</EventConcept><Start>0</Start>
<Duration>300.0</Duration><ClockTime>00.00.00 22.31.00</ClockTime></ScoredEvent>
<ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>Wake|0</EventConcept><Start>0.0</Start>
<Duration>60.0</Duration></ScoredEvent>
<ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>Stage 4 sleep|4</EventConcept>
<Start>60.0</Start><Duration>90.0</Duration></ScoredEvent>
<ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>Movement|6</EventConcept><Start>180.0</Start>
<Duration>30.0</Duration></ScoredEvent>
<ScoredEvent><EventType>Respiratory|Respiratory</EventType><EventConcept>Hypopnea|Hypopnea</EventConcept>
<Start>70.3</Start><Duration>15.2</Duration><SignalLocation>NEW AIR</SignalLocation><SpO2Nadir>91</SpO2Nadir>
</ScoredEvent>
<ScoredEvent><EventType>Respiratory|Respiratory</EventType><EventConcept>Unsure|Unsure</EventConcept>
<Start>100</Start><Duration>12</Duration></ScoredEvent>
</ScoredEvents></PSGAnnotation>""")
    timeline = read_timeline(path)
    assert timeline.record_id == "shhs1-200001-nsrr" and timeline.start_time is None
    assert timeline.stages.tolist() == [0, 0, 3, 3, 3, -1, -1]  # 150-180 s uncovered, then movement
    assert [(e.type, e.channel) for e in timeline.events] == [("hypopnea", "NEW AIR"), ("movement", None)]


def _recording(seconds: int = 300) -> Recording:
    rng = np.random.default_rng(1)
    eeg = rng.normal(0, 40, seconds * 256)
    eeg[1000] = 900.0  # beyond the amplifier range (+-500 uV): must clip
    signals = {
        EEG_C3: Signal(EEG_C3, eeg, 256.0, "uV"),
        SPO2: Signal(SPO2, np.full(seconds, 96.0), 1.0, "%"),
        POS: Signal(POS, np.repeat([2.0, 1.0], seconds // 2), 1.0, ""),
        "Leg EMG": Signal("Leg EMG", rng.normal(0, 3, seconds * 200 - 50), 200.0, "uV"),  # short, unknown
    }
    beats = np.cumsum(rng.uniform(0.8, 1.1, 320))
    timeline = _timeline(beat_times_s=beats[beats < seconds])
    return Recording("night 1", signals, start_time=timeline.start_time, timeline=timeline)


def test_edf_round_trip_within_quantization_and_truth_preserved(tmp_path: Path) -> None:
    recording = _recording()
    path = tmp_path / "night.edf"
    write_edf(recording, path)
    back = read_edf(path)
    assert list(back.signals) == list(recording.signals)
    assert back.record_id == "night_1" and back.start_time == recording.start_time
    for label, signal in recording.signals.items():
        got = back.signals[label]
        assert got.fs == signal.fs and got.unit == signal.unit
        spec = CHANNELS.get(label)
        low, high = (spec.physical_min, spec.physical_max) if spec else (signal.data.min(), signal.data.max())
        step = (high - low) / 65535
        expected = np.clip(signal.data, low, high)
        assert np.max(np.abs(got.data[: expected.size] - expected)) <= step / 2 + 1e-9, label
    assert back.signals[EEG_C3].data[1000] == CHANNELS[EEG_C3].physical_max
    assert back.signals["Leg EMG"].data.size == 300 * 200  # padded to whole data records
    truth, got = recording.timeline, back.timeline
    assert np.array_equal(got.stages, truth.stages)
    assert [(e.type, e.subtype, e.channel, e.epoch_resolution) for e in got.events] == [
        (e.type, e.subtype, e.channel, e.epoch_resolution) for e in truth.events
    ]
    assert np.allclose([e.onset_s for e in got.events], [e.onset_s for e in truth.events], atol=1e-6)
    assert np.allclose(got.beat_times_s, truth.beat_times_s, atol=1e-6)


def test_edf_without_timeline_or_start_time(tmp_path: Path) -> None:
    recording = _recording(60)
    recording.timeline, recording.start_time = None, None
    write_edf(recording, tmp_path / "bare.edf")
    back = read_edf(tmp_path / "bare.edf")
    assert back.timeline is None and back.start_time is None


def test_edf_carries_a_simulated_origin_and_calls_every_other_file_recorded(tmp_path: Path) -> None:
    """The stage head's domain gate trusts its simulator-trained head only with what our simulator made."""
    simulated = _recording(60)
    simulated.metadata[ORIGIN] = SIMULATED
    write_edf(simulated, tmp_path / "sim.edf")
    assert edfio.read_edf(tmp_path / "sim.edf").recording.equipment_code == SIMULATOR_EQUIPMENT
    assert read_edf(tmp_path / "sim.edf").metadata[ORIGIN] == SIMULATED
    write_edf(_recording(60), tmp_path / "unmarked.edf")  # no origin: written like any other file
    assert read_edf(tmp_path / "unmarked.edf").metadata[ORIGIN] == RECORDED
    long_id = _recording(60)
    long_id.record_id, long_id.metadata[ORIGIN] = "night " * 20, SIMULATED  # 120 characters
    write_edf(long_id, tmp_path / "long.edf")  # the 80-character header field once refused it
    back = read_edf(tmp_path / "long.edf")
    assert back.metadata[ORIGIN] == SIMULATED and back.record_id.startswith("night_night_")
    other = edfio.Edf([edfio.EdfSignal(np.zeros(3000), 100, label="EEG Fpz-Cz", physical_range=(-1, 1))])
    other.write(tmp_path / "plain.edf")  # plain EDF: no EDF+ recording field at all
    assert read_edf(tmp_path / "plain.edf").metadata[ORIGIN] == RECORDED


def test_edf_reads_run_length_stage_annotations_of_other_labs(tmp_path: Path) -> None:
    edf = edfio.Edf(
        [edfio.EdfSignal(np.zeros(240 * 100), 100, label="EEG Fpz-Cz", physical_range=(-1, 1))],
        annotations=[
            edfio.EdfAnnotation(0, 90, "Sleep stage W"),
            edfio.EdfAnnotation(90, 60, "Sleep stage 4"),
            edfio.EdfAnnotation(150, 30, "Movement time"),
            edfio.EdfAnnotation(151, None, "Lights off@@EEG Fpz-Cz"),
        ],
    )
    edf.write(tmp_path / "sc.edf")
    timeline = read_timeline(tmp_path / "sc.edf")
    assert timeline.stages.tolist() == [0, 0, 0, 3, 3, -1]
    assert [e.type for e in timeline.events] == ["movement"]


def test_generated_dreem_sleep_edf_ucddb_files(tmp_path: Path) -> None:
    (tmp_path / "night.json").write_text(json.dumps([-1, 0, 1, 2, 3, 4]))
    assert read_timeline(tmp_path / "night.json").stages.tolist() == [-1, 0, 1, 2, 3, 4]
    (tmp_path / "ST7011J0-PSG.edf.csv").write_bytes(b"W\r1\r2\r3\r4\rR\r?\rM\r")
    hypnogram = read_timeline(tmp_path / "ST7011J0-PSG.edf.csv")
    assert hypnogram.stages.tolist() == [0, 1, 2, 3, 3, 4, -1, -1]
    assert hypnogram.events == [Event("movement", 210.0, 30.0, epoch_resolution=True)]
    (tmp_path / "ucddb999_stage.txt").write_text("0\n2\n3\n4\n5\n1\n6\n7\n")
    alone = read_timeline(tmp_path / "ucddb999_stage.txt")
    assert alone.stages.tolist() == [0, 1, 2, 3, 3, 4, -1, -1] and alone.events == []
    assert "stages only" in alone.source
    (tmp_path / "events_by_epoch.csv").write_text(
        "record_id,epoch_id,event_types,event_start_sec,event_duration_sec\n"
        "ucddb999,1,HYP-O; APNEA-C,35; 52,20; 12\n"
        "ucddb999,2,APNEA-C,52,12\n"
        "ucddb998,2,APNEA-O,60,12\n"
    )
    events = read_timeline(tmp_path / "ucddb999_stage.txt").events
    assert events == [Event("hypopnea", 35.0, 20.0, "obstructive"), Event("central_apnea", 52.0, 12.0)]


def test_generated_slpdb_record(tmp_path: Path) -> None:
    wfdb = pytest.importorskip("wfdb", reason="WFDB records need the wfdb extra")
    (tmp_path / "rec.hea").write_text("rec 1 250 30000 22:00:00 01/02/2024\nrec.dat 212 200 12 0 0 0 0 ECG\n")
    wfdb.wrann(
        "rec",
        "st",
        np.array([1, 7500, 15000, 22500]),
        symbol=['"'] * 4,
        aux_note=["W", "2 HA LLL", "MT", "R X"],
        fs=250,
        write_dir=str(tmp_path),
    )
    wfdb.wrann(
        "rec", "ecg", np.array([100, 300, 310, 500]), symbol=["N", "V", "x", "N"], fs=250, write_dir=str(tmp_path)
    )
    timeline = read_timeline(tmp_path / "rec.st")
    assert timeline.stages.tolist() == [0, 2, -1, 4]
    assert timeline.start_time == datetime(2024, 2, 1, 22, 0)
    assert np.allclose(timeline.beat_times_s, [0.4, 1.2, 2.0])  # 'x' (blocked P wave) is not a beat
    assert Counter((e.type, e.onset_s) for e in timeline.events) == {
        ("hypopnea", 30.0): 1,
        ("arousal", 30.0): 1,
        ("limb_movement", 30.0): 3,  # 'LLL' = three
        ("movement", 60.0): 1,
        ("obstructive_apnea", 90.0): 1,
        ("arousal", 90.0): 1,
    }
