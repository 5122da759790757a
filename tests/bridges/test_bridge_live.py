"""The bridge on real parts: simulated beds over real LSL, produced to a real (embedded Tansu) broker.

Every test reads ``psg.samples`` back with a plain kafka-python consumer and checks what the downstream
epocher relies on: per (bed, stream) ``seq`` from 0 without gaps or duplicates, sample-contiguous
chunk times, every pushed sample delivered, and device events in the right place.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import TopicPartition

from device_bridges.bed_nights import SimulatedNight
from device_bridges.bridge import Bridge
from device_bridges.bridge_config import BridgeConfig
from device_bridges.producer import SpooledProducer
from device_bridges.simulated import SimulatedBed, wait_all_ready
from plumbing.broker import EmbeddedBroker, free_port, start_broker
from plumbing.settings import Settings
from plumbing.topics import SAMPLES, ensure_topics
from psg.codecs import ChunkBundle, DeviceEvent, SampleChunk, decode_samples_message
from psg.montage import CHANNELS
from psg.synthetic import synthetic_timeline

pytestmark = pytest.mark.live
SPEED = 20.0


def _night(epochs: int, seed: int) -> SimulatedNight:
    timeline = synthetic_timeline(hours=epochs * 30 / 3600, seed=seed, record_id=f"test-{seed}")
    return SimulatedNight(timeline, seed=seed, piece_s=600)


def _read_samples(bootstrap: str, records: list | None = None) -> list[SampleChunk | DeviceEvent]:
    """Everything on ``psg.samples`` (bundles unpacked), once the consumer has read every partition to its
    end; ``records`` receives the records as produced."""
    consumer = _Consumer(bootstrap)
    try:
        _wait(consumer.caught_up, 20, "the consumer to read psg.samples to the end")
    finally:
        consumer.close()
    if records is not None:
        records += consumer.records
    return consumer.messages


class _Consumer:
    """Everything on ``psg.samples`` of one broker, read in a background thread (no consumer group)."""

    def __init__(self, bootstrap: str) -> None:
        from kafka import KafkaConsumer

        self.records: list[SampleChunk | ChunkBundle | DeviceEvent] = []  # as produced
        self.messages: list[SampleChunk | DeviceEvent] = []  # bundles unpacked into their chunks
        self._consumer = KafkaConsumer(
            SAMPLES,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            consumer_timeout_ms=200,
            reconnect_backoff_max_ms=500,
        )
        self._kept: dict[TopicPartition, int] = {}  # per partition, the offset after the last record kept
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer:
                value = decode_samples_message(message.value)
                self.records.append(value)
                self.messages += value.chunks if isinstance(value, ChunkBundle) else [value]
                self._kept[TopicPartition(message.topic, message.partition)] = message.offset + 1

    def caught_up(self) -> bool:
        """True when every partition has been read to its end and its records kept: the consumer's own
        position moves when it hands a record out, before this thread has appended it (a CI run saw 17 kept
        of 18 delivered)."""
        assignment = self._consumer.assignment()
        if not assignment:
            return False
        ends = self._consumer.end_offsets(list(assignment))
        starts = self._consumer.beginning_offsets(list(assignment))
        return all(self._kept.get(tp, starts[tp]) >= end for tp, end in ends.items())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    started = start_broker()
    ensure_topics(started.bootstrap, 2)
    try:
        yield started
    finally:
        started.stop()


def _settings(tmp_path: Path, bootstrap: str, **overrides: object) -> Settings:
    return Settings(kafka=bootstrap, data_dir=tmp_path / "data", one_record_per_batch=True, **overrides)


class _RunningBridge:
    def __init__(self, settings: Settings, lost_after_s: float = 5.0) -> None:
        self.sink = SpooledProducer(settings)
        self.bridge = Bridge(BridgeConfig(), self.sink, lost_after_s=lost_after_s)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.bridge.run, args=(self.stop_event,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)
        self.sink.close(timeout_s=10)


def _wait(condition, timeout_s: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)


def _by_stream(messages: list) -> dict[tuple[str, str], list]:
    out: dict[tuple[str, str], list] = defaultdict(list)
    for message in messages:
        out[(message.bed_id, message.stream)].append(message)
    return out


def _assert_contiguous(chunks: list[SampleChunk]) -> None:
    assert [c.seq for c in chunks] == list(range(len(chunks))), "seq must count from 0 without gaps or repeats"
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert abs(after.t0 - before.t_end) * before.fs < 1.0, f"chunk {after.seq} does not follow {before.seq}"


def test_two_beds_every_sample_in_order(tmp_path: Path, broker: EmbeddedBroker) -> None:
    """Two beds, a few epochs at 20x: every sample arrives once, in order, on the beds' sample clocks."""
    bridge = _RunningBridge(_settings(tmp_path, broker.bootstrap))
    epochs = 3
    beds = [SimulatedBed(f"bed-{i}", _night(epochs, seed=i), SPEED, wait_for_consumers_s=20).start() for i in (1, 2)]
    try:
        wait_all_ready(beds)
        for bed in beds:
            bed.join(epochs * 30 / SPEED + 25)
            assert not bed.running and bed.error is None
        _wait(
            lambda: bridge.sink.pending() == 0 and bridge.sink.delivered >= 2 * epochs * 30 * 0.9,
            15,
            "the bridge to deliver the beds' chunks",
        )
    finally:
        bridge.stop()
    records: list = []
    streams = _by_stream([m for m in _read_samples(broker.bootstrap, records) if isinstance(m, SampleChunk)])
    assert sorted(streams) == [(f"bed-{i}", g) for i in (1, 2) for g in ("aux", "exg", "resp")]
    # a bed's streams of the same second travel together: far fewer records than chunks
    chunks = sum(len(v) for v in streams.values())
    assert len(records) < 0.5 * chunks, f"{len(records)} records for {chunks} chunks: streams were not bundled"
    for bed in beds:
        starts = set()
        for group in bed.groups:
            chunks = streams[(bed.bed_id, group.name)]
            _assert_contiguous(chunks)
            assert {c.recording_id for c in chunks} == {bed.recording_id}
            assert all(c.labels == group.labels and set(c.labels) <= set(CHANNELS) for c in chunks)
            assert sum(c.n_samples for c in chunks) == bed.pushed_samples[group.name] == epochs * 30 * group.fs
            assert abs(chunks[0].t0 - chunks[0].recording_start) * group.fs < 1.0  # from the first sample
            assert all(c.n_samples == c.fs for c in chunks)  # 1-s chunks
            starts |= {c.recording_start for c in chunks}
        assert len(starts) == 1  # all streams of a bed share the recording start


