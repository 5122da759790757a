"""Prometheus metrics of the live path, one definition for every process.

The bridge, the worker and the API are separate processes. On one machine (``sleeplm up``) they share
``PROMETHEUS_MULTIPROC_DIR`` (``Settings.metrics_dir``) and the API's ``/metrics`` aggregates all of
them (prometheus-client multiprocess mode); in a scaled-out deployment each process serves its own
``/metrics`` (``serve_metrics``) and Prometheus scrapes them all. ``enable_multiprocess`` must run
before ``prometheus_client`` is first imported in a process, which is why the metric objects are built
lazily by ``metrics()``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

#: Latency buckets (s) from epoch end to stored caption: sub-second to a few minutes.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def enable_multiprocess(directory: Path, fresh: bool = False) -> None:
    """Point prometheus-client at a shared directory (call before anything imports prometheus_client).

    ``fresh`` empties it first: the launcher does so once per ``sleeplm up`` so counters start at zero.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if fresh:
        for stale in directory.glob("*.db"):
            stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


@dataclass(frozen=True)
class Metrics:
    samples_in: Any  # Counter: samples received from devices, by stream
    chunks_produced: Any  # Counter: sample chunks produced to psg.samples
    spool_overflow: Any  # Counter: chunks dropped because the bounded spool was full (never silent)
    spooled_chunks: Any  # Gauge: chunks waiting in the bridge spool
    device_events: Any  # Counter: stream lost/resumed, by type
    epochs_out: Any  # Counter: epochs emitted by the epocher
    captions_out: Any  # Counter: caption records produced by the inference agent
    caption_contradictions: Any  # Counter: caption sentences that contradict their own record (should stay 0)
    epochs_stored: Any  # Counter: epochs newly stored (duplicates excluded)
    duplicates_ignored: Any  # Counter: replayed epochs the store already had
    dead_letters: Any  # Counter: messages sent to psg.deadletter, by source topic
    consumer_lag: Any  # Gauge: records behind the end of a topic, by consumer group and topic
    latency: Any  # Histogram: epoch end (bridge arrival of its last sample) -> caption stored, seconds
    batch_size: Any  # Histogram: epochs per inference batch
    inference_seconds: Any  # Histogram: runtime time per batch
    alerts: Any  # Counter: alert transitions, by priority and transition (raised, acknowledged, ...)
    active_alerts: Any  # Gauge: active alerts held by the alert monitors (summed over live workers)
    beds: Any  # Gauge: beds by status (live, stale), from the store at each scrape of the API
    store_retries: Any  # Counter: store calls retried because the database was unavailable or locked


@cache
def metrics() -> Metrics:
    """The process's metric objects (created on first use, after ``enable_multiprocess`` if any)."""
    from prometheus_client import Counter, Gauge, Histogram

    return Metrics(
        samples_in=Counter("sleeplm_samples_in", "Samples received from devices", ["stream"]),
        chunks_produced=Counter("sleeplm_chunks_produced", "Sample chunks produced to psg.samples"),
        spool_overflow=Counter("sleeplm_spool_overflow", "Chunks dropped because the bridge spool was full"),
        spooled_chunks=Gauge(
            "sleeplm_spooled_chunks", "Chunks waiting in the bridge spool", multiprocess_mode="livesum"
        ),
        device_events=Counter("sleeplm_device_events", "Device stream events", ["type"]),
        epochs_out=Counter("sleeplm_epochs_out", "Epochs emitted by the epocher"),
        captions_out=Counter("sleeplm_captions_out", "Caption records produced by the inference agent"),
        caption_contradictions=Counter(
            "sleeplm_caption_contradictions", "Caption claims contradicting their epoch record"
        ),
        epochs_stored=Counter("sleeplm_epochs_stored", "Epochs newly stored"),
        duplicates_ignored=Counter("sleeplm_duplicate_epochs_ignored", "Replayed epochs already in the store"),
        dead_letters=Counter("sleeplm_dead_letters", "Messages sent to psg.deadletter", ["source_topic"]),
        consumer_lag=Gauge(
            "sleeplm_consumer_lag",
            "Records behind the end of a topic",
            ["group", "topic"],
            multiprocess_mode="mostrecent",
        ),
        latency=Histogram("sleeplm_epoch_latency_seconds", "Epoch end to caption stored", buckets=LATENCY_BUCKETS),
        batch_size=Histogram("sleeplm_inference_batch_size", "Epochs per inference batch", buckets=BATCH_BUCKETS),
        inference_seconds=Histogram("sleeplm_inference_seconds", "Runtime seconds per inference batch"),
        alerts=Counter("sleeplm_alerts", "Alert transitions", ["priority", "transition"]),
        active_alerts=Gauge("sleeplm_active_alerts", "Active alerts held by the workers", multiprocess_mode="livesum"),
        beds=Gauge("sleeplm_beds", "Beds by status", ["status"], multiprocess_mode="mostrecent"),
        store_retries=Counter("sleeplm_store_retries", "Store calls retried while the database was unavailable"),
    )


def render_latest() -> tuple[bytes, str]:
    """The exposition text of this process, or of all processes sharing the multiprocess directory."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Serve this process's metrics on ``host:port`` (scaled-out deployments: one scrape target each)."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host)
