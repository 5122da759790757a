"""Assemble 30-s epochs per bed from sample chunks, by sample timestamps, and say when each chunk may be acked.

What it does
------------
Each bed sends one or more streams (e.g. ``exg`` 256 Hz, ``resp`` 32 Hz, ``aux`` 1 Hz), cut into
chunks of about a second. Sample ``i`` of a chunk sits at device time ``t0 + i / fs``; epoch ``n`` of
a recording is ``[recording_start + 30 n, recording_start + 30 (n + 1))`` (AASM: epochs aligned to the
recording start). Samples are placed on each stream's sample grid by rounding their time, never by
wall clock, so chunks may arrive in any order across streams, twice (same bed, recording, stream,
``seq`` and start sample: ignored), overlapping (the first sample written wins) or with holes (left NaN: a 'gap').

Epoch ``n`` is complete when every stream seen for the bed has data up to its end (an unbroken run of
chunks by ``seq``: a chunk overtaken by its successor is waited for), or when the most advanced stream
is more than ``max_lag_s`` of device time past its end: the lagging streams' missing samples then stay
NaN and their channels are flagged 'gap'. A stream announced lost by the bridge
(``DeviceEvent`` ``stream_lost``) counts as lagging at once, until it sends data or is announced
resumed. Every epoch is emitted exactly once per ``Epocher``, in order per bed, each with up to
``context_epochs`` previous epochs as native-rate context for the detectors (``EpochWindow``); data
older than an epoch already emitted is not emitted again. A chunk of a new ``recording_id`` ends the
bed's previous recording: its partial epoch is dropped and its state reset (late chunks of the old
recording are ignored).

Ack tokens: why replay after a crash is lossless
------------------------------------------------
``add`` takes the chunk's Kafka message (any object, the "token") and returns the tokens that may now
be acked. A chunk's token is released only when nothing the epocher will still produce depends on it:
every epoch the chunk touches has been emitted *and* has left the hold window of the last
``hold_epochs`` emitted epochs, where ``hold_epochs = max(context_epochs, norm_epochs - 1)``: the
detector context, and the running normaliser's window (``stream_agents.normalise``: an epoch's model
signal is scaled by statistics of the previous ``norm_epochs - 1`` epochs). Duplicates, chunks of
finished recordings and chunks that only touch epochs already out of the context are released at once.
A bundle (``add_bundle``: one bed's chunks in one message) holds one share of its token per chunk; the
token is released with its last share, so a bundle is acked only when every chunk in it could be.

The agent acks released tokens after the epochs are delivered to ``psg.epochs``. After a crash
Kafka restarts the partition at the oldest un-acked chunk, so a fresh ``Epocher`` sees every chunk of
the held epochs again and rebuilds exactly the buffers (and normaliser statistics) the old one had:
the epochs after the last emitted one come out bit-identical, and the held ones come out again as
duplicates, which the store ignores (first write wins, keyed bed, recording, epoch). ``drop_beds``
(partition revoked) forgets beds *without* releasing their tokens, for the same reason: the new owner
replays them. Device events are released at once: a lost stream only makes the epocher stop waiting
for it earlier; after a replay without the event the lag rule gives the same epoch ``max_lag_s`` later.

This determinism assumes what the bridge guarantees: a bed's streams are interleaved chunk by chunk
(~1 s) on one partition, so a replay sees every stream within the first replayed epoch.

Memory per bed is bounded: per stream the context epochs plus the epochs not yet complete (at most
``max_lag_s`` + 30 s ahead of the oldest), and the held tokens of ``hold_epochs`` epochs.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from psg.channels import MIN_FS
from psg.codecs import ChunkBundle, DeviceEvent, EpochMessage, SampleChunk
from psg.epoching.analysis import EpochWindow, analyse
from psg.epoching.stream_buffer import ChunkShare, StreamBuffer, whole_tokens
from psg.errors import MessageError
from psg.model_input import DEFAULT_WINDOW_EPOCHS, RunningNormaliser
from psg.montage import CHANNELS, EPOCH_S
from psg.recording import Signal

#: Longest recording the epocher accepts (a sample later than this is a clock error, not a night).
MAX_RECORDING_S = 48 * 3600.0
#: Finished recordings remembered per bed, so their late chunks are recognised and ignored.
FINISHED_RECORDINGS = 16
#: Two chunks of one recording must agree on its start to within this (seconds). Not tighter: every bridge
#: process estimates the LSL -> Unix clock offset itself, so a restarted bridge sends the same recording's
#: start a few ms (seen: 8 ms) off the first one's; its samples are placed on the first one's grid.
START_TOLERANCE_S = 0.25
#: A chunk that starts more than this (seconds of device time) past the newest data of its bed is a jump: a
#: pause in the recording, a clock step, or a corrupt timestamp. Taken at once, a corrupt one would make the
#: lag rule emit every epoch up to it, empty, and then ignore the bed's real chunks as already emitted: the
#: rest of the night lost. So a jump is held back until the next chunk of its stream says which it was: one
#: that continues it (within ``JUMP_CONTINUITY_S``) confirms it, one back on the old time refuses it.
MAX_JUMP_S = 60.0
JUMP_CONTINUITY_S = 2.0

Analyse = Callable[[EpochWindow], EpochMessage]

#: Lowest rate (Hz) the epoch analysis can take per channel: the offline reader's cut-off
#: (``psg.channels.MIN_FS``: EEG/EOG/chin EMG 25 Hz, ECG 50 Hz, airflow and effort 1 Hz), one constant for
#: files and streams. Between it and ``psg.channels.FULL_FS`` (64 Hz; 8 Hz for breathing) a channel is
#: analysed and flagged ``band_limited`` (``psg.quality.epoch_flags``). A slower stream is a misconfigured
#: device or channel map: refused, not analysed into an exception. Position, oximeter and monitor HR are
#: not listed: any rate.
MIN_ANALYSIS_FS = MIN_FS


@dataclass
class EpocherOutput:
    """What one call produced: epochs to send, tokens to ack, device events to forward as alerts."""

    epochs: list[EpochMessage] = field(default_factory=list)
    #: With ``analyse=None``: the completed epochs' windows, unanalysed, in order (instead of ``epochs``).
    windows: list[EpochWindow] = field(default_factory=list)
    released: list[object] = field(default_factory=list)
    device_events: list[DeviceEvent] = field(default_factory=list)
    #: Chunks refused with the reason: a bundle's bad chunk (the rest of the bundle was taken), or a chunk held
    #: back as a jump (``MAX_JUMP_S``) that its stream's next chunk showed to be a bad timestamp.
    refused: list[tuple[SampleChunk, MessageError]] = field(default_factory=list)

    def extend(self, other: EpocherOutput) -> None:
        self.epochs += other.epochs
        self.windows += other.windows
        self.released += other.released
        self.device_events += other.device_events
        self.refused += other.refused


@dataclass
class _Bed:
    """State of one bed's current recording."""

    bed_id: str
    recording_id: str
    recording_start: float
    normaliser: RunningNormaliser
    streams: dict[str, StreamBuffer] = field(default_factory=dict)
    next_epoch: int | None = None
    first_emitted: int | None = None
    last_emitted: int | None = None
    last_received_at: float = 0.0
    held: list[tuple[int, int, tuple[str, int, int], object]] = field(default_factory=list)  # heap by last epoch
    held_keys: set[tuple[str, int, int]] = field(default_factory=set)  # (stream, seq, first sample index)
    #: Per stream, a chunk held back as a jump, with its token (see ``MAX_JUMP_S``)
    jumps: dict[str, tuple[SampleChunk, object]] = field(default_factory=dict)
    #: ``psg.recording.ORIGIN`` of the recording: the first one its chunks carry (None until one does)
    origin: str | None = None

    def newest_s(self) -> float | None:
        """Device seconds from the start to the furthest sample of any stream (None before any data)."""
        return max((s.reach / s.fs for s in self.streams.values() if s.reach > 0), default=None)

    def tokens(self) -> list[object]:
        return [token for *_, token in sorted(self.held)] + [token for _, token in self.jumps.values()]

    def is_jump(self, chunk: SampleChunk) -> bool:
        """Does ``chunk`` start more than ``MAX_JUMP_S`` past the furthest sample of any stream?

        Asked for every chunk: a chunk within reach of its own stream's furthest sample is answered from that
        stream alone (the furthest of all is at least as far), without going over the bed's streams."""
        own = self.streams.get(chunk.stream)
        if own is not None and own.reach > 0 and chunk.t0 - self.recording_start <= own.reach / own.fs + MAX_JUMP_S:
            return False
        newest = self.newest_s()
        return newest is not None and chunk.t0 - self.recording_start > newest + MAX_JUMP_S


