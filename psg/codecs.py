"""Message codecs of the live path: compact binary for signals, versioned JSON for everything else.

DESIGN: values on ``psg.samples`` and ``psg.epochs`` are a small versioned header plus a float32 array,
never JSON arrays of numbers; captions, technical events and dead letters are JSON with a schema
version. Every message carries bed id, recording id and sample-clock timestamps.

Binary layout (little endian)::

    magic (4 bytes) | version (u8) | header length (u32) | header (UTF-8 JSON object) | float32 payload

``PSGS`` is a chunk of samples, ``PSGB`` a bundle of one bed's chunks (its streams' same second: the
header lists the chunk headers, the payload is their samples one after the other), ``PSGT`` a technical
(device) event, ``PSGE`` an epoch. Decoders check
everything a producer could get wrong (magic, version, lengths, shapes, rates, timestamps) and raise
``MessageError`` naming the field and what was expected; the stream agents dead-letter the message
with that text and go on. NaN samples are allowed (a device's way of saying "no sample here"; the
epocher flags them as a gap); infinite samples are rejected.

Timestamps are seconds since the Unix epoch on the *device clock* as the bridge maps it (the LSL clock
plus the LSL-to-wall offset); ``received_at`` is the bridge's wall clock when the chunk arrived.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from psg.errors import MessageError
from psg.json_codec import strict_json
from psg.montage import AUX_CHANNELS, EPOCH_S, MODEL_CHANNELS, MODEL_EPOCH_SAMPLES
from psg.recording import RECORDED, SIMULATED

VERSION = 1
MAGIC_SAMPLES = b"PSGS"
MAGIC_BUNDLE = b"PSGB"
MAGIC_DEVICE_EVENT = b"PSGT"
MAGIC_EPOCH = b"PSGE"
_PREFIX = struct.Struct("<4sBI")
#: Largest header we accept: headers carry names, flags and features, never samples.
MAX_HEADER_BYTES = 256 * 1024
#: Quality flags an epoch can carry per channel (DESIGN: missing, flat, clipped, noisy, gap), plus
#: ``band_limited``: the channel's rate is under the full rate (``psg.channels.FULL_FS``: EEG/EOG/EMG/ECG
#: under the model's 64 Hz), so it is upsampled without its high band. It describes, it does not fault.
QUALITY_FLAGS: tuple[str, ...] = ("missing", "flat", "clipped", "noisy", "gap", "band_limited")
#: Flags that describe a usable channel: a channel carrying only these is not a bad channel.
INFO_FLAGS: frozenset[str] = frozenset({"band_limited"})
#: Longest epoch a message may claim, in seconds (the alert agent allocates per-second series this long).
MAX_EPOCH_S = 3600.0
#: Largest epoch index (the store's column is a 32-bit integer; 48 h of 30-s epochs is 5760).
MAX_EPOCH = 2**31 - 1
DEVICE_EVENT_TYPES: tuple[str, ...] = ("stream_lost", "stream_resumed", "spool_overflow")
#: Epoch features that carry text (``psg.features.neuro``: the body position's name); every other feature
#: is a number or null, which the rules, captions and alerts compare and format as numbers.
TEXT_FEATURES = frozenset({"position_name"})
#: Most chunks one bundle may carry (a bed has a handful of streams; a bridge catching up a few seconds).
MAX_BUNDLE_CHUNKS = 64
#: A bed's ``origin`` (``psg.recording.ORIGIN``) as chunks and epochs carry it; absent: the source did not say.
ORIGINS: tuple[str, ...] = (SIMULATED, RECORDED)


@dataclass(frozen=True)
class SampleChunk:
    """About one second of one LSL stream of one bed: ``data`` is (channels, samples) float32.

    ``stream`` names the device stream (a bed may send several at different rates); ``seq`` counts the
    chunks of that (bed, recording, stream) from 0 so replays and duplicates are recognisable.
    ``origin`` is one of ``ORIGINS`` (simulated or recorded signals), None where the source did not say.
    """

    bed_id: str
    recording_id: str
    stream: str
    labels: tuple[str, ...]
    units: tuple[str, ...]
    fs: float
    t0: float
    seq: int
    recording_start: float
    received_at: float
    data: np.ndarray
    origin: str | None = None

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[1])

    @property
    def t_end(self) -> float:
        """Device time just after the last sample."""
        return self.t0 + self.n_samples / self.fs


@dataclass(frozen=True)
class ChunkBundle:
    """Several chunks of one bed in one message: typically each of its streams' same second.

    WHY: the per-message cost of the broker and of the consumers, not the bytes, bounds how many beds a
    box carries (one record per stream and second was 1500 records/s at 500 beds and saturated the
    broker); a bundle is one record per bed and second. Each chunk keeps its own identity (stream,
    ``seq``, times), so the epocher treats a bundle exactly as its chunks sent one by one.
    """

    bed_id: str
    chunks: tuple[SampleChunk, ...]


@dataclass(frozen=True)
class DeviceEvent:
    """A technical event from the bridge: a stream of a bed was lost or came back, or the spool overflowed."""

    bed_id: str
    recording_id: str
    stream: str
    type: Literal["stream_lost", "stream_resumed", "spool_overflow"]
    at: float
    detail: str = ""


@dataclass(frozen=True)
class EpochMessage:
    """One 30-s epoch of one bed in the model montage, with everything the captions and alerts need.

    ``signals`` is (10, 1920) float32, robust z-scored, in ``MODEL_CHANNELS`` order (zeros where a
    channel is missing); ``aux`` is (2, 30) float32 SpO2 (%) and HR (bpm) at 1 Hz in physical units
    (NaN where absent). ``quality`` maps every model and aux channel to its flags (empty list = good).
    ``features`` and ``events`` are measured at the device rates (``psg.features``, ``psg.detectors``;
    event times relative to the recording start). ``end_received_at`` is the bridge's arrival time of
    the sample that completed the epoch: the start of the end-to-end latency clock. ``origin`` is the
    bed's (``ORIGINS``, None: not said); ``stage_measurements`` an object its consumer validates, or None.
    """

    bed_id: str
    recording_id: str
    epoch: int
    start_time: float
    signals: np.ndarray
    aux: np.ndarray
    quality: dict[str, list[str]]
    features: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    end_received_at: float = 0.0
    epoch_s: float = EPOCH_S
    origin: str | None = None
    stage_measurements: dict[str, Any] | None = None


# --- binary framing -------------------------------------------------------------------------------


def _frame(magic: bytes, header: dict[str, Any], payload: bytes = b"") -> bytes:
    try:
        head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    except ValueError as exc:  # NaN/Inf in a time, rate or feature: the producer's bug, said plainly
        raise MessageError(f"message header: {exc} (write missing values as null)") from None
    return _PREFIX.pack(magic, VERSION, len(head)) + head + payload


def _unframe(raw: bytes) -> tuple[bytes, dict[str, Any], memoryview]:
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise MessageError(f"message: expected bytes, got {type(raw).__name__}")
    view = memoryview(raw)
    if len(view) < _PREFIX.size:
        raise MessageError(f"message: {len(view)} bytes is shorter than the {_PREFIX.size}-byte prefix")
    magic, version, head_len = _PREFIX.unpack_from(view)
    if magic not in (MAGIC_SAMPLES, MAGIC_BUNDLE, MAGIC_DEVICE_EVENT, MAGIC_EPOCH):
        raise MessageError(f"message: unknown magic {bytes(magic)!r}, expected PSGS, PSGB, PSGT or PSGE")
    if version != VERSION:
        raise MessageError(f"message: version {version} not supported, expected {VERSION}")
    if head_len > MAX_HEADER_BYTES or _PREFIX.size + head_len > len(view):
        raise MessageError(f"message: header length {head_len} does not fit a {len(view)}-byte message")
    header = strict_json(bytes(view[_PREFIX.size : _PREFIX.size + head_len]), "message header")
    if not isinstance(header, dict):
        raise MessageError("message header: expected a JSON object")
    return bytes(magic), header, view[_PREFIX.size + head_len :]


def _field(header: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = header.get(name)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise MessageError(f"message header field {name!r}: expected {what}, got {value!r}"[:300])
    return value


def _text(header: dict[str, Any], name: str) -> str:
    value = header.get(name)
    if type(value) is str and 0 < len(value) <= 200:  # the usual case, without the checks' calls
        return value
    value = str(_field(header, name, str, "a non-empty string"))
    if not value or len(value) > 200:
        raise MessageError(f"message header field {name!r}: expected 1-200 characters, got {len(value)}")
    return value


def _time(header: dict[str, Any], name: str) -> float:
    value = header.get(name)
    if type(value) is float and 0.0 <= value < math.inf:  # the usual case (NaN fails the comparison)
        return value
    value = float(_field(header, name, (int, float), "a number (seconds since the Unix epoch)"))
    if not math.isfinite(value) or value < 0:
        raise MessageError(f"message header field {name!r}: expected a finite time >= 0, got {value!r}")
    return value


def _origin(header: dict[str, Any]) -> str | None:
    value = header.get("origin")
    if value is not None and value not in ORIGINS:
        raise MessageError(f"message header field 'origin': expected one of {ORIGINS} or absent, got {value!r:.80}")
    return value


def _floats(payload: memoryview, shape: tuple[int, int], what: str) -> np.ndarray:
    expected = shape[0] * shape[1] * 4
    if len(payload) != expected:
        raise MessageError(f"{what}: payload is {len(payload)} bytes, expected {expected} for float32 {shape}")
    array = np.frombuffer(payload, dtype="<f4").reshape(shape).copy()
    if np.isinf(array).any():
        raise MessageError(f"{what}: infinite sample values (NaN marks a missing sample; Inf is invalid)")
    return array


# --- samples and device events (psg.samples) ------------------------------------------------------


def encode_chunk(chunk: SampleChunk) -> bytes:
    """``SampleChunk`` -> bytes (header + float32 channel-major samples)."""
    header, data = _chunk_header(chunk)
    return _frame(MAGIC_SAMPLES, header, data.tobytes())


def encode_bundle(chunks: list[SampleChunk] | tuple[SampleChunk, ...]) -> bytes:
    """Chunks of one bed -> one ``PSGB`` message (``ChunkBundle``); ``MessageError`` if they are not one bed's."""
    if not 0 < len(chunks) <= MAX_BUNDLE_CHUNKS:
        raise MessageError(f"bundle: expected 1..{MAX_BUNDLE_CHUNKS} chunks, got {len(chunks)}")
    beds = {chunk.bed_id for chunk in chunks}
    if len(beds) != 1:
        raise MessageError(f"bundle: expected chunks of one bed, got beds {sorted(beds)}")
    headers, payloads = zip(*(_chunk_header(chunk) for chunk in chunks), strict=True)
    return _frame(MAGIC_BUNDLE, {"chunks": list(headers)}, b"".join(data.tobytes() for data in payloads))


