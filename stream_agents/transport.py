"""Faust's aiokafka transport with a short fetch wait, registered as the ``sleeplm://`` broker scheme.

WHY: Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` fixed. A broker answers a fetch
as soon as data is there, but one that holds an idle long-poll for the whole wait (the embedded Tansu
broker does) adds up to 1.5 s per consumer hop when a topic is quiet, and the live path has three hops
(samples -> epochs -> captions -> store): most of the ~2 s end-to-end latency of a lightly loaded
``sleeplm up``. ``FETCH_MAX_WAIT_MS`` caps that wait; the price is a few more fetch requests per second
per consumer when nothing arrives, nothing under load. Everything else is Faust's own transport.

The scheme is registered through Faust's documented extension point, the ``faust.transports`` entry
point (``pyproject.toml``): ``broker="sleeplm://host:port"``.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

#: Longest a consumer's fetch waits for data on a quiet partition.
FETCH_MAX_WAIT_MS = 100


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread; only the worker consumer's fetch wait differs."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka keeps the constructor argument here and hands it to its Fetcher on start()
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """``sleeplm://`` = Faust's ``kafka://`` with ``FETCH_MAX_WAIT_MS``."""

    Consumer = Consumer
