"""Delivery to Kafka through the spool: in order, acknowledged, surviving broker outages.

Every record goes into the ``Spool`` first and leaves it only when the broker has acknowledged it
(``acks="all"``). A sender thread feeds the oldest unacknowledged records to a kafka-python producer, at
most ``window`` at a time, with one request in flight per connection and unlimited retries, so the
producer itself keeps them in order while the broker is away and delivers them when it is back (a
restarted broker on the same address included). Meanwhile new records pile up behind them in the spool
(memory, then disk), so nothing overtakes anything. ``send`` never blocks on the broker.

If the spool has to drop records (disk budget exhausted) it reports them; this module counts them
(``sleeplm_spool_overflow``) and queues one ``spool_overflow`` device event per (bed, recording, stream)
saying which chunks were lost, so the gap is visible downstream as a technical alert.

Delivery is at least once: a request whose acknowledgement is lost on a broken connection is sent
again, so a consumer may see an adjacent duplicate, recognisable by its ``seq``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from typing import Any

from device_bridges.spool import Record, Spool
from psg.codecs import MAGIC_SAMPLES, DeviceEvent, MessageError, decode_samples_message, encode_device_event
from services.metrics import metrics
from services.settings import Settings
from services.topics import SAMPLES

log = logging.getLogger(__name__)


def producer_config(settings: Settings) -> dict[str, Any]:
    """kafka-python producer settings of the bridge (Tansu needs one record per produce batch)."""
    if not settings.kafka:
        raise ValueError("the bridge needs a broker: set SLEEPLM_KAFKA (sleeplm up starts one)")
    return {
        "bootstrap_servers": settings.kafka.split(","),
        "client_id": "sleeplm-bridge",
        "acks": "all",
        "enable_idempotence": False,  # a restarted embedded broker forgets producer ids
        "max_in_flight_requests_per_connection": 1,  # with retries: order kept per partition
        "delivery_timeout_ms": 24 * 3600 * 1000,  # retry through an outage; the spool bounds memory
        "request_timeout_ms": 10_000,
        "max_block_ms": 1_000,  # send() must not stall the LSL side when metadata is unavailable
        "reconnect_backoff_ms": 100,
        "reconnect_backoff_max_ms": 1_000,  # notice a returning broker within a second
        "retry_backoff_ms": 200,
        "linger_ms": 0,
        "batch_size": 1 if settings.one_record_per_batch else 256 * 1024,
        "max_request_size": 8 * 1024 * 1024,
    }


class SpooledProducer:
    """Ordered, spooled, acknowledged delivery of (key, value) records to one topic."""

    def __init__(self, settings: Settings, topic: str = SAMPLES, window: int = 64) -> None:
        self.settings = settings
        self.topic = topic
        self.window = window
        self.spool = Spool(
            settings.spool_dir,
            memory_records=settings.spool_memory_chunks,
            disk_bytes=int(settings.spool_disk_mb * 1024 * 1024),
        )
        self.config = producer_config(settings)
        self.delivered = 0
        self._in_flight = 0
        self._wake = threading.Condition()
        self._closing = threading.Event()
        self._held = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bridge-sender", daemon=True)
        self._thread.start()

    def send(self, key: bytes, value: bytes) -> None:
        """Queue a record behind everything not yet delivered (never blocks on the broker)."""
        pending = [(key, value)]
        while pending:  # overflow events can themselves push records out; each round frees a segment
            dropped = [d for k, v in pending for d in self.spool.append(k, v)]
            pending = self._overflow_events(dropped) if dropped else []
        metrics().spooled_chunks.set(len(self.spool))
        with self._wake:
            self._wake.notify()

    def hold(self) -> None:
        """Stop handing records to the broker (records in flight still complete); ``send`` keeps spooling.

        For an operator moving the bridge to another broker, and for tests that need a quiet moment.
        """
        self._held.set()

    def release(self) -> None:
        self._held.clear()
        with self._wake:
            self._wake.notify()

    def in_flight(self) -> int:
        """Records handed to the producer and not yet acknowledged."""
        return self._in_flight

    def pending(self) -> int:
        """Records not yet acknowledged by the broker."""
        return len(self.spool)

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is spooled for up to ``timeout_s``, then stop; what is left stays on disk."""
        deadline = time.monotonic() + timeout_s
        while self.pending() and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.05)
        self._closing.set()
        with self._wake:
            self._wake.notify()
        self._thread.join(timeout_s + 5.0)
        left = self.pending()
        self.spool.close()
        if left:
            log.warning("bridge stopped with %d records undelivered; kept in %s for the next start", left,
                        self.spool.directory)

    # --- sender thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError, KafkaTimeoutError

        producer: Any = None
        in_flight: deque[tuple[Record, Any]] = deque()
        last_sent: int | None = None
        backoff = 0.0
        while not self._closing.is_set():
            if backoff:
                self._closing.wait(backoff)
            try:
                if producer is None:
                    producer = KafkaProducer(**self.config)
                    backoff = 0.0
                room = 0 if self._held.is_set() else self.window - len(in_flight)
                for record in self.spool.peek_after(last_sent, room) if room > 0 else []:
                    try:
                        future = producer.send(self.topic, key=record.key, value=record.value)
                    except KafkaTimeoutError:  # no metadata yet (broker down at start): retry later
                        backoff = 0.5
                        break
                    in_flight.append((record, future))
                    last_sent = record.index
                done = self._collect(in_flight)
                self._in_flight = len(in_flight)
                if done is False:  # a record failed for good: start again from the oldest undelivered
                    producer.close(timeout=0)
                    producer, last_sent, backoff = None, None, 1.0
                    in_flight.clear()
                elif not done and not backoff:
                    with self._wake:
                        self._wake.wait(0.01)
            except (KafkaError, OSError) as exc:
                log.warning("bridge producer: %s; retrying", exc)
                if producer is not None:
                    producer.close(timeout=0)
                producer, last_sent, backoff = None, None, min(5.0, max(0.5, backoff * 2))
                in_flight.clear()
        if producer is not None:
            producer.flush(timeout=5)
            self._collect(in_flight)
            producer.close(timeout=5)

    def _collect(self, in_flight: deque[tuple[Record, Any]]) -> int | bool:
        """Retire acknowledged records in order; the number retired, or False after a permanent failure."""
        retired = 0
        while in_flight and in_flight[0][1].is_done:
            record, future = in_flight[0]
            if future.failed():
                log.error("bridge producer: record %d failed (%s); resending from it", record.index, future.exception)
                return False
            in_flight.popleft()
            self.spool.pop_through(record.index)
            if record.value[:4] == MAGIC_SAMPLES:
                metrics().chunks_produced.inc()
            self.delivered += 1
            retired += 1
        if retired:
            metrics().spooled_chunks.set(len(self.spool))
        return retired

    # --- overflow -----------------------------------------------------------------------------------

    def _overflow_events(self, dropped: list[Record]) -> list[tuple[bytes, bytes]]:
        """Count dropped records and build one ``spool_overflow`` event per (bed, recording, stream)."""
        metrics().spool_overflow.inc(len(dropped))
        lost: dict[tuple[str, str, str], list[int]] = defaultdict(list)
        for record in dropped:
            try:
                message = decode_samples_message(record.value)
            except MessageError:
                continue
            seq = message.seq if not isinstance(message, DeviceEvent) else -1
            lost[(message.bed_id, message.recording_id, message.stream)].append(seq)
        events = []
        for (bed, recording, stream), seqs in lost.items():
            chunks = sorted(s for s in seqs if s >= 0)
            detail = (
                f"bridge spool full ({self.settings.spool_disk_mb:g} MB on disk): {len(chunks)} chunk(s)"
                + (f", seq {chunks[0]}..{chunks[-1]}" if chunks else "")
                + (f" and {len(seqs) - len(chunks)} device event(s)" if len(seqs) > len(chunks) else "")
                + " dropped"
            )
            log.error("bed %s stream %s: %s", bed, stream, detail)
            event = DeviceEvent(bed, recording, stream, "spool_overflow", time.time(), detail)
            metrics().device_events.labels(type="spool_overflow").inc()
            events.append((bed.encode(), encode_device_event(event)))
        return events