def _chunk_header(chunk: SampleChunk) -> tuple[dict[str, Any], np.ndarray]:
    data = np.ascontiguousarray(chunk.data, dtype="<f4")
    header = {
        "bed_id": chunk.bed_id,
        "recording_id": chunk.recording_id,
        "stream": chunk.stream,
        "labels": list(chunk.labels),
        "units": list(chunk.units),
        "fs": chunk.fs,
        "t0": chunk.t0,
        "seq": chunk.seq,
        "recording_start": chunk.recording_start,
        "received_at": chunk.received_at,
        "n": int(data.shape[1]),
    }
    if chunk.origin is not None:
        header["origin"] = chunk.origin
    return header, data


def encode_device_event(event: DeviceEvent) -> bytes:
    """``DeviceEvent`` -> bytes (header only)."""
    header = {
        "bed_id": event.bed_id,
        "recording_id": event.recording_id,
        "stream": event.stream,
        "type": event.type,
        "at": event.at,
        "detail": event.detail,
    }
    return _frame(MAGIC_DEVICE_EVENT, header)


def chunks_in(raw: bytes) -> int:
    """How many sample chunks a ``psg.samples`` value carries (0: a device event or not a samples message);
    reads the prefix and, for a bundle, its header only."""
    try:
        magic, header, _ = _unframe(raw)
    except MessageError:
        return 0
    if magic == MAGIC_SAMPLES:
        return 1
    if magic == MAGIC_BUNDLE and isinstance(header.get("chunks"), list):
        return len(header["chunks"])
    return 0


