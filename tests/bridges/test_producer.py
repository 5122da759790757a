"""The spooled producer against a real broker that is away, then refuses, then accepts: order and overflow."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from kafka import KafkaConsumer
from prometheus_client import REGISTRY

from device_bridges.producer import SpooledProducer
from plumbing.broker import free_port, start_broker
from plumbing.settings import Settings
from plumbing.topics import SAMPLES, ensure_topics
from psg.codecs import DeviceEvent, SampleChunk, decode_samples_message, encode_chunk


def _chunk(seq: int) -> bytes:
    data = np.full((3, 256), seq, dtype=np.float32)
    return encode_chunk(
        SampleChunk(
            "bed-1",
            "bed-1-rec",
            "exg",
            ("ECG", "EOG-L", "EOG-R"),
            ("mV", "uV", "uV"),
            256.0,
            1000.0 + seq,
            seq,
            1000.0,
            2000.0 + seq,
            data,
        )
    )


def _overflowed() -> float:
    return REGISTRY.get_sample_value("sleeplm_spool_overflow_total") or 0.0


def test_overflow_is_counted_reported_and_the_rest_arrives_in_order(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(
        kafka=f"127.0.0.1:{port}",
        data_dir=tmp_path,
        one_record_per_batch=True,
        spool_memory_chunks=4,
        spool_disk_mb=0.04,
    )
    before = _overflowed()
    sink = SpooledProducer(settings)  # no broker listening yet: everything spools
    for seq in range(60):
        sink.send(b"bed-1", _chunk(seq))
    dropped = int(_overflowed() - before)
    assert dropped > 0 and sink.pending() == 60 - dropped  # the overflow report waits for room
    broker = start_broker(port=port)
    try:
        time.sleep(1.5)  # the broker is up without topics: it refuses the records until they exist
        ensure_topics(broker.bootstrap, 2)
        deadline = time.monotonic() + 20
        while sink.delivered < 60 - dropped + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sink.pending() == 0 and sink.delivered == 60 - dropped + 1  # + the spool_overflow event
        sink.close()
        consumer = KafkaConsumer(
            SAMPLES, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=2000
        )
        messages = [decode_samples_message(m.value) for m in consumer]
        consumer.close()
    finally:
        broker.stop()
    seqs = [m.seq for m in messages if isinstance(m, SampleChunk)]
    events = [m for m in messages if isinstance(m, DeviceEvent)]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)) == 60 - dropped
    assert seqs[:4] == [0, 1, 2, 3] and seqs[-1] == 59  # the oldest (in memory) and the newest are kept
    missing = sorted(set(range(60)) - set(seqs))
    assert len(events) == 1 and events[0].type == "spool_overflow" and events[0].stream == "exg"
    assert f"{len(missing)} chunk(s), seq {missing[0]}..{missing[-1]}" in events[0].detail
    assert missing == list(range(missing[0], missing[-1] + 1))  # one contiguous span: whole oldest segments
