"""End to end on real parts: LSL outlets -> bridge -> Tansu -> Faust worker -> SQLite, as processes.

A simulated night of ``HOURS`` has exactly ``EPOCHS`` epochs; every bed must end with exactly epochs
0..EPOCHS-1 stored once, each with a stage and the five captions, after a worker SIGKILL and restart
too, and with malformed messages dead-lettered while the stream goes on.
"""

from __future__ import annotations

import base64
import signal
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer

from plumbing import topics
from psg.json_codec import decode_json
from tests.live.conftest import wait_until
from tests.live.helpers import assert_each_epoch_once, complete, start_beds

HOURS = 0.05  # 3 minutes of device time
EPOCHS = 6


def test_beds_end_to_end_exactly_once(stack) -> None:
    env = stack.child_env()
    stack.spawn("worker", ["worker"], env)
    start_beds(stack, beds=3, speed=20, hours=HOURS)
    wait_until(lambda: complete(stack.settings, 3, EPOCHS), 120, "3 beds x 6 epochs in the store", stack)
    time.sleep(3)  # nothing more may arrive: the nights are over
    assert_each_epoch_once(stack.settings, 3, EPOCHS)


def test_worker_sigkill_and_restart_loses_and_duplicates_nothing(stack) -> None:
    env = stack.child_env()
    worker = stack.spawn("worker", ["worker"], env)
    start_beds(stack, beds=2, speed=20, hours=0.1)
    wait_until(lambda: complete(stack.settings, 2, 3), 120, "3 epochs per bed before the kill", stack)
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait()
    stack.children.remove(worker)
    time.sleep(2)  # the beds keep streaming into the broker meanwhile
    stack.spawn("worker", ["worker"], env)
    wait_until(lambda: complete(stack.settings, 2, 12), 150, "12 epochs per bed after the restart", stack)
    time.sleep(3)
    assert_each_epoch_once(stack.settings, 2, 12)


def test_malformed_messages_are_dead_lettered_and_the_stream_goes_on(stack) -> None:
    env = stack.child_env()
    stack.spawn("worker", ["worker"], env)
    producer = KafkaProducer(bootstrap_servers=stack.settings.kafka, batch_size=1, linger_ms=0)
    bad = {
        topics.SAMPLES: [b"not a psg message", b"PSGS\x01\xff\xff\x00\x00{"],
        topics.EPOCHS: [b"PSGE\x01\x02\x00\x00\x00{}"],
        topics.CAPTIONS: [b'{"schema": 1, "bed_id": "x"}'],
    }
    for topic, values in bad.items():
        for value in values:
            producer.send(topic, key=b"bed-bad", value=value)
    producer.flush()
    start_beds(stack, beds=1, speed=20, hours=HOURS)

    consumer = KafkaConsumer(
        topics.DEADLETTER,
        bootstrap_servers=stack.settings.kafka,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
    )
    letters: list[dict] = []

    def all_dead_lettered() -> bool:
        letters.extend(decode_json(m.value, ("source_topic", "reason", "payload_b64")) for m in consumer)
        return len(letters) >= 4

    wait_until(all_dead_lettered, 90, "4 dead letters", stack)
    consumer.close()
    by_topic = {}
    for letter in letters:
        by_topic.setdefault(letter["source_topic"], []).append(letter)
    assert {t: len(v) for t, v in by_topic.items()} == {topics.SAMPLES: 2, topics.EPOCHS: 1, topics.CAPTIONS: 1}
    assert "magic" in by_topic[topics.SAMPLES][0]["reason"]
    assert base64.b64decode(by_topic[topics.SAMPLES][0]["payload_b64"]) == b"not a psg message"
    assert "missing field" in by_topic[topics.CAPTIONS][0]["reason"]
    wait_until(lambda: complete(stack.settings, 1, EPOCHS), 90, "the bed's 6 epochs after the bad input", stack)
    assert_each_epoch_once(stack.settings, 1, EPOCHS)


@pytest.mark.parametrize("value", [b"", b"PSGS"])
def test_tiny_values_name_the_problem(value: bytes) -> None:
    from psg.codecs import decode_samples_message
    from psg.errors import MessageError

    with pytest.raises(MessageError, match="shorter than"):
        decode_samples_message(value)
