"""``/metrics``: the live path's families (latency histogram among them) and consumer lag from a real broker."""

from __future__ import annotations

import re
import time

import httpx
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from plumbing.broker import start_broker
from plumbing.metrics import metrics
from plumbing.topics import CAPTIONS, ensure_topics


def _value(text: str, sample: str) -> float | None:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def test_metrics_expose_the_latency_histogram(client: httpx.Client) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert "# TYPE sleeplm_epoch_latency_seconds histogram" in response.text
    assert 'sleeplm_epoch_latency_seconds_bucket{le="1.0"}' in response.text
    before = _value(response.text, "sleeplm_epoch_latency_seconds_count")
    metrics().latency.observe(1.25)  # what the sink does for every newly stored epoch
    after = _value(client.get("/metrics").text, "sleeplm_epoch_latency_seconds_count")
    assert after == before + 1
    for family in ("sleeplm_samples_in", "sleeplm_epochs_out", "sleeplm_dead_letters", "sleeplm_inference_batch_size"):
        assert f"# TYPE {family}" in response.text


def _commit(bootstrap: str, group: str, partition: TopicPartition, offset: int) -> None:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        consumer.assign([partition])
        consumer.commit({partition: OffsetAndMetadata(offset, "", -1)})
    finally:
        consumer.close()


def test_consumer_lag_of_the_app_groups_and_a_hung_broker(serve) -> None:
    broker = start_broker()
    try:
        ensure_topics(broker.bootstrap, 2, (CAPTIONS,))
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, batch_size=1, linger_ms=0)
        for i in range(10):
            producer.send(CAPTIONS, key=b"bed-1", value=b"%d" % i, partition=0)
        producer.flush()
        producer.close()
        partition = TopicPartition(CAPTIONS, 0)
        _commit(broker.bootstrap, "lagtest", partition, 4)
        _commit(broker.bootstrap, "lagtest-sink", partition, 9)
        _commit(broker.bootstrap, "someone-else", partition, 0)

        api = serve(kafka=broker.bootstrap, app_id="lagtest")
        with api.client(timeout=20.0) as client:
            text = client.get("/metrics").text
            assert _value(text, f'sleeplm_consumer_lag{{group="lagtest",topic="{CAPTIONS}"}}') == 6.0
            assert _value(text, f'sleeplm_consumer_lag{{group="lagtest-sink",topic="{CAPTIONS}"}}') == 1.0
            assert 'group="someone-else"' not in text

            broker.pause()  # a hung broker: the worst case for a scrape (requests time out, nothing refuses)
            api.server.app.state.lag.ttl_s = 0.0  # measure again now rather than in 5 s
            started = time.monotonic()
            response = client.get("/metrics")
            took = time.monotonic() - started
            assert response.status_code == 200 and "sleeplm_epoch_latency_seconds" in response.text
            assert took < 6.0, f"a scrape took {took:.1f} s while the broker hung"
            broker.resume()
    finally:
        broker.stop()