def test_lost_stream_is_reported_then_resumes_in_sequence(tmp_path: Path, broker: EmbeddedBroker) -> None:
    """Unplugging a bed gives stream_lost once per stream; plugging it back gives stream_resumed, same seq."""
    bridge = _RunningBridge(_settings(tmp_path, broker.bootstrap), lost_after_s=1.0)
    bed = SimulatedBed("bed-7", _night(4, seed=7), SPEED, wait_for_consumers_s=20).start()
    try:
        wait_all_ready([bed])
        _wait(lambda: bed.pushed_s >= 20, 15, "the bed to stream")
        bed.disconnect()
        _wait(lambda: sum(s.lost for s in bridge.bridge.streams.values()) == 3, 10, "all three streams lost")
        unplugged_s = bed.pushed_s
        bed.reconnect()
        bed.join(4 * 30 / SPEED + 20)
        _wait(lambda: bridge.sink.pending() == 0, 15, "delivery")
    finally:
        bed.stop()
        bridge.stop()
    for (bed_id, stream), messages in _by_stream(_read_samples(broker.bootstrap)).items():
        kinds = [m.type if isinstance(m, DeviceEvent) else "chunk" for m in messages]
        lost, resumed = kinds.index("stream_lost"), kinds.index("stream_resumed")
        assert kinds.count("stream_resumed") == 1
        assert 0 < lost and resumed == lost + 1 and resumed < len(kinds) - 1, f"{stream}: {kinds}"
        chunks = [m for m in messages if isinstance(m, SampleChunk)]
        assert [c.seq for c in chunks] == list(range(len(chunks)))  # seq carries on after the resume
        after = chunks[kinds[:resumed].count("chunk")]
        before = chunks[kinds[:resumed].count("chunk") - 1]
        gap_s = after.t0 - before.t_end
        assert gap_s > 1.0 and after.t0 - after.recording_start >= unplugged_s - 1  # samples missed while unplugged
        assert messages[resumed].bed_id == bed_id and messages[resumed].recording_id == bed.recording_id


