"""Topic creation: every live-path topic up front, and a bounded retention on the samples topic.

The embedded broker (Tansu, memory engine) accepts ``retention.ms`` and ignores it, so what is checked on it is
that the topics are created with the setting in the request; Apache Kafka (docker-compose.yml) applies it.
"""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient
from pydantic import ValidationError

from plumbing.broker import start_broker
from plumbing.settings import Settings
from plumbing.topics import ALL_TOPICS, SAMPLES, ensure_topics, topic_configs


def test_only_the_samples_topic_gets_a_retention() -> None:
    assert topic_configs(SAMPLES, 6.0) == {"retention.ms": "21600000"}
    assert topic_configs(SAMPLES, 0.5) == {"retention.ms": "1800000"}
    assert topic_configs(SAMPLES, None) == {}
    assert all(topic_configs(topic, 6.0) == {} for topic in ALL_TOPICS if topic != SAMPLES)


def test_the_retention_is_a_setting_with_a_sane_range(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().samples_retention_hours == 6.0
    monkeypatch.setenv("SLEEPLM_SAMPLES_RETENTION_HOURS", "2.5")
    assert Settings().samples_retention_hours == 2.5
    monkeypatch.setenv("SLEEPLM_SAMPLES_RETENTION_HOURS", "0")
    with pytest.raises(ValidationError, match="samples_retention_hours"):
        Settings()


def test_topics_are_created_once_with_their_partitions_on_a_real_broker() -> None:
    broker = start_broker()
    try:
        created = ensure_topics(broker.bootstrap, 3, samples_retention_hours=4.0)
        assert sorted(created) == sorted(ALL_TOPICS)
        assert ensure_topics(broker.bootstrap, 3, samples_retention_hours=4.0) == []  # existing ones are kept
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(list(ALL_TOPICS))}
        finally:
            admin.close()
        assert described == dict.fromkeys(ALL_TOPICS, 3)
    finally:
        broker.stop()