def decode_samples_message(raw: bytes) -> SampleChunk | ChunkBundle | DeviceEvent:
    """A ``psg.samples`` value -> ``SampleChunk``, ``ChunkBundle`` or ``DeviceEvent``; ``MessageError`` if invalid
    (a bundle is refused whole when any of its chunks is malformed)."""
    magic, header, payload = _unframe(raw)
    if magic == MAGIC_DEVICE_EVENT:
        kind = _text(header, "type")
        if kind not in DEVICE_EVENT_TYPES:
            raise MessageError(f"message header field 'type': expected one of {DEVICE_EVENT_TYPES}, got {kind!r}")
        return DeviceEvent(
            bed_id=_text(header, "bed_id"),
            recording_id=_text(header, "recording_id"),
            stream=_text(header, "stream"),
            type=kind,  # type: ignore[arg-type]
            at=_time(header, "at"),
            detail=str(header.get("detail", ""))[:500],
        )
    if magic == MAGIC_SAMPLES:
        return _chunk(header, payload, _chunk_shape(header))
    if magic == MAGIC_BUNDLE:
        return _bundle(header, payload)
    raise MessageError(f"message: magic {magic!r} is not a samples message (expected PSGS, PSGB or PSGT)")


def _bundle(header: dict[str, Any], payload: memoryview) -> ChunkBundle:
    heads = _field(header, "chunks", list, f"a list of 1..{MAX_BUNDLE_CHUNKS} chunk headers")
    if not 0 < len(heads) <= MAX_BUNDLE_CHUNKS:
        raise MessageError(
            f"bundle header field 'chunks': expected 1..{MAX_BUNDLE_CHUNKS} chunk headers, got {len(heads)}"
        )
    samples = _bundle_samples(payload)
    chunks, offset = [], 0
    for k, head in enumerate(heads):
        if not isinstance(head, dict):
            raise MessageError(f"bundle chunk {k}: expected a chunk header (JSON object), got {type(head).__name__}")
        try:
            shape = _chunk_shape(head)
            nbytes = shape[0] * shape[1] * 4
            part = payload[offset : offset + nbytes]
            data = None
            if samples is not None and len(part) == nbytes:
                data = samples[offset // 4 : (offset + nbytes) // 4].reshape(shape)
            chunks.append(_chunk(head, part, shape, data))
        except MessageError as exc:
            raise MessageError(f"bundle chunk {k}: {exc}") from None
        offset += nbytes
    if offset != len(payload):
        raise MessageError(f"bundle: payload is {len(payload)} bytes, its chunk headers account for {offset}")
    bed = chunks[0].bed_id
    for k, chunk in enumerate(chunks):
        if chunk.bed_id != bed:
            raise MessageError(
                f"bundle chunk {k} field 'bed_id': expected the bundle's bed {bed!r}, got {chunk.bed_id!r}"
            )
    return ChunkBundle(bed, tuple(chunks))


def _bundle_samples(payload: memoryview) -> np.ndarray | None:
    """A bundle's samples as one float32 copy, checked for infinite values in one pass: what ``_floats``
    does per chunk, at a third of the calls. None when the payload is not whole floats or holds an
    infinite value: each chunk's own ``_floats`` then names the problem, as it always did."""
    if len(payload) % 4:
        return None
    samples = np.frombuffer(payload, dtype="<f4")
    if np.isinf(samples).any():
        return None
    return samples.copy()


def _chunk_shape(header: dict[str, Any]) -> tuple[int, int]:
    """(channels, samples) a chunk header announces, validated (labels, units and ``n``)."""
    labels = _field(header, "labels", list, "a list of channel labels")
    units = _field(header, "units", list, "a list of units, one per label")
    if not labels or not all(isinstance(x, str) and x for x in labels):
        raise MessageError(f"message header field 'labels': expected non-empty strings, got {labels!r}"[:300])
    if len(set(labels)) != len(labels):
        raise MessageError(f"message header field 'labels': duplicate labels in {labels!r}"[:300])
    if len(units) != len(labels) or not all(isinstance(x, str) for x in units):
        raise MessageError(f"message header field 'units': expected {len(labels)} strings, got {units!r}"[:300])
    n = _field(header, "n", int, "the number of samples per channel")
    if not 0 < n <= 1_000_000:
        raise MessageError(f"message header field 'n': expected 1..1000000 samples, got {n}")
    return len(labels), n


def _chunk(
    header: dict[str, Any], payload: memoryview, shape: tuple[int, int], data: np.ndarray | None = None
) -> SampleChunk:
    """One chunk from its header, its samples and the ``shape`` its header was validated to announce
    (``data``: the samples already checked, from ``_bundle_samples``)."""
    fs = float(_field(header, "fs", (int, float), "a sampling rate in Hz"))
    if not (math.isfinite(fs) and 0 < fs <= 10_000):
        raise MessageError(f"message header field 'fs': expected 0 < fs <= 10000 Hz, got {fs!r}")
    seq = _field(header, "seq", int, "a chunk sequence number >= 0")
    if seq < 0:
        raise MessageError(f"message header field 'seq': expected >= 0, got {seq}")
    return SampleChunk(
        bed_id=_text(header, "bed_id"),
        recording_id=_text(header, "recording_id"),
        stream=_text(header, "stream"),
        labels=tuple(header["labels"]),
        units=tuple(header["units"]),
        fs=fs,
        t0=_time(header, "t0"),
        seq=seq,
        recording_start=_time(header, "recording_start"),
        received_at=_time(header, "received_at"),
        data=_floats(payload, shape, "samples") if data is None else data,
        origin=_origin(header),
    )


# --- epochs (psg.epochs) --------------------------------------------------------------------------


def encode_epoch(message: EpochMessage) -> bytes:
    """``EpochMessage`` -> bytes (header + model signals + aux channels, float32)."""
    signals = np.ascontiguousarray(message.signals, dtype="<f4")
    aux = np.ascontiguousarray(message.aux, dtype="<f4")
    if signals.shape != (len(MODEL_CHANNELS), MODEL_EPOCH_SAMPLES):
        raise MessageError(
            f"epoch signals: shape {signals.shape}, expected {(len(MODEL_CHANNELS), MODEL_EPOCH_SAMPLES)}"
        )
    header = {
        "bed_id": message.bed_id,
        "recording_id": message.recording_id,
        "epoch": message.epoch,
        "start_time": message.start_time,
        "epoch_s": message.epoch_s,
        "channels": list(MODEL_CHANNELS),
        "aux_channels": list(AUX_CHANNELS),
        "aux_n": int(aux.shape[1]),
        "quality": message.quality,
        "features": message.features,
        "events": message.events,
        "end_received_at": message.end_received_at,
    }
    for key in ("origin", "stage_measurements"):
        if getattr(message, key) is not None:
            header[key] = getattr(message, key)
    return _frame(MAGIC_EPOCH, header, signals.tobytes() + aux.tobytes())


def decode_epoch(raw: bytes) -> EpochMessage:
    """A ``psg.epochs`` value -> ``EpochMessage``; ``MessageError`` if invalid."""
    magic, header, payload = _unframe(raw)
    if magic != MAGIC_EPOCH:
        raise MessageError(f"message: magic {magic!r} is not an epoch message (expected PSGE)")
    if header.get("channels") != list(MODEL_CHANNELS):
        raise MessageError(f"message header field 'channels': expected {list(MODEL_CHANNELS)}")
    epoch = _field(header, "epoch", int, "an epoch index >= 0")
    if epoch < 0:
        raise MessageError(f"message header field 'epoch': expected >= 0, got {epoch}")
    if epoch > MAX_EPOCH:
        raise MessageError(f"message header field 'epoch': expected at most {MAX_EPOCH}, got {epoch}")
    epoch_s = float(_field(header, "epoch_s", (int, float), "the epoch length in seconds"))
    if not 0 < epoch_s <= MAX_EPOCH_S:
        raise MessageError(f"message header field 'epoch_s': expected 0 < epoch_s <= {MAX_EPOCH_S:g}, got {epoch_s!r}")
    features = _field(header, "features", dict, "an object of features")
    for name, value in features.items():
        if value is None or isinstance(value, (int, float)):
            continue
        if not (isinstance(value, str) and name in TEXT_FEATURES):  # psg.features.Feature
            allowed = "a number, string or null" if name in TEXT_FEATURES else "a number or null"
            raise MessageError(f"message header field 'features.{name[:80]}': expected {allowed}, got {value!r:.80}")
    aux_n = _field(header, "aux_n", int, "the number of aux samples")
    if not 0 < aux_n <= 10_000:
        raise MessageError(f"message header field 'aux_n': expected 1..10000, got {aux_n}")
    quality = _field(header, "quality", dict, "an object of channel -> flags")
    measured = header.get("stage_measurements")
    if measured is not None and not isinstance(measured, dict):
        raise MessageError(
            f"message header field 'stage_measurements': expected an object or null, got {measured!r:.80}"
        )
    n_signal = len(MODEL_CHANNELS) * MODEL_EPOCH_SAMPLES * 4
    if len(payload) < n_signal:
        raise MessageError(f"epoch: payload is {len(payload)} bytes, expected at least {n_signal}")
    return EpochMessage(
        bed_id=_text(header, "bed_id"),
        recording_id=_text(header, "recording_id"),
        epoch=epoch,
        start_time=_time(header, "start_time"),
        signals=_floats(payload[:n_signal], (len(MODEL_CHANNELS), MODEL_EPOCH_SAMPLES), "epoch signals"),
        aux=_floats(payload[n_signal:], (len(AUX_CHANNELS), aux_n), "epoch aux"),
        quality={str(k): [str(f) for f in v] for k, v in quality.items() if isinstance(v, list)},
        features=features,
        events=_field(header, "events", list, "a list of events"),
        end_received_at=_time(header, "end_received_at"),
        epoch_s=epoch_s,
        origin=_origin(header),
        stage_measurements=measured,
    )