def test_broker_outage_spools_and_replays_in_order(tmp_path: Path) -> None:
    """Broker gone mid-night: chunks spool (memory, then disk) and reach the restarted broker in order."""
    port = free_port()
    first = start_broker(port=port)
    ensure_topics(first.bootstrap, 2)
    settings = _settings(tmp_path, first.bootstrap, spool_memory_chunks=10)
    bridge = _RunningBridge(settings)
    bed = SimulatedBed("bed-3", _night(4, seed=3), SPEED, wait_for_consumers_s=20).start()
    second: EmbeddedBroker | None = None
    before = _Consumer(first.bootstrap)
    try:
        wait_all_ready([bed])
        _wait(lambda: bed.pushed_s >= 30, 15, "the bed to stream")
        bridge.sink.hold()  # a quiet moment: read everything the first broker acknowledged
        _wait(lambda: bridge.sink.in_flight() == 0, 10, "in-flight records to complete")
        _wait(before.caught_up, 10, "the consumer to catch up with the first broker")
        assert len(before.records) == bridge.sink.delivered
        before.close()
        first.stop()
        bridge.sink.release()
        _wait(lambda: bridge.sink.spool.disk_used > 0, 15, "the spool to spill to disk")
        second = start_broker(port=port)
        ensure_topics(second.bootstrap, 2)
        bed.join(4 * 30 / SPEED + 20)
        _wait(lambda: bridge.sink.pending() == 0, 30, "the spool to drain into the new broker")
    finally:
        bed.stop()
        bridge.stop()
        first.stop()
    assert second is not None
    after = _Consumer(second.bootstrap)
    try:
        _wait(after.caught_up, 20, "the consumer to read the new broker to the end")
    finally:
        after.close()
        second.stop()
    early, late = _by_stream(before.messages), _by_stream(after.messages)
    for group in bed.groups:
        key = (bed.bed_id, group.name)
        chunks = [c for c in early.get(key, []) + late[key] if isinstance(c, SampleChunk)]
        _assert_contiguous(chunks)  # nothing lost, nothing repeated, in order across the outage
        assert sum(c.n_samples for c in chunks) == bed.pushed_samples[group.name] == 4 * 30 * group.fs
        assert [c.seq for c in late[key] if isinstance(c, SampleChunk)][0] > 0  # spooled chunks, then live ones


def test_real_device_is_mapped_through_its_channel_map(tmp_path: Path, broker: EmbeddedBroker) -> None:
    """A configured amplifier (OpenBCI-like: 8 unlabelled channels in uV) becomes montage channels of its bed."""
    import numpy as np

    from device_bridges.bridge_config import load_bridge_config
    from device_bridges.lsl_config import import_pylsl

    pylsl = import_pylsl()
    config_path = tmp_path / "bridge.toml"
    config_path.write_text(
        'simulated = false\n[[beds]]\nid = "bed-cyton"\nchannel_map = "openbci_cyton"\n'
        '[[beds.streams]]\nstream = "exg"\nname = "obci_eeg1"\nsource_id = "cyton-test"\n'
    )
    info = pylsl.StreamInfo("obci_eeg1", "EEG", 8, 250.0, pylsl.cf_float32, "cyton-test")
    outlet = pylsl.StreamOutlet(info)
    sink = SpooledProducer(_settings(tmp_path, broker.bootstrap))
    bridge = Bridge(load_bridge_config(config_path), sink)
    stop = threading.Event()
    thread = threading.Thread(target=bridge.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert outlet.wait_for_consumers(15)
        start = pylsl.local_clock()
        for second in range(4):  # 4 s of device time at 10x
            block = np.tile(np.arange(1, 9, dtype=np.float32) * 100, (250, 1))
            block[:, 7] = 1000.0 * (second + 1)  # ECG electrode, uV
            outlet.push_chunk(block, (start + (second * 250 + np.arange(250)) / 250.0).tolist())
            time.sleep(0.1)
        _wait(lambda: sink.delivered_chunks >= 4, 15, "four chunks from the device")
    finally:
        stop.set()
        thread.join(10)
        sink.close()
        del outlet
    chunks = [m for m in _read_samples(broker.bootstrap) if isinstance(m, SampleChunk)]
    _assert_contiguous(chunks)
    assert {(c.bed_id, c.stream) for c in chunks} == {("bed-cyton", "exg")} and len(chunks) == 4
    first = chunks[0]
    assert first.labels == ("EEG C3-A2", "EEG C4-A1", "EOG-L", "EOG-R", "EMG Chin", "ECG")
    assert first.units == ("uV", "uV", "uV", "uV", "uV", "mV")
    np.testing.assert_allclose(first.data[:5, 0], [100, 200, 300, 400, 700])  # ch5/ch6 not forwarded
    np.testing.assert_allclose([c.data[5, 0] for c in chunks], [1.0, 2.0, 3.0, 4.0], rtol=1e-6)  # uV -> mV
    assert first.recording_start == first.t0  # a real bed's recording starts with its first sample
    assert first.recording_id.startswith("bed-cyton-") and len(first.recording_id) == len("bed-cyton-") + 15
