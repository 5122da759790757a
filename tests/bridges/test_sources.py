"""What simulated beds and EDF replay put on LSL: stream layout, descriptions, sample clock, sources."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from device_bridges.bed_nights import SimulatedNight, night_for, slice_timeline
from device_bridges.lsl_config import import_pylsl
from device_bridges.simulated import EdfReplay, SimulatedBed, rate_groups, run_beds
from psg.errors import PSGError
from psg.formats import read_edf, write_edf
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline
from psg.timeline import Event


def _pull_all(inlets: dict, seconds: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Pull every inlet round-robin for ``seconds`` (or until its outlet is gone)."""
    pylsl = import_pylsl()
    got: dict[str, tuple[list, list]] = {name: ([], []) for name in inlets}
    live = dict(inlets)
    deadline = time.monotonic() + seconds
    while live and time.monotonic() < deadline:
        for name, inlet in list(live.items()):
            try:
                chunk, ts = inlet.pull_chunk(timeout=0.0, max_samples=100_000, as_numpy=True)
            except pylsl.util.LostError:
                del live[name]
                continue
            if len(ts):
                got[name][0].append(chunk)
                got[name][1].append(ts)
        time.sleep(0.01)
    return {name: (np.concatenate(s), np.concatenate(t)) for name, (s, t) in got.items()}


def test_rate_groups_are_named_by_rate_class() -> None:
    recording = simulate(synthetic_timeline(hours=60 / 3600, seed=1))
    groups = rate_groups(recording.signals)
    assert [(g.name, g.fs) for g in groups] == [("exg", 256.0), ("resp", 32.0), ("aux", 1.0)]
    assert groups[0].labels == ("ECG", "EOG-L", "EOG-R", "EEG C3-A2", "EEG C4-A1", "EMG Chin")
    assert groups[2].units == ("", "%", "bpm")


def test_slice_timeline_shifts_and_clips_events() -> None:
    timeline = synthetic_timeline(hours=0.5, seed=2, ahi=0)
    timeline.events = [Event("hypopnea", 50.0, 20.0), Event("arousal", 85.0, 10.0), Event("hypopnea", 200.0, 15.0)]
    piece = slice_timeline(timeline, 60.0, 120.0)
    assert piece.n_epochs == 2 and list(piece.stages) == list(timeline.stages[2:4])
    spans = [(e.type, e.onset_s, e.duration_s) for e in piece.events]
    assert spans == [("hypopnea", 0.0, 10.0), ("arousal", 25.0, 10.0)]


def test_simulated_bed_streams_on_its_virtual_clock() -> None:
    """Sample i of each group has timestamp recording_start + i/fs; 20x speed plays 60 s in ~3 s."""
    pylsl = import_pylsl()
    night = SimulatedNight(synthetic_timeline(hours=60 / 3600, seed=3), seed=3, piece_s=30)  # two pieces
    bed = SimulatedBed("bed-clock", night, speed=20, wait_for_consumers_s=10).start()
    try:
        assert bed.wait_ready(20)
        infos = pylsl.resolve_bypred("starts-with(name,'sleeplm-bed-clock-')", minimum=3, timeout=5)
        inlets = {}
        for info in infos:
            inlet = pylsl.StreamInlet(info, recover=False)
            full = inlet.info(timeout=2)
            desc = full.desc()
            assert full.type() == "PSG" and full.source_id() == f"bed-clock:{desc.child_value('group')}"
            assert desc.child_value("sleeplm_bed") == "bed-clock"
            assert desc.child_value("recording_id") == bed.recording_id
            assert float(desc.child_value("recording_start")) == bed.recording_start
            assert desc.child_value("origin") == "simulated"
            inlet.open_stream(timeout=2)
            inlets[desc.child_value("group")] = inlet
        assert sorted(inlets) == ["aux", "exg", "resp"]
        started = time.monotonic()
        pulled = _pull_all(inlets, 5.0)
        bed.join(10)
        assert time.monotonic() - started < 6.0 and not bed.running and bed.error is None
    finally:
        bed.stop()
    for group in bed.groups:
        samples, stamps = pulled[group.name]
        assert samples.shape == (60 * group.fs, len(group.labels))
        np.testing.assert_allclose(stamps - bed.recording_start, np.arange(len(stamps)) / group.fs, atol=1e-6)


def test_edf_replay_streams_the_files_signals(tmp_path: Path) -> None:
    pylsl = import_pylsl()
    path = tmp_path / "night.edf"
    write_edf(simulate(synthetic_timeline(hours=60 / 3600, seed=4), seed=4), path)
    expected = read_edf(path)
    bed = EdfReplay("bed-edf", path, speed=30, wait_for_consumers_s=10).start()
    try:
        assert bed.wait_ready(20)
        infos = pylsl.resolve_bypred("starts-with(name,'sleeplm-bed-edf-')", minimum=3, timeout=5)
        inlets = {info.name(): pylsl.StreamInlet(info, recover=False) for info in infos}
        for inlet in inlets.values():
            desc = inlet.info(timeout=2).desc()
            assert desc.child_value("source") == "edf" and desc.child_value("origin") == bed.origin
            inlet.open_stream(timeout=2)
        samples, _ = _pull_all(inlets, 3.0)["sleeplm-bed-edf-resp"]
    finally:
        bed.stop()
    for i, label in enumerate(("ABD", "THX", "AF")):
        np.testing.assert_allclose(samples[:, i], expected.signals[label].data, rtol=1e-5, atol=1e-5)


def test_edf_without_montage_channels_is_rejected(shared_data: Path) -> None:
    with pytest.raises(PSGError, match="stage_annotations_edfplus.edf: annotation-only file: no signals to analyse"):
        EdfReplay("bed-x", shared_data / "edf" / "stage_annotations_edfplus.edf")


def test_night_from_shared_timeline(shared_data: Path) -> None:
    night = night_for(shared_data / "ucddb", index=0, hours=0.05, seed=0, piece_s=90)
    assert isinstance(night, SimulatedNight)
    assert night.record_id.startswith("ucddb") and night.duration_s == 180.0
    piece = night.render(0)
    assert piece.duration_s == 90.0 and set(piece.signals) >= {"ECG", "SpO2", "EEG C3-A2"}


def test_synthetic_nights_differ_per_bed() -> None:
    first, second = (night_for("synthetic", i, hours=0.1, seed=5) for i in (0, 1))
    assert first.seed != second.seed and first.record_id != second.record_id


def test_bad_source_fails_before_any_bed_starts(tmp_path: Path) -> None:
    with pytest.raises(PSGError, match="no such file or folder"):
        run_beds(1, source=tmp_path / "nope.xml", stop_event=threading.Event())
    with pytest.raises(PSGError, match="speed must be"):
        SimulatedBed("bed-1", [], speed=0)


def test_run_beds_streams_n_beds_until_stopped() -> None:
    pylsl = import_pylsl()
    stop = threading.Event()
    runner = threading.Thread(
        target=run_beds,
        args=(2,),
        kwargs=dict(speed=10, hours=0.05, seed=9, stop_event=stop, prefix="rb", wait_for_bridge_s=0),
        daemon=True,
    )
    runner.start()
    try:
        infos = pylsl.resolve_bypred("starts-with(name,'sleeplm-rb-')", minimum=6, timeout=15)
        names = sorted(info.name() for info in infos)
        assert names == sorted(f"sleeplm-rb-0{i}-{g}" for i in (1, 2) for g in ("exg", "resp", "aux"))
    finally:
        stop.set()
        runner.join(15)
    assert not runner.is_alive()
