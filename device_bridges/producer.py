"""Delivery to Kafka through the spool: in order, acknowledged, surviving broker outages.

Every record goes into the ``Spool`` first and leaves it only when the broker has acknowledged it
(``acks=all``). A sender thread feeds the spooled records to a librdkafka producer (confluent-kafka)
with unlimited retries, one record in flight per bed (key), so each bed's records reach the broker
strictly in spool order even when the broker refuses some for a while (a restarted broker does until
its topics exist again) or disappears and comes back on the same address. Meanwhile new records pile
up behind them in the spool (memory, then disk), so nothing overtakes anything. ``send`` never blocks
on the broker.

WHY librdkafka and not kafka-python here: the bridge reads LSL in Python, and whatever holds the GIL
delays that. kafka-python's network thread spins at 100 % of a core while a broker hangs (a connected
node that is not ready reports a connection delay of 0, so its poll timeout is 0): during a 30-s broker
freeze the bridge fell behind its devices, its streams drifted apart and a device that closed its
outlet meanwhile lost what LSL still buffered. librdkafka does its I/O in C threads without the GIL
(0 % CPU through the same freeze).

If the spool has to drop records (disk budget exhausted) it reports them; this module counts them
(``sleeplm_spool_overflow``), logs them, and once the spool has room again queues one ``spool_overflow``
device event per (bed, recording, stream) saying which chunks were lost, so the gap is visible
downstream as a technical alert.

Delivery is at least once: a request whose acknowledgement is lost on a broken connection is sent
again, so a consumer may see an adjacent duplicate, recognisable by its ``seq``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from device_bridges.spool import Record, Spool
from plumbing.metrics import metrics
from plumbing.settings import Settings
from plumbing.topics import SAMPLES
from psg.codecs import ChunkBundle, DeviceEvent, chunks_in, decode_samples_message, encode_device_event
from psg.errors import MessageError, PSGError

log = logging.getLogger(__name__)


#: How long librdkafka waits to fill a produce batch. WHY a few ms and not more: the sender keeps one
#: record in flight per bed (order), so a bed's backlog after a broker outage drains at most one record
#: per linger + round trip; 10 ms still drains ~80 records/s per bed. The load generator, which stands in
#: for hundreds of beds and has no such ordering, batches longer (``LOADGEN_LINGER_MS``). Fewer, larger
#: batches are what the embedded Tansu broker needs: its fetch cost grows with the batches a partition
#: holds (benchmarks/RESULTS.md, issue 17).
LINGER_MS = 10
#: An epoch waits on its last chunk, so this is added to the live latency at most once (5 % of the 1-s target).
LOADGEN_LINGER_MS = 50


def producer_config(settings: Settings, linger_ms: int = LINGER_MS) -> dict[str, Any]:
    """librdkafka producer settings of the bridge (and, with a longer ``linger_ms``, the load generator)."""
    if not settings.kafka:
        raise PSGError("settings field 'kafka': the bridge needs a broker (set SLEEPLM_KAFKA; sleeplm up starts one)")
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka,
        "client.id": "sleeplm-bridge",
        "acks": "all",
        "enable.idempotence": False,  # a restarted embedded broker forgets producer ids
        "partitioner": "murmur2_random",  # the Java client's (and Faust's) key -> partition mapping
        "message.timeout.ms": 24 * 3600 * 1000,  # retry through an outage; the spool bounds memory
        "socket.timeout.ms": 10_000,
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 1_000,  # notice a returning broker within a second
        "retry.backoff.ms": 200,
        "linger.ms": linger_ms,
        "batch.size": 1_000_000,
        "message.max.bytes": 8 * 1024 * 1024,
        "logger": logging.getLogger("kafka.rdkafka"),  # silenced with kafka's logger by the CLI
    }
    if settings.one_record_per_batch:  # exact ListOffsets from Tansu (plumbing.settings); costs broker CPU
        config["batch.num.messages"] = 1
    return config


class _Delivery:
    """One record handed to librdkafka; its delivery callback (run inside ``poll``) settles it."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = False
        self.error: Any = None

    def __call__(self, error: Any, _message: Any) -> None:
        self.done, self.error = True, error


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
        self.delivered = 0  # records acknowledged by the broker
        self.delivered_chunks = 0  # sample chunks in them (a bundle carries several)
        self._in_flight = 0
        self._losses: dict[tuple[str, str, str], _Loss] = {}
        self._loss_lock = threading.Lock()
        self._closing = threading.Event()
        self._held = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bridge-sender", daemon=True)
        self._thread.start()

    def send(self, key: bytes, value: bytes) -> None:
        """Queue a record behind everything not yet delivered (never blocks on the broker)."""
        dropped = self.spool.append(key, value)
        if dropped:
            self._note_overflow(dropped)
        self._report_overflow()
        metrics().spooled_chunks.set(len(self.spool))

    def hold(self) -> None:
        """Stop handing records to the broker (records in flight still complete); ``send`` keeps spooling.

        For an operator moving the bridge to another broker, and for tests that need a quiet moment.
        """
        self._held.set()

    def release(self) -> None:
        self._held.clear()

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
        self._thread.join(timeout_s + 5.0)
        left = self.pending()
        self.spool.close()
        if left:
            log.warning(
                "bridge stopped with %d records undelivered; kept in %s for the next start", left, self.spool.directory
            )

    # --- sender thread ------------------------------------------------------------------------------
    #
    # Order matters per bed (key): each bed has at most one record in flight, always its oldest
    # unacknowledged one, so a record the broker refuses (a restarted broker answers produce requests
    # with an error until its topics exist again) is simply sent again before anything newer of that
    # bed, while other beds carry on. The spool is trimmed through the longest acknowledged prefix.

    def _run(self) -> None:
        producer = self._connect()
        ahead: deque[Record] = deque()  # read from the spool, not yet acknowledged, in spool order
        deliveries: dict[int, tuple[bytes, _Delivery]] = {}  # in flight: index -> (key, delivery)
        acked: set[int] = set()
        retry_at: dict[bytes, float] = {}  # key -> when its refused record may be sent again
        last_read: int | None = None
        while not self._closing.is_set():
            try:
                if not self._held.is_set() and len(ahead) < self.window:
                    more = self.spool.peek_after(last_read, self.window - len(ahead))
                    if more:
                        ahead.extend(more)
                        last_read = more[-1].index
                sent = 0 if self._held.is_set() else self._send_ready(producer, ahead, deliveries, acked, retry_at)
                producer.poll(0 if sent else 0.01)  # runs the delivery callbacks
                self._settle(ahead, deliveries, acked, retry_at)
                self._in_flight = len(deliveries)
            except Exception:  # the sender must outlive any surprise; records stay spooled
                log.exception("bridge producer failed; retrying in 1 s")
                self._closing.wait(1.0)
        producer.flush(5.0)  # what is acknowledged now leaves the spool; the rest stays for the next start
        self._settle(ahead, deliveries, acked, retry_at)

    def _connect(self) -> Any:
        from confluent_kafka import Producer

        return Producer(self.config)  # connects lazily, in its own threads: never blocks here

    def _send_ready(
        self,
        producer: Any,
        ahead: deque[Record],
        deliveries: dict[int, tuple[bytes, _Delivery]],
        acked: set[int],
        retry_at: dict[bytes, float],
    ) -> int:
        """Send the oldest unacknowledged record of every bed that has nothing in flight."""
        now = time.monotonic()
        blocked = {key for key, _ in deliveries.values()} | {k for k, t in retry_at.items() if t > now}
        sent = 0
        for record in ahead:
            if record.key in blocked or record.index in acked:
                continue
            blocked.add(record.key)
            delivery = _Delivery()
            try:
                producer.produce(self.topic, key=record.key, value=record.value, on_delivery=delivery)
            except BufferError:  # librdkafka's local queue is full: this record waits for the next round
                retry_at[record.key] = now + 0.1
                continue
            deliveries[record.index] = (record.key, delivery)
            sent += 1
        return sent

    def _settle(
        self,
        ahead: deque[Record],
        deliveries: dict[int, tuple[bytes, _Delivery]],
        acked: set[int],
        retry_at: dict[bytes, float],
    ) -> None:
        """Account for finished sends; trim the spool through the acknowledged prefix."""
        finished = [(index, key, delivery) for index, (key, delivery) in deliveries.items() if delivery.done]
        for index, key, delivery in finished:
            del deliveries[index]
            if delivery.error is None:
                acked.add(index)
                retry_at.pop(key, None)
                continue
            if key not in retry_at:
                log.warning("bridge producer: broker refused record %d (%s); sending it again", index, delivery.error)
            retry_at[key] = time.monotonic() + 0.5
        trimmed = None
        while ahead and ahead[0].index in acked:
            record = ahead.popleft()
            acked.discard(record.index)
            trimmed = record.index
            self.delivered += 1
            chunks = chunks_in(record.value)
            if chunks:
                self.delivered_chunks += chunks
                metrics().chunks_produced.inc(chunks)
        if trimmed is not None:
            self.spool.pop_through(trimmed)
            self._report_overflow()
            metrics().spooled_chunks.set(len(self.spool))

    # --- overflow -----------------------------------------------------------------------------------

    def _note_overflow(self, dropped: list[Record]) -> None:
        """Count dropped records and remember, per (bed, recording, stream), which chunks were lost."""
        metrics().spool_overflow.inc(len(dropped))
        with self._loss_lock:
            for record in dropped:
                try:
                    message = decode_samples_message(record.value)
                except MessageError:  # cannot happen for records the bridge built; counted all the same
                    continue
                for part in message.chunks if isinstance(message, ChunkBundle) else (message,):
                    self._note_loss(part)

    def _note_loss(self, message: Any) -> None:
        """Remember one dropped chunk or device event under its (bed, recording, stream); under the lock."""
        key = (message.bed_id, message.recording_id, message.stream)
        if key not in self._losses:
            log.error(
                "bed %s stream %s: bridge spool full (%g MB), dropping the oldest spooled data",
                message.bed_id,
                message.stream,
                self.settings.spool_disk_mb,
            )
        loss = self._losses.setdefault(key, _Loss())
        if isinstance(message, DeviceEvent):
            loss.events += 1
        else:
            loss.chunks += 1
            loss.first = message.seq if loss.first is None else min(loss.first, message.seq)
            loss.last = message.seq if loss.last is None else max(loss.last, message.seq)

    def _report_overflow(self) -> None:
        """Queue one ``spool_overflow`` event per stream that lost data, once the spool is half empty.

        While the spool is full every new record pushes old ones out, so the report waits (in memory) until
        the broker has drained half of the disk spool; it then lands behind the data that survived.
        """
        with self._loss_lock:
            if not self._losses or self.spool.disk_fill > 0.5:
                return
            losses, self._losses = self._losses, {}
        for (bed, recording, stream), loss in losses.items():
            detail = f"bridge spool full ({self.settings.spool_disk_mb:g} MB on disk): {loss.chunks} chunk(s)"
            if loss.chunks:
                detail += f", seq {loss.first}..{loss.last}"
            if loss.events:
                detail += f" and {loss.events} device event(s)"
            event = DeviceEvent(bed, recording, stream, "spool_overflow", time.time(), detail + " dropped")
            metrics().device_events.labels(type="spool_overflow").inc()
            dropped = self.spool.append(bed.encode(), encode_device_event(event))
            if dropped:  # only if the spool filled up again in between: report those next time
                self._note_overflow(dropped)


@dataclass
class _Loss:
    chunks: int = 0
    events: int = 0
    first: int | None = None
    last: int | None = None
