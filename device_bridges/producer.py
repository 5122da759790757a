"""Delivery to Kafka through the spool: in order, acknowledged, surviving broker outages.

Every record goes into the ``Spool`` first and leaves it only when the broker has acknowledged it
(``acks="all"``). A sender thread feeds the spooled records to a kafka-python producer with unlimited
retries, one record in flight per bed (key), so each bed's records reach the broker strictly in spool
order even when the broker refuses some for a while (a restarted broker does until its topics exist
again) or disappears and comes back on the same address. Meanwhile new records pile up behind them in
the spool (memory, then disk), so nothing overtakes anything. ``send`` never blocks on the broker.

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
from psg.codecs import MAGIC_SAMPLES, DeviceEvent, MessageError, decode_samples_message, encode_device_event
from psg.errors import PSGError
from services.metrics import metrics
from services.settings import Settings
from services.topics import SAMPLES

log = logging.getLogger(__name__)


def producer_config(settings: Settings) -> dict[str, Any]:
    """kafka-python producer settings of the bridge (Tansu needs one record per produce batch)."""
    if not settings.kafka:
        raise PSGError("settings field 'kafka': the bridge needs a broker (set SLEEPLM_KAFKA; sleeplm up starts one)")
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
        self._losses: dict[tuple[str, str, str], _Loss] = {}
        self._loss_lock = threading.Lock()
        self._wake = threading.Condition()
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
    #
    # Order matters per bed (key): each bed has at most one record in flight, always its oldest
    # unacknowledged one, so a record the broker refuses (a restarted broker answers produce requests
    # with an error until its topics exist again) is simply sent again before anything newer of that
    # bed, while other beds carry on. The spool is trimmed through the longest acknowledged prefix.

    def _run(self) -> None:
        producer: Any = None
        ahead: deque[Record] = deque()  # read from the spool, not yet acknowledged, in spool order
        futures: dict[int, tuple[bytes, Any]] = {}  # in flight: index -> (key, future)
        acked: set[int] = set()
        retry_at: dict[bytes, float] = {}  # key -> when its refused record may be sent again
        last_read: int | None = None
        while not self._closing.is_set():
            try:
                if producer is None:
                    producer = self._connect()
                    if producer is None:
                        continue
                if not self._held.is_set() and len(ahead) < self.window:
                    more = self.spool.peek_after(last_read, self.window - len(ahead))
                    if more:
                        ahead.extend(more)
                        last_read = more[-1].index
                sent = 0 if self._held.is_set() else self._send_ready(producer, ahead, futures, acked, retry_at)
                settled = self._settle(ahead, futures, acked, retry_at)
                self._in_flight = len(futures)
                if not sent and not settled:
                    with self._wake:
                        self._wake.wait(0.01)
            except Exception:  # the sender must outlive any surprise; records stay spooled
                log.exception("bridge producer failed; retrying in 1 s")
                self._closing.wait(1.0)
        if producer is not None:
            self._shutdown(producer, ahead, futures, acked, retry_at)

    def _connect(self) -> Any:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        try:
            return KafkaProducer(**self.config)
        except KafkaError as exc:
            log.warning("bridge producer: broker %s unavailable (%s); spooling and retrying", self.settings.kafka, exc)
            self._closing.wait(1.0)
            return None

    def _send_ready(
        self, producer: Any, ahead: deque[Record], futures: dict[int, tuple[bytes, Any]], acked: set[int],
        retry_at: dict[bytes, float],
    ) -> int:
        """Send the oldest unacknowledged record of every bed that has nothing in flight."""
        from kafka.errors import KafkaTimeoutError

        now = time.monotonic()
        blocked = {key for key, _ in futures.values()} | {k for k, t in retry_at.items() if t > now}
        sent = 0
        for record in ahead:
            if record.key in blocked or record.index in acked:
                continue
            blocked.add(record.key)
            try:
                futures[record.index] = (record.key, producer.send(self.topic, key=record.key, value=record.value))
            except KafkaTimeoutError:  # no metadata (broker away): the record waits for the next round
                retry_at[record.key] = now + 0.5
                continue
            sent += 1
        return sent

    def _settle(
        self, ahead: deque[Record], futures: dict[int, tuple[bytes, Any]], acked: set[int],
        retry_at: dict[bytes, float],
    ) -> int:
        """Account for finished sends; trim the spool through the acknowledged prefix. Returns how many."""
        finished = [(index, key, future) for index, (key, future) in futures.items() if future.is_done]
        for index, key, future in finished:
            del futures[index]
            if future.succeeded():
                acked.add(index)
                retry_at.pop(key, None)
                continue
            if key not in retry_at:
                log.warning("bridge producer: broker refused record %d (%s); sending it again", index, future.exception)
            retry_at[key] = time.monotonic() + 0.5
        trimmed = None
        while ahead and ahead[0].index in acked:
            record = ahead.popleft()
            acked.discard(record.index)
            trimmed = record.index
            self.delivered += 1
            if record.value[:4] == MAGIC_SAMPLES:
                metrics().chunks_produced.inc()
        if trimmed is not None:
            self.spool.pop_through(trimmed)
            self._report_overflow()
            metrics().spooled_chunks.set(len(self.spool))
        return len(finished)

    def _shutdown(
        self, producer: Any, ahead: deque[Record], futures: dict[int, tuple[bytes, Any]], acked: set[int],
        retry_at: dict[bytes, float],
    ) -> None:
        from kafka.errors import KafkaError

        try:
            producer.flush(timeout=5)
        except KafkaError:
            pass
        self._settle(ahead, futures, acked, retry_at)
        try:
            producer.close(timeout=1)
        except KafkaError:  # records still unacknowledged: stop the client anyway, they stay spooled
            sender = getattr(producer, "_sender", None)
            if sender is not None:
                sender.force_close()

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
                key = (message.bed_id, message.recording_id, message.stream)
                if key not in self._losses:
                    log.error("bed %s stream %s: bridge spool full (%g MB), dropping the oldest spooled data",
                              message.bed_id, message.stream, self.settings.spool_disk_mb)
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
