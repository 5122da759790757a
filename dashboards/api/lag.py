"""Consumer lag of the app's Kafka consumer groups, for ``/metrics``.

Lag = end offset - committed offset, summed per (consumer group, topic) over partitions, for every
group whose id starts with the app id (the Faust worker's group and any sibling). Measured with
kafka-python's admin client and a group-less consumer, on demand when Prometheus scrapes, at most
every ``ttl_s``, with short timeouts: a broker that is down costs a scrape a couple of seconds and
a log line, never an error (the gauges then keep their last values).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer

from plumbing.metrics import metrics

log = logging.getLogger(__name__)


class ConsumerLag:
    """Measures and publishes ``sleeplm_consumer_lag{group, topic}``; thread-safe, cached ``ttl_s``."""

    def __init__(self, bootstrap: str, group_prefix: str, ttl_s: float = 5.0, timeout_ms: int = 2000) -> None:
        self.bootstrap = bootstrap
        self.group_prefix = group_prefix
        self.ttl_s = ttl_s
        self.timeout_ms = timeout_ms
        self._lock = threading.Lock()
        self._measured_at = -float("inf")
        self._last: dict[tuple[str, str], int] = {}
        self._admin: Any = None
        self._consumer: Any = None

    def refresh(self) -> dict[tuple[str, str], int]:
        """Lag per (group, topic), measured now unless measured within ``ttl_s``; last values if Kafka fails."""
        with self._lock:
            if time.monotonic() - self._measured_at < self.ttl_s:
                return self._last
            self._measured_at = time.monotonic()
            try:
                lag = self._measure()
            except Exception as exc:  # the endpoint must not fail: Kafka down, timeouts, unsupported APIs
                log.warning("consumer lag from %s not available: %s", self.bootstrap, exc)
                self._close_clients()
                return self._last
            gauge = metrics().consumer_lag
            for (group, topic), value in lag.items():
                gauge.labels(group=group, topic=topic).set(value)
            self._last = lag
            return lag

    def _measure(self) -> dict[tuple[str, str], int]:
        if self._admin is None:
            self._admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                client_id="sleeplm-api-lag",
                request_timeout_ms=self.timeout_ms,
                bootstrap_timeout_ms=self.timeout_ms,
            )
        groups = sorted(g["group_id"] for g in self._admin.list_groups() if g["group_id"].startswith(self.group_prefix))
        committed = {}
        for group in groups:  # one by one: brokers before OffsetFetch v8 take one group per request
            committed.update(self._admin.list_group_offsets({group: None}))
        partitions = sorted({tp for offsets in committed.values() for tp in offsets})
        if not partitions:
            return {}
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                client_id="sleeplm-api-lag",
                group_id=None,
                enable_auto_commit=False,
                request_timeout_ms=self.timeout_ms,
                bootstrap_timeout_ms=self.timeout_ms,
            )
        ends = self._consumer.end_offsets(partitions, timeout_ms=self.timeout_ms)
        lag: dict[tuple[str, str], int] = defaultdict(int)
        for group, offsets in committed.items():
            for tp, position in offsets.items():
                if position.offset >= 0 and tp in ends:
                    lag[(group, tp.topic)] += max(0, ends[tp] - position.offset)
        return dict(lag)

    def _close_clients(self) -> None:
        for client in (self._admin, self._consumer):
            if client is not None:
                try:
                    client.close()
                except Exception as exc:  # closing a broken client must not mask why it broke
                    log.debug("closing a Kafka client: %s", exc)
        self._admin = self._consumer = None

    def close(self) -> None:
        with self._lock:
            self._close_clients()
