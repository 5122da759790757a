"""Topic names (DESIGN: Messages) and their creation with kafka-python's admin client.

Topics are created up front with the configured partition count: auto-created topics get whatever the
broker defaults to, and a keyed topic's partition count must not change under running consumers.
"""

from __future__ import annotations

import time

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

SAMPLES = "psg.samples"
EPOCHS = "psg.epochs"
CAPTIONS = "sleep.captions"
ALERTS = "sleep.alerts"
#: One JSON record per model-embedded epoch, keyed by bed: schema, bed_id, recording_id, epoch, start_time,
#: runtime, embedding (unit vector, 5 decimals); written by the inference agent with the caption record.
EMBEDDINGS = "sleep.embeddings"
DEADLETTER = "psg.deadletter"
ALL_TOPICS: tuple[str, ...] = (SAMPLES, EPOCHS, CAPTIONS, ALERTS, EMBEDDINGS, DEADLETTER)


def topic_configs(topic: str, samples_retention_hours: float | None) -> dict[str, str]:
    """Broker settings a new ``topic`` is created with: ``psg.samples`` keeps ``samples_retention_hours``.

    Why only the samples: they are ~24 MB per bed-hour and worth nothing once their epochs are stored (a
    stopped worker replays a few minutes per bed), while Kafka's default keeps them 7 days (~100 GB per night
    at 500 beds). The other topics are small and their records are the night's results. The embedded broker's
    memory engine accepts the setting and ignores it (it keeps every record: docs/operations.md).
    """
    if topic != SAMPLES or samples_retention_hours is None:
        return {}
    return {"retention.ms": str(round(samples_retention_hours * 3_600_000))}


def ensure_topics(
    bootstrap: str,
    partitions: int,
    topics: tuple[str, ...] = ALL_TOPICS,
    timeout_s: float = 30.0,
    samples_retention_hours: float | None = None,
) -> list[str]:
    """Create the missing ``topics`` with ``partitions`` partitions (and ``topic_configs``); returns the names
    it created.

    Retries while the broker is still starting (up to ``timeout_s``); existing topics are left as they
    are (their partition count and retention are the operator's decision).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="sleeplm-admin")
            break
        except (KafkaError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topics if t not in existing]
        created = []
        for topic in missing:
            try:
                configs = topic_configs(topic, samples_retention_hours)
                admin.create_topics(
                    [NewTopic(name=topic, num_partitions=partitions, replication_factor=1, topic_configs=configs)]
                )
                created.append(topic)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()
