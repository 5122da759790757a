"""EDF+D replay to the live path: no sample of a gap is sent, the timestamps jump over it on fresh outlets,
and the epocher (which places samples by time) emits the gap's epochs flagged 'gap'. Unit level: the
outlets are recorders and the bridge's chunking is called directly; no LSL network, no broker."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from device_bridges.bed_nights import edf_recording
from device_bridges.bridge import Bridge
from device_bridges.bridge_config import BridgeConfig
from device_bridges.channel_map import ChannelMap
from device_bridges.simulated import RateGroup, SimulatedBed, recorded_spans
from psg.codecs import EpochMessage, SampleChunk
from psg.epoching.epocher import Epocher
from psg.formats import write_edf
from psg.recording import Recording, Signal
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline

GAP = (65.0, 130.0)  # epochs 2 (60-90 s, partly), 3 and 4 (120-150 s, partly)
GAP_EPOCHS = [2, 3, 4]


class _Outlet:
    """Records what a bed pushes: (outlet generation, samples, timestamps)."""

    def __init__(self, log: list[tuple[str, int, np.ndarray, np.ndarray]], group: str, generation: int) -> None:
        self.log, self.group, self.generation = log, group, generation

    def have_consumers(self) -> bool:
        return True

    def push_chunk(self, block: np.ndarray, stamps: list[float]) -> None:
        self.log.append((self.group, self.generation, np.array(block), np.array(stamps)))


class _RecordingBed(SimulatedBed):
    """A bed whose outlets are recorders (``opened`` counts the outlets opened per group)."""

    def __init__(self, recording: Recording) -> None:
        super().__init__("bed-gap", recording, speed=1000.0, recording_id="bed-gap-rec")
        self.log: list[tuple[str, int, np.ndarray, np.ndarray]] = []
        self.opened: dict[str, int] = {}

    def _outlet(self, group: RateGroup) -> Any:
        self.opened[group.name] = self.opened.get(group.name, 0) + 1
        return _Outlet(self.log, group.name, self.opened[group.name])


def _gapped() -> Recording:
    night = simulate(synthetic_timeline(hours=240 / 3600, seed=7, ahi=0), seed=7)
    signals = {}
    for label, sig in night.signals.items():
        data = sig.data.copy()
        data[int(GAP[0] * sig.fs) : int(GAP[1] * sig.fs)] = 0.0
        signals[label] = Signal(label, data, sig.fs, sig.unit)
    return Recording(night.record_id, signals, night.start_time, None, gaps=(GAP,))


@pytest.fixture(scope="module")
def played() -> tuple[Recording, _RecordingBed]:
    recording = _gapped()
    bed = _RecordingBed(recording)
    bed.run(threading.Event())
    assert bed.recording_start is not None
    return recording, bed


def test_recorded_spans_subtract_the_gaps() -> None:
    assert recorded_spans([(65.0, 130.0)], 64.0, 65.0) == [(64.0, 65.0)]
    assert recorded_spans([(65.0, 130.0)], 70.0, 71.0) == []
    assert recorded_spans([(64.5, 65.2), (65.7, 70.0)], 64.0, 65.0 + 1.0) == [(64.0, 64.5), (65.2, 65.7)]
    assert recorded_spans([], 3.0, 4.0) == [(3.0, 4.0)]


def test_no_gap_sample_is_streamed_and_timestamps_jump_over_the_gap(played) -> None:  # noqa: ANN001
    recording, bed = played
    for group in bed.groups:
        pushes = [(gen, block, stamps) for name, gen, block, stamps in bed.log if name == group.name]
        t = np.concatenate([stamps for _, _, stamps in pushes]) - bed.recording_start
        values = np.concatenate([block for _, block, _ in pushes])
        assert not np.any((t >= GAP[0] - 1e-6) & (t < GAP[1] - 1e-6)), f"{group.name}: a gap sample was sent"
        before, after = t[t < GAP[0]], t[t >= GAP[1] - 1e-6]
        np.testing.assert_allclose(before, np.arange(before.size) / group.fs, atol=1e-6)  # on the device clock
        assert after[0] == pytest.approx(GAP[1], abs=1e-6)  # the first sample after the gap: at its true time
        np.testing.assert_allclose(np.diff(after), 1.0 / group.fs, rtol=1e-6)
        expected = int(round(recording.duration_s * group.fs)) - int(round((GAP[1] - GAP[0]) * group.fs))
        assert values.shape[0] == expected and bed.gap_samples[group.name] == int(round((GAP[1] - GAP[0]) * group.fs))
        for label, column in zip(group.labels, values.T, strict=True):  # each sample is the recording's sample
            index = np.round(t * group.fs).astype(int)
            np.testing.assert_allclose(column, recording.signals[label].data[index].astype(np.float32))
        # the recorder stops at the gap and resumes on new outlets (so no inlet dejitters across the jump)
        assert {gen for gen, _, stamps in pushes if stamps[0] - bed.recording_start < GAP[0]} == {1}
        assert {gen for gen, _, stamps in pushes if stamps[0] - bed.recording_start >= GAP[1] - 1e-6} == {2}
        assert bed.opened[group.name] == 2


def _bridge_chunks(bed: _RecordingBed) -> list[SampleChunk]:
    """What the bridge makes of the pushes: its own ~1-s chunking, an outlet closing at each new generation."""
    bridge = Bridge(BridgeConfig(), sink=None)  # type: ignore[arg-type]
    from device_bridges.bridge import _Stream

    states = {}
    for group in bed.groups:
        mapping = ChannelMap.identity(group.labels, "test").resolve(group.labels, group.name)
        states[group.name] = _Stream(
            bed.bed_id, group.name, group.fs, mapping, bed.recording_id, bed.recording_start + bridge.offset
        )
    generation = dict.fromkeys(states, 1)
    for name, gen, block, stamps in bed.log:
        if gen != generation[name]:
            bridge._flush(states[name])  # the old outlet closed: what it sent is complete
            generation[name] = gen
        bridge._received(states[name], block, stamps)
    for state in states.values():
        bridge._flush(state)
    return sorted((c for chunks in bridge._outbox.values() for c in chunks), key=lambda c: (c.t0, c.stream))


def test_the_epocher_flags_the_gap_epochs_gap(played) -> None:  # noqa: ANN001
    recording, bed = played
    chunks = _bridge_chunks(bed)
    start = chunks[0].recording_start
    assert not any(GAP[0] < c.t_end - start - 1e-6 and c.t0 - start < GAP[1] - 1e-6 for c in chunks)
    epocher = Epocher()
    epochs: list[EpochMessage] = []
    for i, chunk in enumerate(chunks):
        epochs += epocher.add(chunk, i).epochs
    assert [m.epoch for m in epochs] == list(range(recording.n_epochs))
    for m in epochs:
        gap_flagged = all("gap" in m.quality[label] for label in ("EEG C3-A2", "ECG", "AF", "SpO2"))
        assert gap_flagged == (m.epoch in GAP_EPOCHS), f"epoch {m.epoch}: {m.quality}"


def test_bridge_starts_a_new_chunk_at_a_jump_in_the_device_clock() -> None:
    bridge = Bridge(BridgeConfig(), sink=None)  # type: ignore[arg-type]
    from device_bridges.bridge import _Stream

    mapping = ChannelMap.identity(("SpO2",), "test").resolve(("SpO2",), "aux")
    state = _Stream("bed-j", "aux", 4.0, mapping, "rec-j", 1000.0)
    bridge._received(state, np.full((2, 1), 95.0, np.float32), np.array([0.0, 0.25]) + 1000.0 - bridge.offset)
    after = np.array([9.0, 9.25, 9.5, 9.75]) + 1000.0 - bridge.offset
    bridge._received(state, np.full((4, 1), 96.0, np.float32), after)
    chunks = bridge._outbox["bed-j"]
    assert [(round(c.t0 - 1000.0, 2), c.n_samples) for c in chunks] == [(0.0, 2), (9.0, 4)]


def test_edf_replay_keeps_the_files_gaps(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """``edf_recording`` hands the reader's gaps (an EDF+D file's) to the bed along with the signals."""
    import psg.formats

    path = tmp_path / "gapped.edf"
    write_edf(_gapped(), path)
    read = psg.formats.read_mapped_edf

    def with_gaps(*args: Any, **kwargs: Any) -> Any:
        recording, report = read(*args, **kwargs)
        recording.gaps = (GAP,)  # what the EDF+D reader gives
        return recording, report

    monkeypatch.setattr(psg.formats, "read_mapped_edf", with_gaps)
    assert edf_recording(path).gaps == (GAP,)
