"""The LSL -> Kafka bridge: every bed's device streams, timestamped, chunked and produced to ``psg.samples``.

Discovery never stops: every second the bridge looks at the LSL streams on the network (a
``ContinuousResolver``) and attaches to

* simulated beds and EDF replay: type ``PSG`` with ``sleeplm_bed`` in the description, which also
  gives the bed, the stream (``group``), the recording id and start, montage channel labels and the
  ``origin`` (``psg.recording.ORIGIN``, simulated or recorded; chunks carry it, None when unknown);
* real devices listed in the bridge configuration (``bridge_config``), matched by name, type and/or
  source id and mapped through their channel-map file (origin: recorded). A real bed's recording starts
  with the first sample of its first stream; its id is ``<bed>-<UTC yyyymmddThhmmss>`` of that moment.

Each inlet post-processes timestamps with LSL clock synchronisation and dejittering, so chunk times
are the device's sample clock, smooth and free of network jitter. LSL times become Unix seconds by one
offset (``time.time() - local_clock()``) measured when the bridge starts, the same for every stream,
so streams of one bed stay aligned. Pulled samples are accumulated into ~1-s chunks (``SampleChunk``:
``t0`` is the first sample's time, ``seq`` counts chunks per bed, recording and stream from 0); the
chunks of a bed's streams that complete together (the same second) go to the ``SpooledProducer`` as one
``ChunkBundle`` record (key = bed id): one record per bed and second instead of one per stream, because
records, not bytes, are what the broker and the consumers pay for. A chunk waits at most
``BUNDLE_WAIT_S`` for its bed's other streams.

A stream that has flowed and then delivers nothing for ``lost_after_s`` (wall clock; and for at least
three of its usual delivery intervals, so a real-time 0.2-Hz channel is not "lost" between samples)
is reported once with a ``stream_lost`` device event; the bridge keeps looking for it, and when samples
flow again (the same inlet, or a re-opened outlet of the same bed, stream and recording) it sends
``stream_resumed`` and carries on with the next ``seq``.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from device_bridges.bridge_config import BridgeConfig, DeviceStream, load_bridge_config
from device_bridges.channel_map import AppliedMap, ChannelMap
from device_bridges.lsl_config import import_pylsl
from device_bridges.producer import SpooledProducer
from device_bridges.simulated import recording_id_for
from plumbing.logs import device_and_wall
from plumbing.metrics import metrics
from plumbing.settings import Settings
from psg.codecs import (
    MAX_BUNDLE_CHUNKS,
    ORIGINS,
    DeviceEvent,
    SampleChunk,
    encode_bundle,
    encode_chunk,
    encode_device_event,
)
from psg.errors import PSGError
from psg.recording import RECORDED

log = logging.getLogger(__name__)

#: Seconds of samples per produced chunk.
CHUNK_S = 1.0
#: How often the bridge looks for new or returning streams.
DISCOVER_EVERY_S = 1.0
#: Most device seconds of one stream taken per pull: a bridge that was held up (CPU, a slow disk) drains
#: its backlog of every stream in the same round, so a bed's streams stay in step on psg.samples (the
#: epocher flags a stream more than 10 s behind the others 'gap').
PULL_S = 60.0
#: Longest a completed chunk waits for the chunks of its bed's other streams before its bundle is sent
#: (streams of one device complete their chunks within a pull round or two; a stream that delivers late
#: or has gone quiet must not hold the others back).
BUNDLE_WAIT_S = 0.3
#: Inlet buffer (device seconds): what a busy bridge may fall behind before LSL drops samples.
INLET_BUFFER_S = 1800
#: A stream's next sample more than this after its last one (beyond one sample period) starts a new chunk:
#: samples are placed as ``t0 + i / fs``, so a chunk must never span a jump in the device clock (a device
#: that stopped recording and resumed on a new outlet, an EDF+D replay's gap).
JUMP_S = 0.05


@dataclass
class _Stream:
    """One bed stream the bridge reads: its identity, channel mapping, inlet and chunk buffer."""

    bed_id: str
    stream: str
    fs: float
    mapping: AppliedMap
    recording_id: str | None
    recording_start: float | None  # Unix seconds
    inlet: Any = None
    uid: str = ""
    seq: int = 0
    lost: bool = False
    flowing: bool = False  # has delivered samples (a stream is only "lost" once it has flowed)
    last_data: float = field(default_factory=time.monotonic)
    arrival_s: float = 1.0  # running mean of the wall time between deliveries (set to 1/fs at first)
    last_device: float | None = None  # device time (Unix seconds) of the last sample, for the log
    last_wall: float = 0.0  # wall time (Unix seconds) it arrived
    buffer: list[np.ndarray] = field(default_factory=list)
    stamps: list[np.ndarray] = field(default_factory=list)
    pull_into: np.ndarray | None = None
    origin: str | None = None  # psg.recording.ORIGIN of the bed's signals (None: the source did not say)

    @property
    def buffered(self) -> int:
        return sum(len(s) for s in self.stamps)

    def silent_too_long(self, now: float, lost_after_s: float) -> bool:
        """No samples for ``lost_after_s`` and for three usual delivery intervals (slow or real-time streams)."""
        return now - self.last_data > max(lost_after_s, 3.0 * self.arrival_s)


class Bridge:
    """Attach to LSL streams, chunk their samples and hand chunks and device events to the producer."""

    def __init__(self, config: BridgeConfig, sink: SpooledProducer, lost_after_s: float | None = None) -> None:
        self.config = config
        self.sink = sink
        self.lost_after_s = lost_after_s if lost_after_s is not None else config.lost_after_s
        self.pylsl = import_pylsl()
        self.offset = time.time() - self.pylsl.local_clock()  # LSL clock -> Unix seconds
        self.streams: dict[tuple[str, str], _Stream] = {}
        self.real_recordings: dict[str, tuple[str, float]] = {}  # bed -> (recording id, start)
        self._known: set[str] = set()  # outlet uids attached, being attached, gone or not ours
        self._lock = threading.Lock()
        self._ready: queue.Queue[tuple[Any, Any, DeviceStream | None]] = queue.Queue()
        self._reported: set[str] = set()  # uids whose configuration problem was logged already
        self._odd_origins: set[str] = set()  # unknown description origins, warned about once each
        self._outbox: dict[str, list[SampleChunk]] = {}  # bed -> completed chunks not yet sent
        self._outbox_since: dict[str, float] = {}  # bed -> when its oldest waiting chunk completed

    # --- main loop ----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        discovery = threading.Thread(target=self._discover_loop, args=(stop,), name="bridge-discovery", daemon=True)
        discovery.start()
        try:
            while not stop.is_set():
                self._take_discovered()
                pulled = self.pull()
                self.check_lost(time.monotonic())
                self.send_bundles(time.monotonic())
                if not pulled:
                    stop.wait(0.01)
        finally:
            discovery.join(5.0)
            for state in self.streams.values():
                self._flush(state)
                state.inlet = None
            self.send_bundles(time.monotonic(), every_bed=True)

    # --- discovery (own thread: connecting and the first clock-offset estimate take a while) ---------

    def _discover_loop(self, stop: threading.Event) -> None:
        resolver = self.pylsl.ContinuousResolver(forget_after=5.0)
        with ThreadPoolExecutor(8, thread_name_prefix="bridge-connect") as pool:
            while not stop.is_set():
                try:
                    for candidate in self.discover(resolver.results()):
                        pool.submit(self._connect, *candidate)
                except Exception:  # never let discovery die silently; try again next round
                    log.exception("bridge discovery failed")
                stop.wait(DISCOVER_EVERY_S)

    def discover(self, infos: list[Any]) -> list[tuple[Any, DeviceStream | None]]:
        """The streams to connect to: new ones that are simulated beds or configured devices."""
        candidates = []
        for info in infos:
            uid = info.uid()
            with self._lock:
                if uid in self._known:
                    continue
                self._known.add(uid)
            device = self.config.device_for(info.name(), info.type(), info.source_id())
            if device is None and not (self.config.simulated and info.type() == "PSG"):
                continue
            if info.nominal_srate() <= 0:
                self._problem(uid, f"LSL stream {info.name()!r} has an irregular rate; PSG needs a fixed rate")
                continue
            candidates.append((info, device))
        return candidates

    def _connect(self, info: Any, device: DeviceStream | None) -> None:
        """Open an inlet and queue it for the pulling loop once connected with a first clock-offset estimate."""
        try:
            inlet = self.pylsl.StreamInlet(
                info,
                max_buflen=INLET_BUFFER_S,
                recover=False,
                processing_flags=self.pylsl.proc_clocksync | self.pylsl.proc_dejitter,
            )
            full = inlet.info(timeout=2.0)
            inlet.open_stream(timeout=2.0)
            inlet.time_correction(timeout=5.0)  # else the first pull blocks the loop for it
        except Exception as exc:  # the outlet vanished while we looked: try again next round
            log.debug("stream %s not ready: %s", info.name(), exc)
            self._forget(info.uid(), dead=False)
            return
        self._ready.put((inlet, full, device))

    def _take_discovered(self) -> None:
        while not self._ready.empty():
            inlet, info, device = self._ready.get()
            try:
                if device is None:
                    self._attach_simulated(inlet, info)
                else:
                    self._attach_device(inlet, info, device)
            except PSGError as exc:
                self._problem(info.uid(), str(exc))

    def _forget(self, uid: str, dead: bool) -> None:
        """``dead``: never look at this outlet again; else: look again at the next discovery round."""
        with self._lock:
            if dead:
                self._known.add(uid)
            else:
                self._known.discard(uid)

    def _attach_simulated(self, inlet: Any, info: Any) -> None:
        desc = info.desc()
        bed_id = desc.child_value("sleeplm_bed")
        if not bed_id:  # a PSG-typed stream that is not ours
            return
        stream = desc.child_value("group") or info.name()
        recording_id = desc.child_value("recording_id")
        try:
            recording_start = float(desc.child_value("recording_start")) + self.offset
        except ValueError:
            raise PSGError(f"simulated bed {bed_id} stream {stream}: no recording_start in the description") from None
        if not recording_id:
            raise PSGError(f"simulated bed {bed_id} stream {stream}: recording_id missing in the description")
        origin = desc.child_value("origin") or None
        if origin is not None and origin not in ORIGINS:
            if origin not in self._odd_origins:
                log.warning("bed %s: LSL origin %r is not one of %s; its chunks say None", bed_id, origin, ORIGINS)
            self._odd_origins.add(origin)
            origin = None
        labels = _channel_labels(info)
        mapping = ChannelMap.identity(labels, f"bed {bed_id}").resolve(labels, stream)
        self._attach(inlet, info, bed_id, stream, mapping, recording_id, recording_start, origin)

    def _attach_device(self, inlet: Any, info: Any, device: DeviceStream) -> None:
        stream = device.stream or info.name()
        mapping = device.channel_map.resolve(_channel_labels(info), stream)
        if mapping.missing:
            log.warning(
                "bed %s stream %s: mapped channels %s are not in the device stream",
                device.bed_id,
                stream,
                list(mapping.missing),
            )
        recording_id, recording_start = self.real_recordings.get(device.bed_id) or (None, None)
        self._attach(inlet, info, device.bed_id, stream, mapping, recording_id, recording_start, RECORDED)

    def _attach(
        self,
        inlet: Any,
        info: Any,
        bed_id: str,
        stream: str,
        mapping: AppliedMap,
        recording_id: str | None,
        recording_start: float | None,
        origin: str | None,
    ) -> None:
        key = (bed_id, stream)
        state = self.streams.get(key)
        if state is not None and (recording_id is None or state.recording_id == recording_id):
            if state.inlet is not None and not state.lost:
                self._forget(info.uid(), dead=False)  # a second outlet for a flowing stream: look again later
                return
            if state.fs != info.nominal_srate() or state.mapping.labels != mapping.labels:
                log.warning(
                    "bed %s stream %s came back with a different layout; continuing as the same stream", bed_id, stream
                )
            state.inlet, state.uid, state.mapping, state.fs = inlet, info.uid(), mapping, info.nominal_srate()
            state.origin = origin or state.origin
            log.info("bed %s stream %s: re-attached (uid %s)", bed_id, stream, state.uid)
        else:
            if state is not None:  # the bed started a new recording on this stream
                self._flush(state)
                log.info(
                    "bed %s stream %s: recording %s ended, %s begins", bed_id, stream, state.recording_id, recording_id
                )
            state = _Stream(
                bed_id,
                stream,
                info.nominal_srate(),
                mapping,
                recording_id,
                recording_start,
                inlet=inlet,
                uid=info.uid(),
                arrival_s=1.0 / info.nominal_srate(),
                origin=origin,
            )
            self.streams[key] = state
            log.info(
                "bed %s stream %s: attached %s (%d channels at %g Hz)",
                bed_id,
                stream,
                info.name(),
                len(mapping.labels),
                state.fs,
            )
        state.pull_into = np.empty((max(64, int(state.fs * PULL_S)), info.channel_count()), dtype=np.float32)

    def _problem(self, uid: str, message: str) -> None:
        if uid not in self._reported:
            log.error("%s", message)
            self._reported.add(uid)
        self._forget(uid, dead=True)

    # --- samples ------------------------------------------------------------------------------------

    def pull(self) -> int:
        """One pull from every inlet (up to ``PULL_S`` of its samples); produce every complete chunk. Returns the
        samples pulled. One pull per stream per round, so a stream with a backlog (a bridge catching up)
        cannot starve the others: they are read in turn and none goes silent long enough to look lost."""
        total = 0
        for state in self.streams.values():
            if state.inlet is None or state.pull_into is None:  # attaching sets both
                continue
            try:
                samples, stamps = state.inlet.pull_chunk(
                    timeout=0.0, max_samples=len(state.pull_into), dest_obj=state.pull_into, as_numpy=True
                )
            except self.pylsl.util.LostError:
                log.info("bed %s stream %s: outlet closed", state.bed_id, state.stream)
                state.inlet = None
                self._flush(state)  # what it sent is all there is: nothing after it belongs to this chunk
                continue
            if len(stamps):
                self._received(state, np.array(samples, dtype=np.float32), np.asarray(stamps, dtype=np.float64))
                total += len(stamps)
        return total

    def _received(self, state: _Stream, samples: np.ndarray, stamps: np.ndarray) -> None:
        now = time.monotonic()
        if state.flowing and not state.lost:
            state.arrival_s = 0.9 * state.arrival_s + 0.1 * (now - state.last_data)
        state.last_data = now
        state.last_device, state.last_wall = float(stamps[-1]) + self.offset, time.time()
        state.flowing = True
        metrics().samples_in.labels(stream=state.stream).inc(len(stamps))
        if state.recording_id is None:
            state.recording_id, state.recording_start = self._real_recording(state.bed_id, stamps[0] + self.offset)
        if state.lost:
            state.lost = False
            self._event(state, "stream_resumed", "samples flowing again")
        if state.stamps and stamps[0] - state.stamps[-1][-1] > 1.0 / state.fs + JUMP_S:
            self._flush(state)  # the device clock jumped (a recording gap): the buffered samples end here
        state.buffer.append(samples)
        state.stamps.append(stamps)
        size = max(1, round(state.fs * CHUNK_S))
        if state.buffered < size:
            return
        # a bridge that fell behind still sends ~1-s chunks: join the backlog once, then cut it
        state.buffer, state.stamps = [np.concatenate(state.buffer)], [np.concatenate(state.stamps)]
        while state.buffered >= size:
            self._flush(state, size)

    def _real_recording(self, bed_id: str, first_sample: float) -> tuple[str, float]:
        """A real bed's recording: started by the first sample of its first stream, shared by its streams."""
        if bed_id not in self.real_recordings:
            when = datetime.fromtimestamp(first_sample, UTC)
            self.real_recordings[bed_id] = (recording_id_for(bed_id, when), first_sample)
            for state in self.streams.values():
                if state.bed_id == bed_id and state.recording_id is None:
                    state.recording_id, state.recording_start = self.real_recordings[bed_id]
        return self.real_recordings[bed_id]

    def _flush(self, state: _Stream, size: int | None = None) -> None:
        """Produce the first ``size`` buffered samples (all if None) of ``state`` as one chunk."""
        if not state.stamps or state.recording_id is None or state.recording_start is None:
            return
        samples = state.buffer[0] if len(state.buffer) == 1 else np.concatenate(state.buffer)
        stamps = state.stamps[0] if len(state.stamps) == 1 else np.concatenate(state.stamps)
        size = len(stamps) if size is None else size
        state.buffer, state.stamps = ([samples[size:]], [stamps[size:]]) if size < len(stamps) else ([], [])
        samples, stamps = samples[:size], stamps[:size]
        data = state.mapping.apply(samples)
        data[~np.isfinite(data)] = np.nan  # an infinite value is a device fault: a missing sample
        chunk = SampleChunk(
            bed_id=state.bed_id,
            recording_id=state.recording_id,
            stream=state.stream,
            labels=state.mapping.labels,
            units=state.mapping.units,
            fs=state.fs,
            t0=float(stamps[0] + self.offset),
            seq=state.seq,
            recording_start=state.recording_start,
            received_at=time.time(),
            data=data,
            origin=state.origin,
        )
        state.seq += 1
        self._outbox.setdefault(state.bed_id, []).append(chunk)
        self._outbox_since.setdefault(state.bed_id, time.monotonic())

    def send_bundles(self, now: float, every_bed: bool = False) -> None:
        """Send the waiting chunks of each bed whose flowing streams all have one, or that waited
        ``BUNDLE_WAIT_S`` (``every_bed``: all of them, the bridge is stopping)."""
        for bed_id in list(self._outbox):
            have = {chunk.stream for chunk in self._outbox[bed_id]}
            flowing = {
                s.stream
                for s in self.streams.values()
                if s.bed_id == bed_id and s.inlet is not None and s.flowing and not s.lost
            }
            if every_bed or flowing <= have or now - self._outbox_since[bed_id] >= BUNDLE_WAIT_S:
                self._send_bed(bed_id)

    def _send_bed(self, bed_id: str) -> None:
        """Produce ``bed_id``'s waiting chunks, by time (streams interleaved second by second), as bundles."""
        chunks = sorted(self._outbox.pop(bed_id, []), key=lambda chunk: chunk.t0)
        self._outbox_since.pop(bed_id, None)
        for i in range(0, len(chunks), MAX_BUNDLE_CHUNKS):
            part = chunks[i : i + MAX_BUNDLE_CHUNKS]
            self.sink.send(bed_id.encode(), encode_chunk(part[0]) if len(part) == 1 else encode_bundle(part))

    # --- lost streams -------------------------------------------------------------------------------

    def check_lost(self, now: float) -> None:
        """Report each stream that has been silent too long, once (until it resumes)."""
        for state in self.streams.values():
            if state.lost or not state.flowing or not state.silent_too_long(now, self.lost_after_s):
                continue
            self._flush(state)
            state.lost = True
            self._event(state, "stream_lost", f"no samples for {now - state.last_data:.1f} s")

    def _event(self, state: _Stream, kind: Literal["stream_lost", "stream_resumed"], detail: str) -> None:
        assert state.recording_id is not None
        # the line's own time is the wall time; a device clock that differs (a replay, --speed, a device set
        # wrong) is named too, as of the stream's last sample
        device = device_and_wall(state.last_device, state.last_wall) if state.last_device is not None else ""
        log.warning(
            "bed %s stream %s: %s (%s%s)",
            state.bed_id,
            state.stream,
            kind,
            detail,
            f"; last sample at {device}" if device else "",
        )
        event = DeviceEvent(state.bed_id, state.recording_id, state.stream, kind, time.time(), detail)
        metrics().device_events.labels(type=kind).inc()
        self._send_bed(state.bed_id)  # the bed's waiting chunks go first: the event follows them
        self.sink.send(state.bed_id.encode(), encode_device_event(event))


def _channel_labels(info: Any) -> list[str]:
    """Channel labels from an LSL description (``channels/channel/label``); ``ch1``.. where absent."""
    labels = []
    channel = info.desc().child("channels").child("channel")
    for i in range(info.channel_count()):
        label = channel.child_value("label") if not channel.empty() else ""
        labels.append(label or f"ch{i + 1}")
        channel = channel.next_sibling()
    return labels


def run_bridge(
    settings: Settings,
    stop_event: threading.Event,
    config_path: str | Path | None = None,
    lost_after_s: float | None = None,
) -> None:
    """Run the bridge until ``stop_event`` is set, then deliver what is spooled (up to 10 s) and return.

    ``config_path`` names the bridge TOML (real devices); without it, simulated beds and EDF replay
    are bridged. ``lost_after_s`` overrides the configuration's lost-stream timeout.
    """
    config = load_bridge_config(config_path)
    if lost_after_s is not None and not (math.isfinite(lost_after_s) and lost_after_s > 0):
        raise PSGError(f"lost_after_s must be > 0, got {lost_after_s!r}")
    sink = SpooledProducer(settings)
    try:
        Bridge(config, sink, lost_after_s).run(stop_event)
    finally:
        sink.close(timeout_s=10.0)
