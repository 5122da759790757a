"""Which offsets the embedded Tansu broker reports when producers batch (issue 17, deliverable 1).

WHY: the monitor sent one record per produce batch because Tansu "mis-reports high watermarks" with
batches, and one record per batch is Tansu's most expensive case (its fetch cost grows with the batches
a partition holds). This script pins down what exactly is wrong, from both producers the monitor uses:
librdkafka (confluent-kafka: the bridge and the load generator) and aiokafka (Faust's agents).

For each producer it writes batches of known sizes to a fresh partition of a fresh broker and reads back:

* the offsets the broker assigned (delivery reports),
* ListOffsets latest and earliest (kafka-python's ``end_offsets``/``beginning_offsets``, librdkafka's
  ``get_watermark_offsets(cached=False)``, aiokafka's ``end_offsets``),
* the high watermark a Fetch response carries (librdkafka ``get_watermark_offsets(cached=True)`` after
  consuming, aiokafka ``highwater``),
* what a consumer sees when it starts at every offset (start of a batch, inside one, the end), and what a
  consumer group commits and reads back.

Run: ``.venv/bin/python benchmarks/tansu_watermarks.py`` (a broker on a free loopback port, ~20 s);
``--bootstrap host:port`` runs it against another broker (Apache Kafka answers every line with the true end).
Prints one JSON object; ``"verdict"`` names the APIs whose answer differs from the records stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: Sizes of the batches each producer writes (records); a lone record and a batch in the middle included.
BATCHES = (10, 20, 30, 1, 5)


def _list_offsets(bootstrap: str, topic: str) -> dict[str, int]:
    from confluent_kafka import Consumer, TopicPartition
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KafkaTP

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tp = KafkaTP(topic, 0)
        earliest, latest = consumer.beginning_offsets([tp])[tp], consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()
    rd = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4().hex[:6]}"})
    try:
        low, high = rd.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    finally:
        rd.close()
    return {
        "kafka_python_earliest": earliest,
        "kafka_python_latest": latest,
        "librdkafka_list_offsets_high": high,
        "librdkafka_list_offsets_low": low,
    }


def _consume_from(bootstrap: str, topic: str, start: int, commit: bool = False) -> dict[str, Any]:
    """Offsets a librdkafka consumer reads from ``start``, the Fetch high watermark, and (``commit``) what
    its group commits and reads back."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"probe-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, start)])
        offsets, errors, quiet_since = [], [], time.monotonic()
        while time.monotonic() - quiet_since < 1.5:
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                errors.append(str(message.error()))
                continue
            offsets.append(message.offset())
            quiet_since = time.monotonic()
        out: dict[str, Any] = {
            "start": start,
            "read": len(offsets),
            "first": offsets[0] if offsets else None,
            "last": offsets[-1] if offsets else None,
            "errors": errors,
            "fetch_high_watermark": consumer.get_watermark_offsets(TopicPartition(topic, 0), cached=True)[1],
        }
        if commit and offsets:
            consumer.commit(offsets=[TopicPartition(topic, 0, offsets[-1] + 1)], asynchronous=False)
            out["committed"] = consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
        return out
    finally:
        consumer.close()


def _produce_librdkafka(bootstrap: str, topic: str) -> list[int]:
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": False,
            "linger.ms": 1000,
            "batch.num.messages": 100_000,
        }
    )
    assigned: list[int] = []
    for size in BATCHES:  # one flush per batch: each loop is exactly one produce batch
        for _ in range(size):
            producer.produce(topic, key=b"bed", value=b"x" * 100, on_delivery=lambda e, m: assigned.append(m.offset()))
        producer.flush(10)
    return assigned


def _produce_aiokafka(bootstrap: str, topic: str) -> list[int]:
    async def run() -> list[int]:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1000, max_batch_size=1 << 20)
        await producer.start()
        try:
            assigned = []
            for size in BATCHES:
                futures = [await producer.send(topic, key=b"bed", value=b"x" * 100) for _ in range(size)]
                await producer.flush()
                assigned += [(await f).offset for f in futures]
            return assigned
        finally:
            await producer.stop()

    return asyncio.run(run())


def _aiokafka_view(bootstrap: str, topic: str) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            read_from = {}
            for start in (0, 15, 61, 63):  # a batch's start, inside one, the last batch, inside it
                consumer.seek(tp, start)
                offsets: list[int] = []
                for _ in range(6):
                    offsets += [m.offset for v in (await consumer.getmany(tp, timeout_ms=300)).values() for m in v]
                read_from[start] = [len(offsets), offsets[0] if offsets else None]
            return {
                "aiokafka_list_offsets_end": end,
                "aiokafka_read_from_start_count_first": read_from,
                "aiokafka_fetch_highwater": consumer.highwater(tp),
            }
        finally:
            await consumer.stop()

    return asyncio.run(run())


def probe(bootstrap: str, producer: str) -> dict[str, Any]:
    from plumbing.topics import ensure_topics

    topic = f"probe-{producer}-{uuid.uuid4().hex[:6]}"
    ensure_topics(bootstrap, 1, topics=(topic,))
    assigned = (_produce_librdkafka if producer == "librdkafka" else _produce_aiokafka)(bootstrap, topic)
    bases, base = [], 0
    for size in BATCHES:
        bases.append(base)
        base += size
    stored = sum(BATCHES)
    out: dict[str, Any] = {
        "producer": producer,
        "batches": list(BATCHES),
        "batch_first_offsets": bases,
        "records": stored,
        "assigned_offsets_ok": sorted(assigned) == list(range(stored)),
        **_list_offsets(bootstrap, topic),
        **_aiokafka_view(bootstrap, topic),
    }
    starts = sorted({0, 5, 15, bases[-1] - 1, bases[-1], bases[-1] + 2, stored})
    out["consumers"] = [_consume_from(bootstrap, topic, s, commit=(s == 0)) for s in starts]
    wrong = [
        name
        for name in ("kafka_python_latest", "librdkafka_list_offsets_high", "aiokafka_list_offsets_end")
        if out[name] != stored
    ]
    wrong += [
        f"aiokafka from {k}"
        for k, (n, first) in out["aiokafka_read_from_start_count_first"].items()
        if n != stored - k or (n and first != k)
    ]
    wrong += [
        f"consumer from {c['start']}"
        for c in out["consumers"]
        if c["read"] != stored - c["start"] or c["fetch_high_watermark"] != stored or c["errors"]
    ]
    out["wrong"] = wrong
    out["list_offsets_latest_is_last_batch_first_offset_plus_1"] = out["kafka_python_latest"] == bases[-1] + 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="an existing broker; default: a fresh embedded Tansu")
    args = parser.parse_args()
    broker = None
    if args.bootstrap is None:
        from plumbing.broker import start_broker

        broker = start_broker()
    bootstrap = args.bootstrap or broker.bootstrap
    try:
        results = [probe(bootstrap, producer) for producer in ("librdkafka", "aiokafka")]
    finally:
        if broker is not None:
            broker.stop()
    wrong = sorted({w for r in results for w in r["wrong"]})
    print(
        json.dumps(
            {
                "broker": "embedded tansu" if broker else bootstrap,
                "results": results,
                "verdict": wrong or "every API agrees with the records stored",
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