class Epocher:
    """Per-bed 30-s epoch assembly with lossless ack tokens (see the module docstring).

    ``analyse`` turns an ``EpochWindow`` into the ``EpochMessage`` (default:
    ``psg.epoching.analysis.analyse``); ``norm_epochs`` is the running normaliser's window.
    Thread-safe (one lock around every call). ``analyse=None`` hands out each completed epoch's
    ``EpochWindow`` in ``EpocherOutput.windows`` instead, for the caller to analyse: the live agent places
    chunks on its event loop (cheap) and analyses the windows in a thread (``stream_agents.app``).
    """

    def __init__(
        self,
        context_epochs: int = 2,
        max_lag_s: float = 10.0,
        analyse: Analyse | None = analyse,
        norm_epochs: int = DEFAULT_WINDOW_EPOCHS,
    ) -> None:
        if context_epochs < 0 or max_lag_s < 0 or norm_epochs < 1:
            raise ValueError(
                f"expected context_epochs >= 0, max_lag_s >= 0, norm_epochs >= 1; "
                f"got {context_epochs}, {max_lag_s}, {norm_epochs}"
            )
        self.context_epochs = context_epochs
        self.max_lag_s = max_lag_s
        self.analyse = analyse
        self.norm_epochs = norm_epochs
        self.hold_epochs = max(context_epochs, norm_epochs - 1)
        self._beds: dict[str, _Bed] = {}
        self._finished: dict[str, deque[str]] = {}
        self._order = itertools.count()
        self._lock = threading.Lock()

    # --- public API ---------------------------------------------------------------------------------

    def add(self, chunk: SampleChunk, token: object) -> EpocherOutput:
        """Take one chunk; return the epochs it completed and the tokens that may be acked now.

        Raises ``MessageError`` (state unchanged) for a chunk that contradicts its bed's earlier chunks
        (rate or labels of a stream, recording start) or lies outside the recording's time span.
        """
        with self._lock:
            out = EpocherOutput()
            self._add(chunk, token, out)
            out.released = whole_tokens(out.released)
            return out

    def add_bundle(self, bundle: ChunkBundle, token: object) -> EpocherOutput:
        """Take a bundle's chunks in order, as ``add`` would one by one, under one ``token``.

        ``token`` is released once every chunk of the bundle is. A chunk that contradicts its bed's earlier
        chunks does not spoil the others: it is skipped and listed in ``refused`` with the reason (the
        agent dead-letters the message, naming the chunk).
        """
        with self._lock:
            share = ChunkShare(token, len(bundle.chunks))
            out = EpocherOutput()
            for chunk in bundle.chunks:
                try:
                    self._add(chunk, share, out)
                except MessageError as exc:
                    out.refused.append((chunk, exc))
                    out.released.append(share)
            out.released = whole_tokens(out.released)
            return out

    def device_event(self, event: DeviceEvent, token: object) -> EpocherOutput:
        """Take a bridge event: forward it, release its token, and treat a lost stream as lagging."""
        with self._lock:
            out = EpocherOutput(released=[token], device_events=[event])
            bed = self._beds.get(event.bed_id)
            if bed is None or bed.recording_id != event.recording_id or event.stream not in bed.streams:
                return out
            stream = bed.streams[event.stream]
            if event.type == "stream_lost":
                stream.lost = True
                self._emit_ready(bed, bed.last_received_at, out)
                out.released += self._release(bed)
                out.released = whole_tokens(out.released)
            elif event.type == "stream_resumed":
                stream.lost = False
            return out

    def drop_beds(self, bed_ids: Iterable[str]) -> None:
        """Forget ``bed_ids`` without releasing their tokens (partition revoked: the new owner replays)."""
        with self._lock:
            for bed_id in bed_ids:
                self._beds.pop(bed_id, None)
                self._finished.pop(bed_id, None)

    def held_tokens(self, bed_id: str) -> int:
        """How many chunks of ``bed_id`` are held un-acked (for metrics and tests; a bundle's chunks count
        one by one)."""
        bed = self._beds.get(bed_id)
        return len(bed.held) if bed else 0

    # --- internals ------------------------------------------------------------------------------------

    def _add(self, chunk: SampleChunk, token: object, out: EpocherOutput) -> None:
        """Take ``chunk`` into ``out`` (what one chunk adds to a call's output: per chunk, one output object
        fewer); raises ``MessageError`` before anything is added."""
        finished = self._finished.get(chunk.bed_id)
        if finished is None:
            finished = self._finished[chunk.bed_id] = deque(maxlen=FINISHED_RECORDINGS)
        if chunk.recording_id in finished:
            out.released.append(token)
            return
        _check_rate(chunk.stream, chunk.bed_id, chunk.labels, chunk.fs)
        bed = self._beds.get(chunk.bed_id)
        if bed is not None and bed.recording_id == chunk.recording_id:
            self._check(bed, chunk)
        else:
            self._check_span(chunk, chunk.recording_start)
            if bed is not None:  # a new recording: drop the old one's partial epoch, release its chunks
                out.released += bed.tokens()
                finished.append(bed.recording_id)
            bed = _Bed(chunk.bed_id, chunk.recording_id, chunk.recording_start, RunningNormaliser(self.norm_epochs))
            self._beds[chunk.bed_id] = bed
        bed.origin = bed.origin or chunk.origin
        if (chunk.stream not in bed.jumps and not bed.is_jump(chunk)) or self._gate_jump(bed, chunk, token, out):
            self._place(bed, chunk, token, out)

    def _gate_jump(self, bed: _Bed, chunk: SampleChunk, token: object, out: EpocherOutput) -> bool:
        """Settle the jump held back on ``chunk``'s stream, if any, and hold ``chunk`` back if it is one.
        Adds what settling produced to ``out``; returns whether ``chunk`` goes on to be placed."""
        jump = bed.is_jump(chunk)
        held = bed.jumps.pop(chunk.stream, None)
        if held is not None:
            held_chunk, held_token = held
            if jump and abs(chunk.t0 - held_chunk.t_end) <= JUMP_CONTINUITY_S:  # the stream goes on from there
                self._place(bed, held_chunk, held_token, out)
                return True
            if bed.is_jump(held_chunk):  # the stream carried on at the old time: it was a bad timestamp
                ahead = held_chunk.t0 - bed.recording_start - (bed.newest_s() or 0.0)
                reason = (
                    f"chunk field 't0': {held_chunk.t0!r} is {ahead:.0f} s past the rest of bed "
                    f"{chunk.bed_id!r}'s data and stream {chunk.stream!r} did not go on from it "
                    f"(expected at most {MAX_JUMP_S:g} s ahead, or a jump the next chunk continues)"
                )
                out.refused.append((held_chunk, MessageError(reason)))
                out.released.append(held_token)
            else:  # another stream has caught up with it meanwhile: an ordinary chunk now
                self._place(bed, held_chunk, held_token, out)
        if jump:
            bed.jumps[chunk.stream] = (chunk, token)
            return False
        return True

    def _place(self, bed: _Bed, chunk: SampleChunk, token: object, out: EpocherOutput) -> None:
        """Write a chunk into its stream, emit the epochs it completes, release what may be acked (into ``out``)."""
        stream = bed.streams.get(chunk.stream)
        if stream is None:
            stream = bed.streams[chunk.stream] = StreamBuffer(chunk.fs, chunk.labels, chunk.units)

        g0 = int(round((chunk.t0 - bed.recording_start) * stream.fs))
        g1 = g0 + chunk.n_samples
        key = (chunk.stream, chunk.seq, g0)  # with the time: a restarted bridge counting from 0 is no duplicate
        if key in bed.held_keys or g1 <= 0:
            out.released.append(token)
            return
        first, last = stream.epoch_of(max(g0, 0)), stream.epoch_of(g1 - 1)
        floor = self._data_floor(bed)
        if bed.last_emitted is not None and last < floor:
            # only touches epochs already emitted and out of the context; it still extends the stream's
            # unbroken run: a stream that fell behind and was emitted 'gap' is waited for again once it
            # has caught up, instead of lagging by the lag rule for the rest of the night (and the last
            # epoch, which no stream runs ahead of, never coming out)
            stream.received(chunk.seq, g1)
            out.released.append(token)
            return
        if bed.first_emitted is None:
            bed.next_epoch = first if bed.next_epoch is None else min(bed.next_epoch, first)
        data = np.asarray(chunk.data, dtype=np.float32)
        for epoch in range(max(first, floor), last + 1):
            start, end = stream.bounds(epoch)
            lo, hi = max(g0, start), min(g1, end)
            if lo >= hi:
                continue
            stream.write(epoch, lo - start, data[:, lo - g0 : hi - g0])
        stream.received(chunk.seq, g1)
        stream.lost = False
        bed.last_received_at = max(bed.last_received_at, chunk.received_at)
        heapq.heappush(bed.held, (last, next(self._order), key, token))
        bed.held_keys.add(key)
        self._emit_ready(bed, chunk.received_at, out)
        out.released += self._release(bed)

    def _check(self, bed: _Bed, chunk: SampleChunk) -> None:
        if abs(chunk.recording_start - bed.recording_start) > START_TOLERANCE_S:
            raise MessageError(
                f"chunk field 'recording_start': {chunk.recording_start!r} differs from "
                f"{bed.recording_start!r} of earlier chunks of bed {chunk.bed_id!r} recording {chunk.recording_id!r}"
            )
        stream = bed.streams.get(chunk.stream)
        if stream is not None and (stream.fs != chunk.fs or stream.labels != chunk.labels):
            raise MessageError(
                f"chunk of stream {chunk.stream!r} (bed {chunk.bed_id!r}): fs {chunk.fs} and labels "
                f"{list(chunk.labels)} differ from the stream's earlier fs {stream.fs} and labels {list(stream.labels)}"
            )
        self._check_span(chunk, bed.recording_start)

    @staticmethod
    def _check_span(chunk: SampleChunk, recording_start: float) -> None:
        if chunk.t_end < recording_start - EPOCH_S or chunk.t0 > recording_start + MAX_RECORDING_S:
            raise MessageError(
                f"chunk field 't0': {chunk.t0!r} is outside the recording that starts at {recording_start!r} "
                f"(expected between its start and {MAX_RECORDING_S / 3600:g} h later)"
            )

    def _data_floor(self, bed: _Bed) -> int:
        """The oldest epoch whose samples are still kept (the context of the next epoch)."""
        if bed.last_emitted is None:
            return -(10**9)
        return bed.last_emitted - self.context_epochs + 1

    def _complete(self, bed: _Bed, epoch: int) -> bool:
        """Every live stream has its unbroken run past the epoch, or the most advanced one is more than
        ``max_lag_s`` past it (runs for every chunk: one pass over the streams)."""
        waiting, any_live, ahead = False, False, -math.inf
        for s in bed.streams.values():
            if s.lost:
                continue
            any_live = True
            if not waiting and s.contiguous < s.bounds(epoch)[1]:
                waiting = True
            ahead = max(ahead, s.reach / s.fs)
        if not any_live:
            return False
        return not waiting or ahead > (epoch + 1) * EPOCH_S + self.max_lag_s

    def _emit_ready(self, bed: _Bed, received_at: float, out: EpocherOutput) -> None:
        """Emit every complete epoch into ``out``: analysed (``epochs``), or as windows with ``analyse=None``."""
        while bed.next_epoch is not None and self._complete(bed, bed.next_epoch):
            window = self._emit(bed, bed.next_epoch, received_at)
            if self.analyse is None:
                out.windows.append(window)
            else:
                out.epochs.append(self.analyse(window))

    def _emit(self, bed: _Bed, epoch: int, received_at: float) -> EpochWindow:
        first = epoch if bed.first_emitted is None else max(epoch - self.context_epochs, bed.first_emitted)
        signals: dict[str, Signal] = {}
        for name in sorted(bed.streams):  # a label sent by two streams: the first by name wins
            stream = bed.streams[name]
            parts = []
            for e in range(first, epoch + 1):
                block = stream.blocks.get(e)
                if block is None:
                    start, end = stream.bounds(e)
                    block = np.full((len(stream.labels), end - start), np.nan, dtype=np.float32)
                parts.append(block)
            samples = np.concatenate(parts, axis=1, dtype=np.float64)  # Signal holds float64: rows are views
            for row, (label, unit) in enumerate(zip(stream.labels, stream.units, strict=True)):
                signals.setdefault(label, Signal(label, samples[row], stream.fs, unit))
        window = EpochWindow(
            bed_id=bed.bed_id,
            recording_id=bed.recording_id,
            recording_start=bed.recording_start,
            epoch=epoch,
            first_epoch=first,
            signals=signals,
            normaliser=bed.normaliser,
            end_received_at=received_at,
            origin=bed.origin,
        )
        bed.first_emitted = epoch if bed.first_emitted is None else bed.first_emitted
        bed.last_emitted = epoch
        bed.next_epoch = epoch + 1
        floor = self._data_floor(bed)
        for stream in bed.streams.values():
            stream.give_up_before(stream.bounds(epoch)[1])
            stream.forget_before(floor)
        return window

    def _release(self, bed: _Bed) -> list[object]:
        """Tokens of chunks whose every epoch has left the hold window."""
        if bed.last_emitted is None:
            return []
        limit = bed.last_emitted - self.hold_epochs
        out = []
        while bed.held and bed.held[0][0] <= limit:
            _, _, key, token = heapq.heappop(bed.held)
            bed.held_keys.discard(key)
            out.append(token)
        return out


def _check_rate(stream: str, bed_id: str, labels: tuple[str, ...], fs: float) -> None:
    """Refuse (``MessageError``) a chunk whose rate is below what the analysis of one of its channels needs."""
    needed = _needed_fs(labels)
    if needed is not None and fs < needed[1]:
        raise MessageError(
            f"chunk of stream {stream!r} (bed {bed_id!r}): fs {fs:g} Hz is below the {needed[1]:g} Hz that "
            f"channel {needed[0]!r} needs (expected e.g. {CHANNELS[needed[0]].fs:g} Hz; check the device's channel map)"
        )


@functools.lru_cache(maxsize=256)
def _needed_fs(labels: tuple[str, ...]) -> tuple[str, float] | None:
    """(label, rate) of the most demanding known channel among ``labels`` (None: no known fast channel)."""
    demands = [(label, MIN_ANALYSIS_FS[label]) for label in labels if label in MIN_ANALYSIS_FS]
    return max(demands, key=lambda d: d[1]) if demands else None
