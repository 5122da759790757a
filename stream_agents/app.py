"""The Faust app of the live path: epocher, inference and sink agents wired to the topics.

Delivery guarantee: at least once through the pipeline, exactly once in the store.

* Every agent acks a message only after everything it caused is delivered: the epocher acks a sample
  chunk when the ``Epocher`` releases it (its epochs emitted *and* no longer needed as detector context
  or for the running normaliser, so a replay rebuilds bit-identical epochs),
  the inference agent acks epochs after their caption records (and, with the model runtime, their
  ``sleep.embeddings`` records) are delivered, the sink acks after its
  transaction commits. Faust commits the highest contiguous acked offset, so a worker killed at any
  point restarts from the oldest message whose work was not finished and rebuilds the same state.
* Replays therefore re-emit some epochs; the store inserts keyed (bed, recording, epoch) and ignores
  what it already has, so nothing is stored twice and nothing stored is ever rewritten.
* A message that fails to decode or validate is sent to ``psg.deadletter`` with the reason, counted,
  acked, and the stream goes on.
* Alerts: the alert agent reads ``sleep.captions`` beside the sink (a caption is acked when both are
  done) and runs ``psg.alerts.AlertMonitor``; every transition is stored, then published on
  ``sleep.alerts``. The alert-sink turns the epocher's device events into technical alerts. A timer
  syncs what the API wrote (acknowledgements, watch rules, per-bed thresholds) into the monitor.

The agents only call plain, broker-free code: ``Epocher`` (psg.epoching.epocher), the runtime
interface (model_runtime.serving.runtimes) and ``Store`` (store). CPU-heavy calls run in a worker thread so the
consumer keeps heartbeating while a large batch is analysed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Concatenate, ParamSpec, TypeVar

import faust
from faust.types import TP, EventT
from sqlalchemy.exc import InterfaceError, OperationalError

from model_runtime.model.shipped import SHIPPED_CHECKPOINT
from model_runtime.serving.caption_records import inference_records
from model_runtime.serving.runtimes import chosen_runtime, load_runtime
from model_runtime.serving.watch_scoring import rule_scorer_for
from plumbing import topics
from plumbing.metrics import metrics
from plumbing.settings import Settings
from psg.alerts.monitor import AlertMonitor, ControlSnapshot
from psg.captions.consistency import count_contradictions
from psg.codecs import ChunkBundle, DeviceEvent, EpochMessage, decode_epoch, decode_samples_message, encode_epoch
from psg.contracts import CAPTION_REQUIRED
from psg.epoching.analysis import EpochWindow, analyse
from psg.epoching.epocher import Epocher
from psg.errors import MessageError
from psg.json_codec import decode_json, encode_json
from psg.model_input import SERVING_WINDOW_EPOCHS
from store import Store
from store.records import alert_event_row, device_event_row
from store.store import caption_values

log = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")

#: Fields a caption record must have for the sink to store it.
DEAD_LETTER_PAYLOAD_BYTES = 4096
#: Backoff of store writes while the database is unavailable: 0.25 s doubling to 5 s, for as long as it takes.
STORE_RETRY_FIRST_S = 0.25
STORE_RETRY_MAX_S = 5.0
NORMALISER_EPOCHS = SERVING_WINDOW_EPOCHS
#: Longest the sink waits to fill a store transaction: Faust's take is periodic, so a caption waits half
#: of it on average (0.2 s cost 0.1 s of p50 latency at 500 beds; one SQLite commit per 0.1 s is cheap).
SINK_WITHIN_S = 0.1
#: Faust producers' linger and batch bound (the samples hop's is device_bridges.producer.LINGER_MS).
PRODUCER_LINGER_S = 0.005
PRODUCER_MAX_BATCH_BYTES = 512 * 1024


def create_app(settings: Settings, runtime_name: str | None = None) -> faust.App:
    """A Faust app for ``settings`` with the epocher, inference, sink and device-event agents.

    ``runtime_name`` defaults to ``chosen_runtime``: SLEEPLM_RUNTIME, else the model when its checkpoint
    exists, else the rules; the model's checkpoint is checked here so that a worker with a
    wrong path fails at start, naming it, instead of inside the inference agent.
    """
    if not settings.kafka:
        raise ValueError("settings.kafka is not set: name the Kafka bootstrap servers (SLEEPLM_KAFKA)")
    runtime_name = runtime_name or chosen_runtime(settings.runtime, settings.checkpoint)
    if runtime_name == "sleeplm":
        checkpoint = settings.checkpoint or SHIPPED_CHECKPOINT
        if not checkpoint.is_file():
            raise ValueError(
                f"runtime 'sleeplm' needs a model checkpoint, and {checkpoint} is not a file: set SLEEPLM_CHECKPOINT, "
                "or SLEEPLM_RUNTIME=rules to run on measured features only"
            )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        # sleeplm:// = Faust's kafka transport with a 100-ms fetch wait (stream_agents.transport)
        broker=",".join(f"sleeplm://{server.strip()}" for server in settings.kafka.split(",")),
        store="memory://",
        datadir=str(settings.data_dir / "faust"),
        autodiscover=False,
        web_enabled=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(0.5, settings.session_timeout_s / 5),
        broker_rebalance_timeout=max(settings.session_timeout_s, 10.0),
        stream_wait_empty=False,
        # Batches of what each agent sends within 5 ms: an epoch waits on every hop's linger, so only a few
        # ms; fewer, larger batches are what the embedded broker needs (its fetch cost grows with batches held)
        producer_linger=PRODUCER_LINGER_S,
        producer_max_batch_size=16 if settings.one_record_per_batch else PRODUCER_MAX_BATCH_BYTES,
        producer_acks=-1,
    )
    _LivePipeline(app, settings, runtime_name).register()
    return app


class _LivePipeline:
    """The agents of one app, sharing the topics and the dead-letter path."""

    def __init__(self, app: faust.App, settings: Settings, runtime_name: str) -> None:
        self.app = app
        self.settings = settings
        self.runtime_name = runtime_name
        self.metrics = metrics()

        def raw(name: str) -> faust.TopicT:
            return app.topic(
                name,
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=settings.partitions,
            )

        self.samples = raw(topics.SAMPLES)
        self.epochs = raw(topics.EPOCHS)
        self.captions = raw(topics.CAPTIONS)
        self.embeddings = raw(topics.EMBEDDINGS)
        self.alerts = raw(topics.ALERTS)
        self.deadletter = raw(topics.DEADLETTER)
        # A 6-epoch (3-min) normaliser window: a restarted worker replays at most ~3 min per bed.
        # The agent places chunks on the event loop and analyses completed epochs in a thread (the
        # epocher hands out windows, ``analyse=None``). WHY: ``add`` runs for every chunk and almost
        # always only places samples, which costs less than a thread-pool hop; analysing inside it would
        # mean either that hop for every chunk or ~20-ms analyses blocking the event loop.
        self.epocher = Epocher(norm_epochs=NORMALISER_EPOCHS, analyse=None)
        self.bed_partitions: dict[str, TP] = {}
        self.caption_partitions: dict[str, TP] = {}
        self.monitor = AlertMonitor()
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.settings.database_url)
        return self._store

    def register(self) -> None:
        app = self.app
        app.agent(self.samples, name="epocher")(self.epocher_agent)
        app.agent(self.epochs, name="inference")(self.inference_agent)
        app.agent(self.captions, name="sink")(self.sink_agent)
        app.agent(self.captions, name="alerts")(self.alert_agent)
        app.agent(self.alerts, name="alert-sink")(self.alert_sink_agent)
        app.timer(self.settings.alert_sync_s, name="alert-sync")(self.sync_alerts)
        # faust's stub types a signal handler as (sender, *args, signal=..., **kwargs); ours names `revoked`
        app.on_partitions_revoked.connect(self.on_partitions_revoked)  # type: ignore[arg-type]

    async def on_partitions_revoked(self, sender: Any, revoked: set[TP], **_: Any) -> None:
        """Forget the beds of revoked partitions: their new owner replays from the committed offset (the
        epocher) and takes the bed's active alerts over from the store (the alert monitor)."""
        lost = [bed for bed, tp in self.bed_partitions.items() if tp in revoked]
        self.epocher.drop_beds(lost)
        for bed in lost:
            del self.bed_partitions[bed]
        moved = [bed for bed, tp in self.caption_partitions.items() if tp in revoked]
        self.monitor.forget_beds(moved)
        for bed in moved:
            del self.caption_partitions[bed]

    # --- agents -----------------------------------------------------------------------------------

    async def epocher_agent(self, stream: faust.StreamT) -> None:
        """psg.samples -> 30-s epochs on psg.epochs (+ technical device events on sleep.alerts)."""
        stream = stream.noack()  # type: ignore[attr-defined]  # faust's StreamT stub lacks noack
        loop = asyncio.get_running_loop()
        acker = _AckAfterDelivery(stream)
        async for event in stream.events():
            try:
                message = decode_samples_message(event.value)
            except MessageError as exc:
                await self.dead_letter(event, str(exc))
                await stream.ack(event)
                continue
            self.bed_partitions[message.bed_id] = event.message.tp
            try:
                if isinstance(message, DeviceEvent):
                    output = self.epocher.device_event(message, event)
                elif isinstance(message, ChunkBundle):
                    output = self.epocher.add_bundle(message, event)
                else:
                    output = self.epocher.add(message, event)
            except MessageError as exc:  # valid alone, inconsistent with its stream (rate, labels, times)
                await self.dead_letter(event, str(exc))
                await stream.ack(event)
                continue
            for chunk, refusal in output.refused:  # a bundle's bad chunk, or a jump held back and now refused
                await self.dead_letter(event, f"chunk of stream {chunk.stream!r} seq {chunk.seq}: {refusal}")
            if output.windows:
                # ~1 record in 30 completes an epoch: only then a thread hop (the analysis takes ~20 ms);
                # in order, before the next record, so each bed's running normaliser sees its epochs in turn
                output.epochs = await loop.run_in_executor(None, _analyse_windows, output.windows)
            pending = [
                await self.epochs.send(key=epoch.bed_id.encode(), value=encode_epoch(epoch)) for epoch in output.epochs
            ]
            pending += [
                await self.alerts.send(key=device.bed_id.encode(), value=encode_json(_technical_alert(device)))
                for device in output.device_events
            ]
            if output.epochs:  # ~1 record in 30: the counter's multiprocess value costs more than a skip
                self.metrics.epochs_out.inc(len(output.epochs))
            if pending or output.released:
                await acker.ack_when_delivered(pending, output.released)

    async def inference_agent(self, stream: faust.StreamT) -> None:
        """psg.epochs -> batched runtime -> caption records on sleep.captions (+ embeddings on sleep.embeddings)."""
        loop = asyncio.get_running_loop()
        # Loading a model takes seconds: in a thread, so the consumer keeps heartbeating meanwhile.
        runtime = await loop.run_in_executor(
            None, lambda: load_runtime(self.runtime_name, **self.settings.runtime_options)
        )
        checkpoint = self.settings.checkpoint or SHIPPED_CHECKPOINT
        self.monitor.watch.scorer = await loop.run_in_executor(None, rule_scorer_for, runtime, checkpoint)
        acker = _AckAfterDelivery(stream)
        # faust's StreamT stub lacks noack_take
        batches = stream.noack_take(  # type: ignore[attr-defined]
            self.settings.batch_max, within=self.settings.batch_within_s
        )
        async for batch in batches:
            messages = await self.decoded(batch, decode_epoch)
            pending: list[Any] = []
            if messages:
                await self.resume_histories(runtime, messages)
                started = time.perf_counter()
                records = await loop.run_in_executor(
                    None, inference_records, runtime, messages, self.settings.waveform_hz
                )
                self.metrics.inference_seconds.observe(time.perf_counter() - started)
                self.metrics.batch_size.observe(len(messages))
                pending += [
                    await self.captions.send(key=record["bed_id"].encode(), value=encode_json(record))
                    for record in records.captions
                ]
                pending += [
                    await self.embeddings.send(key=record["bed_id"].encode(), value=encode_json(record))
                    for record in records.embeddings
                ]
                self.metrics.captions_out.inc(len(records.captions))
                self.metrics.caption_contradictions.inc(count_contradictions(records.captions, log))
            await acker.ack_when_delivered(pending, batch)

    async def sink_agent(self, stream: faust.StreamT) -> None:
        """sleep.captions -> the store, insert-or-ignore keyed (bed, recording, epoch)."""
        # faust's StreamT stub lacks noack_take
        async for batch in stream.noack_take(256, within=SINK_WITHIN_S):  # type: ignore[attr-defined]
            records = await self.decoded(batch, _caption_record)
            if records:
                inserted = await self.stored(Store.insert_epochs, records)
                self.metrics.epochs_stored.inc(len(inserted))
                self.metrics.duplicates_ignored.inc(len(records) - len(inserted))
                for row in inserted:
                    if row.get("latency_s") is not None:
                        self.metrics.latency.observe(max(0.0, float(row["latency_s"])))
            await _ack_all(stream, batch)

    async def alert_agent(self, stream: faust.StreamT) -> None:
        """sleep.captions -> alert engine + watch rules -> transitions stored and published on sleep.alerts.

        Bad caption records are skipped here; the sink, which reads the same topic, dead-letters them."""
        # faust's StreamT stub lacks noack_take
        async for batch in stream.noack_take(256, within=0.2):  # type: ignore[attr-defined]
            records = []
            for event in batch:
                try:
                    records.append(_caption_record(event.value))
                    self.caption_partitions[records[-1]["bed_id"]] = event.message.tp
                except MessageError:
                    continue
            await self.restore_beds({r["bed_id"] for r in records})
            out: list[dict[str, Any]] = []
            for record in records:
                try:
                    out += self.monitor.caption(record)
                except MessageError as exc:
                    log.warning("alerts skip epoch %s/%s: %s", record["bed_id"], record["epoch"], exc)
            await self.publish_alerts(out)
            await _ack_all(stream, batch)

    async def alert_sink_agent(self, stream: faust.StreamT) -> None:
        """sleep.alerts: technical device events -> the store and the alert monitor (a lost stream is a
        technical alert); alert transitions were stored by their producer and are not read back."""
        # faust's StreamT stub lacks noack_take
        async for batch in stream.noack_take(64, within=0.2):  # type: ignore[attr-defined]
            events = [record for record in await self.decoded(batch, _alert_record) if record["kind"] == "technical"]
            if events:
                await self.stored(Store.insert_device_events, events)
                await self.restore_beds({e["bed_id"] for e in events})
                out: list[dict[str, Any]] = []
                for record in events:
                    out += self.monitor.device(record)
                await self.publish_alerts(out)
            await _ack_all(stream, batch)

    async def sync_alerts(self) -> None:
        """Timer: read thresholds, enabled watch rules and the stored state of our active alerts, apply
        them, store and publish what that caused, and write new rules' calibration back."""
        loop = asyncio.get_running_loop()
        try:
            snapshot = await loop.run_in_executor(None, self._control_snapshot)
        except Exception as exc:  # the store briefly unavailable: keep the last state, try again next tick
            log.warning("alert sync: store unavailable (%s)", exc)
            return
        watch = self.monitor.watch
        compiled = await loop.run_in_executor(None, watch.compile_all, watch.pending(snapshot.rules))
        out, installed = self.monitor.apply(snapshot, compiled)
        await self.publish_alerts(out + self.monitor.escalate_overdue())
        if installed:
            calibrations = {rule.id: rule.calibration for rule in installed}
            await self.stored(Store.set_rule_calibrations, calibrations)

    def _control_snapshot(self) -> ControlSnapshot:
        store = self.store
        rules: list[Mapping[str, Any]] = list(store.rules(enabled_only=True))
        return ControlSnapshot(
            thresholds={bed: row["values"] for bed, row in store.thresholds().items()},
            rules=rules,
            alert_states=store.alert_states(self.monitor.active_ids()),
        )

    async def resume_histories(self, runtime: Any, messages: list[EpochMessage]) -> None:
        """First sight of a real bed mid-night on this worker (a restart, a rebalance): the stage history the
        runtime keeps in memory resumes from the measurements the sink stored (``store.stage_history_store``)."""
        wanted = getattr(runtime, "histories_wanted", None)  # the model runtime's; the rules runtime has none
        for bed_id, recording_id, epoch in wanted(messages) if wanted else []:
            rows = await self.stored(Store.stage_measurements, bed_id, recording_id, epoch)
            resume = runtime.resume_history  # in a thread: a night's history takes ~0.1 s to rebuild
            kept = await asyncio.get_running_loop().run_in_executor(None, resume, bed_id, recording_id, rows)
            log.info("bed %s/%s: stage history resumed at epoch %d (%d epochs)", bed_id, recording_id, epoch, kept)

    async def restore_beds(self, beds: set[str]) -> None:
        """First sight of a bed on this worker: take over its active alerts from the store."""
        new = sorted(beds - self.monitor.restored)
        if not new:
            return
        for bed in new:
            alerts = await self.stored(Store.alerts, "active", bed)
            self.monitor.restore(bed, alerts)

    async def publish_alerts(self, records: list[dict[str, Any]]) -> None:
        """Store alert transitions (first: the API shows them from the store), then publish on sleep.alerts."""
        if not records:
            return
        await self.stored(Store.apply_alert_events, records)
        pending = [await self.alerts.send(key=r["bed_id"].encode(), value=encode_json(r)) for r in records]
        await _delivered(pending)
        for record in records:
            self.metrics.alerts.labels(record["alert"]["priority"], record["event"]).inc()
        self.metrics.active_alerts.set(len(self.monitor.active_ids()))

    async def stored(self, call: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``call(store, *args, **kwargs)`` (``self.stored(Store.insert_epochs, records)``) in a worker thread,
        retried while the database is unreachable or locked (a PostgreSQL restart, a SQLite lock held past the
        busy timeout): the data are fine, so nothing is dead-lettered; the batch stays un-acked and the stream
        waits (back-pressure) instead. Errors that retrying cannot fix (a constraint or a bug) are raised.
        A store method, not its name, so that mypy checks each call's arguments and result (issue 16); not a
        lambda, whose loop variables would bind late."""
        loop = asyncio.get_running_loop()
        delay, failing_since = STORE_RETRY_FIRST_S, None
        while True:
            try:
                result = await loop.run_in_executor(None, lambda: call(self.store, *args, **kwargs))
            except (OperationalError, InterfaceError) as exc:
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.warning("store unavailable (%s); retrying until it answers", str(exc).splitlines()[0])
                self.metrics.store_retries.inc()
                await asyncio.sleep(delay)
                delay = min(delay * 2, STORE_RETRY_MAX_S)
                continue
            if failing_since is not None:
                log.warning("store answers again after %.1f s", time.monotonic() - failing_since)
            return result

    async def decoded(self, batch: Iterable[EventT], decode: Callable[[bytes], Any]) -> list[Any]:
        """``decode`` of each event's value, in order; events that fail are dead-lettered with the reason."""
        values = []
        for event in batch:
            try:
                values.append(decode(event.value))
            except MessageError as exc:
                await self.dead_letter(event, str(exc))
        return values

    async def dead_letter(self, event: EventT, reason: str) -> None:
        """Send ``event`` to psg.deadletter with ``reason`` (delivered before the caller acks it)."""
        message = event.message
        value = message.value if isinstance(message.value, bytes) else b""
        key = message.key.decode("utf-8", "replace") if isinstance(message.key, bytes) else None
        record = {
            "source_topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "key": key,
            "reason": reason,
            "payload_b64": base64.b64encode(value[:DEAD_LETTER_PAYLOAD_BYTES]).decode(),
            "at": time.time(),
        }
        log.warning("dead letter from %s[%s]@%s: %s", message.topic, message.partition, message.offset, reason)
        await _delivered([await self.deadletter.send(key=message.key, value=encode_json(record))])
        self.metrics.dead_letters.labels(message.topic).inc()


def _caption_record(raw: bytes) -> dict[str, Any]:
    """A sleep.captions record, validated alone so that one bad record does not sink the batch."""
    record = decode_json(raw, CAPTION_REQUIRED)
    caption_values(record)
    return record


def _alert_record(raw: bytes) -> dict[str, Any]:
    """A sleep.alerts record, validated as the store keeps it: kind "technical" (a device event) or
    "alert" (an alert transition); any other kind is refused, naming the two."""
    record = decode_json(raw, ("kind", "bed_id"))
    if record["kind"] == "technical":
        device_event_row(record)
    elif record["kind"] == "alert":
        alert_event_row(record)
    else:
        raise MessageError(f"sleep.alerts record field 'kind': expected 'technical' or 'alert', got {record['kind']!r}")
    return record


def _analyse_windows(windows: list[EpochWindow]) -> list[EpochMessage]:
    return [analyse(window) for window in windows]


def _technical_alert(device: DeviceEvent) -> dict[str, Any]:
    return {
        "kind": "technical",
        "bed_id": device.bed_id,
        "recording_id": device.recording_id,
        "stream": device.stream,
        "type": device.type,
        "at": device.at,
        "detail": device.detail,
    }


class _AckAfterDelivery:
    """Acks an agent's events once the records they caused are delivered, in order, without holding the agent up.

    WHY: waiting for the broker's acknowledgement inline put one produce round trip per completed epoch
    (and per inference batch) on the agent's serial path: at 500 beds the epocher agent spent most of its
    time waiting, not working, and latency rose while both cores were a third idle. The guarantee is
    unchanged: an event is acked only after everything it caused is delivered, and after every event
    handed in before it. A failed delivery stops the acks and is raised in the agent at its next call.
    """

    def __init__(self, stream: faust.StreamT, backlog: int = 512) -> None:
        self.stream = stream
        self.queue: asyncio.Queue[tuple[list[Any], list[Any]]] = asyncio.Queue(backlog)  # full: the agent waits
        self.task = asyncio.ensure_future(self._run())

    async def ack_when_delivered(self, pending: list[Any], events: Iterable[Any]) -> None:
        if self.task.done():
            self.task.result()  # raises what stopped the acks (a record the broker refused for good)
            raise RuntimeError("the ack task stopped")
        await self.queue.put((pending, list(events)))

    async def _run(self) -> None:
        while True:
            pending, events = await self.queue.get()
            await _delivered(pending)
            await _ack_all(self.stream, events)


async def _delivered(pending: Iterable[Any]) -> None:
    """Wait until every produced message is acknowledged by the broker."""
    for future in pending:
        await future


async def _ack_all(stream: faust.StreamT, events: Iterable[EventT]) -> None:
    for event in events:
        await stream.ack(event)
