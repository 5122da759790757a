"""Fuzzing every decoder and validator a stream agent calls on a topic's bytes.

The agents' contract (``stream_agents.app``): a decoder returns a valid value or raises ``MessageError``
with a reason, which the agent dead-letters before going on; any other exception kills the agent and
stops the bed's pipeline. So for every decoder, on random bytes and on valid messages broken every way
a producer can break them (truncated, bit-flipped, header fields of the wrong type, NaN/Inf, huge or
negative numbers, wrong channel counts, payloads of the wrong size, unknown magic or version; JSON
records with fields missing, extra or wrong, non-standard tokens, deep nesting, huge strings) we check:

* the call returns or raises ``MessageError`` with a non-empty message, nothing else;
* what it accepts is valid (shapes, finite times), and what the sink accepts the store can keep and
  the alert agent can judge (the next calls on the same value, which also catch only ``MessageError``);
* a valid message survives the round trip unchanged.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from model_runtime.serving.caption_records import inference_records, waveform_preview
from model_runtime.serving.rules_runtime import RulesRuntime
from psg.alerts.facts import facts_from_record
from psg.alerts.monitor import AlertMonitor
from psg.codecs import (
    DEVICE_EVENT_TYPES,
    MAGIC_BUNDLE,
    MAGIC_DEVICE_EVENT,
    MAGIC_EPOCH,
    MAGIC_SAMPLES,
    QUALITY_FLAGS,
    TEXT_FEATURES,
    VERSION,
    ChunkBundle,
    DeviceEvent,
    EpochMessage,
    SampleChunk,
    decode_epoch,
    decode_samples_message,
    encode_bundle,
    encode_chunk,
    encode_device_event,
    encode_epoch,
)
from psg.contracts import CAPTION_LEVELS, CAPTION_REQUIRED
from psg.errors import MessageError
from psg.json_codec import decode_json, encode_json
from psg.montage import AUX_CHANNELS, MODEL_CHANNELS, MODEL_EPOCH_SAMPLES
from store import Store
from store.records import alert_event_row, device_event_row
from store.store import caption_values
from stream_agents.app import _alert_record, _caption_record
from tests.fuzz.hostile import (
    FUZZ,
    RAW_TOKENS,
    delete_path,
    expect_value_or_message_error,
    field_values,
    hostile_values,
    render_json,
    set_path,
)

_PREFIX = struct.Struct("<4sBI")
DECODERS = (decode_samples_message, decode_epoch, decode_json, _caption_record, _alert_record)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One SQLite store for the module: what a validator accepts must be storable (the sink's next call)."""
    path: Path = tmp_path_factory.mktemp("fuzz-store") / "store.db"
    with Store(f"sqlite:///{path}") as opened:
        yield opened


# --- strategies of valid messages -----------------------------------------------------------------

ids = st.text(min_size=1, max_size=40).filter(lambda s: s.strip())
times = st.floats(min_value=0, max_value=4e9, allow_nan=False)


@st.composite
def sample_chunks(draw: st.DrawFn) -> SampleChunk:
    """Any valid chunk: 1-4 uniquely named channels, a rate in (0, 10000] Hz, finite or NaN samples."""
    n_channels = draw(st.integers(1, 4))
    labels = draw(st.lists(st.text(min_size=1, max_size=12), min_size=n_channels, max_size=n_channels, unique=True))
    units = draw(st.lists(st.text(max_size=6), min_size=n_channels, max_size=n_channels))
    n = draw(st.integers(1, 40))
    data = draw(arrays(np.float32, (n_channels, n), elements=st.floats(width=32, allow_infinity=False)))
    return SampleChunk(
        bed_id=draw(ids),
        recording_id=draw(ids),
        stream=draw(ids),
        labels=tuple(labels),
        units=tuple(units),
        fs=draw(st.floats(min_value=1e-3, max_value=10_000)),
        t0=draw(times),
        seq=draw(st.integers(0, 2**53)),
        recording_start=draw(times),
        received_at=draw(times),
        data=data,
    )


device_events = st.builds(
    DeviceEvent,
    bed_id=ids,
    recording_id=ids,
    stream=ids,
    type=st.sampled_from(DEVICE_EVENT_TYPES),
    at=times,
    detail=st.text(max_size=60),
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
number_features = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False)
)
detector_events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["obstructive_apnea", "hypopnea", "desaturation", "signal_loss", "asystole"]),
        "onset_s": st.floats(0, 1e5),
        "duration_s": st.floats(0, 600),
        "channel": st.one_of(st.none(), st.sampled_from(MODEL_CHANNELS)),
    }
)


@st.composite
def epoch_messages(draw: st.DrawFn) -> EpochMessage:
    """Any valid epoch: random signals (by seed: hypothesis arrays of 19200 values are slow), NaN aux."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    aux_n = draw(st.integers(1, 60))
    aux = rng.uniform(40, 100, (len(AUX_CHANNELS), aux_n)).astype(np.float32)
    aux[:, : draw(st.integers(0, aux_n))] = np.nan
    labels = list(MODEL_CHANNELS + AUX_CHANNELS)
    return EpochMessage(
        bed_id=draw(ids),
        recording_id=draw(ids),
        epoch=draw(st.integers(0, 5760)),
        start_time=draw(times),
        signals=rng.standard_normal((len(MODEL_CHANNELS), MODEL_EPOCH_SAMPLES)).astype(np.float32),
        aux=aux,
        quality={label: draw(st.lists(st.sampled_from(QUALITY_FLAGS), max_size=2, unique=True)) for label in labels},
        features={
            **draw(
                st.dictionaries(
                    st.text(max_size=10).filter(lambda k: k not in TEXT_FEATURES), number_features, max_size=6
                )
            ),
            **draw(st.dictionaries(st.sampled_from(sorted(TEXT_FEATURES)), st.text(max_size=12))),
        },
        events=draw(st.lists(detector_events, max_size=3)),
        end_received_at=draw(times),
    )


def _stage_text(epoch: int) -> dict[str, str]:
    return {m: f"{m} caption of epoch {epoch}" for m in CAPTION_LEVELS}


@st.composite
def caption_records(draw: st.DrawFn) -> dict[str, Any]:
    """A valid ``sleep.captions`` record as the inference agent writes it (aux, waveform, embedding included)."""
    epoch = draw(st.integers(0, 5760))
    start = draw(st.floats(1.6e9, 1.8e9))
    signals = np.random.default_rng(epoch).standard_normal((len(MODEL_CHANNELS), MODEL_EPOCH_SAMPLES))
    return {
        "schema": 1,
        "bed_id": draw(ids),
        "recording_id": draw(ids),
        "epoch": epoch,
        "start_time": start + 30.0 * epoch,
        "epoch_s": 30.0,
        "stage": draw(st.sampled_from(["W", "N1", "N2", "N3", "R", "?"])),
        "stage_source": draw(st.sampled_from(["rules", "model", None])),
        "probabilities": draw(st.one_of(st.none(), st.lists(st.floats(0, 1), min_size=5, max_size=5))),
        "captions": _stage_text(epoch),
        "features": draw(st.dictionaries(st.text(max_size=10), json_scalars, max_size=5)),
        "quality": {label: draw(st.lists(st.sampled_from(QUALITY_FLAGS), max_size=2)) for label in MODEL_CHANNELS},
        "events": draw(st.lists(detector_events, max_size=3)),
        "advisories": draw(
            st.lists(st.fixed_dictionaries({"type": st.text(max_size=8), "score": st.floats(0, 1)}), max_size=2)
        ),
        "end_received_at": start + 30.0 * epoch + 31.0,
        "runtime": "rules",
        "aux": {
            "spo2": draw(st.lists(st.one_of(st.none(), st.floats(50, 100)), min_size=30, max_size=30)),
            "hr": draw(st.lists(st.one_of(st.none(), st.floats(20, 200)), min_size=30, max_size=30)),
        },
        "embedding": draw(st.one_of(st.none(), st.lists(st.floats(-1, 1), min_size=8, max_size=8))),
        "waveform": draw(st.one_of(st.none(), st.just(waveform_preview(signals, 8.0)))),
    }


@st.composite
def alert_records(draw: st.DrawFn) -> dict[str, Any]:
    """A valid ``sleep.alerts`` record of kind "alert", its transition's time set."""
    kind = draw(st.sampled_from(["raised", "updated", "acknowledged", "escalated", "resolved"]))
    bed, raised = draw(ids), draw(st.floats(1.6e9, 1.8e9))
    later = raised + draw(st.floats(0, 3600))
    return {
        "schema": 1,
        "kind": "alert",
        "event": kind,
        "bed_id": bed,
        "alert": {
            "id": f"{bed}:spo2_critical:{int(raised)}",
            "bed_id": bed,
            "recording_id": draw(ids),
            "type": "spo2_critical",
            "priority": draw(st.sampled_from(["high", "medium", "low", "advisory"])),
            "state": {"acknowledged": "acknowledged", "resolved": "resolved"}.get(kind, "raised"),
            "raised_at": raised,
            "updated_at": later,
            "evidence": {"start": raised - 15, "end": raised, "count": 1, "values": {"min_spo2": 77.0}},
            "escalated": kind == "escalated",
            "escalated_at": later if kind == "escalated" else None,
            "acknowledged_by": "nurse-1" if kind == "acknowledged" else None,
            "acknowledged_at": later if kind == "acknowledged" else None,
            "resolved_at": later if kind == "resolved" else None,
            "audit": [],
        },
    }


@st.composite
def technical_records(draw: st.DrawFn) -> dict[str, Any]:
    """A valid ``sleep.alerts`` record of kind "technical" (what ``_technical_alert`` writes)."""
    event = draw(device_events)
    return {
        "schema": 1,
        "kind": "technical",
        "bed_id": event.bed_id,
        "recording_id": event.recording_id,
        "stream": event.stream,
        "type": event.type,
        "at": event.at,
        "detail": event.detail,
    }


# --- helpers ----------------------------------------------------------------------------------------


def frame(
    magic: bytes, header: Any, payload: bytes = b"", version: int = VERSION, head_len: int | None = None
) -> bytes:
    """A binary message from its parts; ``header`` is rendered with ``render_json`` unless it is bytes."""
    head = header if isinstance(header, bytes) else render_json(header)
    return _PREFIX.pack(magic, version, len(head) if head_len is None else head_len) + head + payload


def split(raw: bytes) -> tuple[bytes, dict[str, Any], bytes]:
    """(magic, header, payload) of a message we framed ourselves."""
    magic, _, head_len = _PREFIX.unpack_from(raw)
    end = _PREFIX.size + head_len
    return magic, json.loads(raw[_PREFIX.size : end]), raw[end:]


def assert_valid_chunk(value: SampleChunk | ChunkBundle | DeviceEvent) -> None:
    """What the epocher relies on in an accepted ``psg.samples`` value."""
    if isinstance(value, ChunkBundle):
        assert 1 <= len(value.chunks) <= 64 and all(c.bed_id == value.bed_id for c in value.chunks)
        for chunk in value.chunks:
            assert_valid_chunk(chunk)
        return
    if isinstance(value, DeviceEvent):
        assert value.type in DEVICE_EVENT_TYPES and math.isfinite(value.at) and value.at >= 0
        return
    assert value.data.dtype == np.float32 and value.data.shape == (len(value.labels), value.n_samples)
    assert not np.isinf(value.data).any()
    assert len(value.units) == len(value.labels) == len(set(value.labels)) >= 1
    assert math.isfinite(value.fs) and 0 < value.fs <= 10_000 and value.seq >= 0
    for t in (value.t0, value.recording_start, value.received_at):
        assert math.isfinite(t) and t >= 0
    assert all(isinstance(s, str) and s for s in (value.bed_id, value.recording_id, value.stream))


def assert_valid_epoch(value: EpochMessage) -> None:
    """What the inference agent relies on in an accepted ``psg.epochs`` value."""
    assert value.signals.shape == (len(MODEL_CHANNELS), MODEL_EPOCH_SAMPLES) and value.signals.dtype == np.float32
    assert value.aux.shape[0] == len(AUX_CHANNELS) and value.aux.dtype == np.float32
    assert not np.isinf(value.signals).any() and not np.isinf(value.aux).any()
    assert isinstance(value.epoch, int) and value.epoch >= 0
    for t in (value.start_time, value.end_received_at):
        assert math.isfinite(t) and t >= 0
    assert math.isfinite(value.epoch_s) and value.epoch_s > 0
    assert isinstance(value.features, dict) and isinstance(value.events, list)


def assert_same_chunk(a: SampleChunk, b: SampleChunk) -> None:
    for name in (
        "bed_id",
        "recording_id",
        "stream",
        "labels",
        "units",
        "fs",
        "t0",
        "seq",
        "recording_start",
        "received_at",
    ):
        assert getattr(a, name) == getattr(b, name), name
    np.testing.assert_array_equal(a.data, b.data)


def sink_and_alerts(record: dict[str, Any], store: Store) -> None:
    """What happens to a caption record the sink accepted: stored, read back, judged by the alert agent.

    The sink calls ``insert_epochs`` without catching anything (the record was validated), and the alert
    agent catches only ``MessageError`` around ``AlertMonitor.caption``."""
    store.insert_epochs([record])
    bed, recording = record["bed_id"], record["recording_id"]
    store.epochs(bed, recording_id=recording)
    store.hypnogram(bed, recording_id=recording)
    store.night_events(bed, recording)
    store.waveform(bed)
    expect_value_or_message_error(facts_from_record, record)
    expect_value_or_message_error(AlertMonitor().caption, record)


# --- random bytes -----------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_are_values_or_message_errors(raw: bytes) -> None:
    for decode in DECODERS:
        expect_value_or_message_error(decode, raw)


@FUZZ
@given(
    magic=st.one_of(
        st.sampled_from([MAGIC_SAMPLES, MAGIC_BUNDLE, MAGIC_DEVICE_EVENT, MAGIC_EPOCH]),
        st.binary(min_size=4, max_size=4),
    ),
    version=st.one_of(st.just(VERSION), st.integers(0, 255)),
    header=st.one_of(
        hostile_values,
        st.dictionaries(st.sampled_from(["bed_id", "labels", "fs", "n", "epoch", "chunks"]), field_values),
    ),
    head_len=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    payload=st.binary(max_size=256),
)
def test_random_frames_are_values_or_message_errors(
    magic: bytes, version: int, header: Any, head_len: int | None, payload: bytes
) -> None:
    """A plausible prefix (known or unknown magic and version, any header length) before any header."""
    raw = frame(magic, header, payload, version=version, head_len=head_len)
    for decode in (decode_samples_message, decode_epoch):
        expect_value_or_message_error(decode, raw)


@pytest.mark.parametrize(
    "token", [RAW_TOKENS[k] for k in sorted(RAW_TOKENS)], ids=[k.strip("@") for k in sorted(RAW_TOKENS)]
)
def test_raw_tokens_as_headers_and_records(token: str) -> None:
    """Each raw token as a whole header / record and as a field: deep nesting, 5000-digit integers, NaN."""
    for magic in (MAGIC_SAMPLES, MAGIC_BUNDLE, MAGIC_DEVICE_EVENT, MAGIC_EPOCH):
        for head in (
            token.encode(),
            f'{{"bed_id":{token},"fs":{token},"epoch":{token},"chunks":{token}}}'.encode(),
            f'{{"chunks":[{token}]}}'.encode(),
        ):
            for decode in (decode_samples_message, decode_epoch):
                expect_value_or_message_error(decode, frame(magic, head))
    for raw in (token.encode(), f'{{"schema":1,"kind":"alert","bed_id":{token}}}'.encode()):
        for decode in (decode_json, _caption_record, _alert_record):
            expect_value_or_message_error(decode, raw)


# --- psg.samples: chunks and device events ------------------------------------------------------------


@FUZZ
@given(sample_chunks())
def test_chunk_round_trip(chunk: SampleChunk) -> None:
    back = decode_samples_message(encode_chunk(chunk))
    assert isinstance(back, SampleChunk)
    assert_same_chunk(back, chunk)


@FUZZ
@given(device_events)
def test_device_event_round_trip(event: DeviceEvent) -> None:
    assert decode_samples_message(encode_device_event(event)) == event


def test_every_truncation_of_valid_messages_is_refused() -> None:
    """Every proper prefix of a chunk, a device event and an epoch (not hypothesis: the lengths are few).

    Every length through the prefix, the header and the first payload bytes; in an epoch's 77-kB payload,
    where every cut fails the same size check, every 61st length and the last 16."""
    rng = np.random.default_rng(0)
    chunk = SampleChunk(
        "bed-1",
        "rec-1",
        "exg",
        ("ECG", "EEG C3-A2"),
        ("mV", "uV"),
        256.0,
        1.7e9,
        3,
        1.7e9 - 3,
        1.7e9 + 1,
        rng.standard_normal((2, 32)).astype(np.float32),
    )
    event = DeviceEvent("bed-1", "rec-1", "exg", "stream_lost", 1.7e9, "no samples for 5 s")
    epoch = EpochMessage(
        "bed-1",
        "rec-1",
        4,
        1.7e9 + 120,
        rng.standard_normal((10, 1920)).astype(np.float32),
        np.full((2, 30), np.nan, np.float32),
        {"ECG": ["gap"]},
        {"hr_bpm": 61.0},
        [],
        1.7e9 + 151,
    )
    aux = SampleChunk(
        "bed-1",
        "rec-1",
        "aux",
        ("SpO2",),
        ("%",),
        1.0,
        1.7e9,
        3,
        1.7e9 - 3,
        1.7e9 + 1,
        np.full((1, 1), 97.0, np.float32),
    )
    for raw, decode in (
        (encode_chunk(chunk), decode_samples_message),
        (encode_bundle([chunk, aux]), decode_samples_message),
        (encode_device_event(event), decode_samples_message),
        (encode_epoch(epoch), decode_epoch),
    ):
        _, _, payload = split(raw)
        body = len(raw) - len(payload) + 16
        lengths = [*range(min(body, len(raw))), *range(body, len(raw) - 16, 61), *range(len(raw) - 16, len(raw))]
        for length in sorted(set(lengths)):
            value = expect_value_or_message_error(decode, raw[:length])
            assert value is None, f"{decode.__name__} accepted {length} of {len(raw)} bytes"
        if not payload:  # a device event is all header: the whole message decodes, no prefix does
            assert decode(raw) == event


@FUZZ
@given(sample_chunks(), st.lists(st.integers(0, 2**20), min_size=1, max_size=8))
def test_bit_flipped_chunks(chunk: SampleChunk, bits: list[int]) -> None:
    raw = bytearray(encode_chunk(chunk))
    for bit in bits:
        raw[(bit // 8) % len(raw)] ^= 1 << (bit % 8)
    value = expect_value_or_message_error(decode_samples_message, bytes(raw))
    if value is not None:
        assert_valid_chunk(value)


CHUNK_FIELDS = (
    "bed_id",
    "recording_id",
    "stream",
    "labels",
    "units",
    "fs",
    "t0",
    "seq",
    "recording_start",
    "received_at",
    "n",
)


@st.composite
def chunk_bundles(draw: st.DrawFn) -> list[SampleChunk]:
    """1-5 valid chunks of one bed (a bundle's content)."""
    bed = draw(ids)
    return [
        SampleChunk(**{**c.__dict__, "bed_id": bed}) for c in draw(st.lists(sample_chunks(), min_size=1, max_size=5))
    ]


@FUZZ
@given(chunk_bundles())
def test_bundle_round_trip(chunks: list[SampleChunk]) -> None:
    back = decode_samples_message(encode_bundle(chunks))
    assert isinstance(back, ChunkBundle) and back.bed_id == chunks[0].bed_id and len(back.chunks) == len(chunks)
    for got, want in zip(back.chunks, chunks, strict=True):
        assert_same_chunk(got, want)


@FUZZ
@given(chunk_bundles(), st.integers(0, 4), st.sampled_from(CHUNK_FIELDS), field_values, st.booleans())
def test_bundle_chunk_fields_replaced_or_missing(
    chunks: list[SampleChunk], which: int, name: str, value: Any, delete: bool
) -> None:
    """A field of one chunk of a bundle wrong or missing (its bed too): refused whole, naming the chunk."""
    magic, header, payload = split(encode_bundle(chunks))
    path = ("chunks", which % len(chunks), name)
    header = delete_path(header, path) if delete else set_path(header, path, value)
    decoded = expect_value_or_message_error(decode_samples_message, frame(magic, header, payload))
    if decoded is not None:
        assert_valid_chunk(decoded)


@FUZZ
@given(chunk_bundles(), st.integers(-64, 64), st.sampled_from(["n", "payload", "chunks"]), st.integers(0, 4))
def test_bundle_shape_mismatches(chunks: list[SampleChunk], samples: int, what: str, which: int) -> None:
    """Sample counts, payload sizes and chunk lists that disagree with each other."""
    magic, header, payload = split(encode_bundle(chunks))
    if what == "n":
        header["chunks"][which % len(chunks)]["n"] += samples
    elif what == "payload":
        payload = payload[: max(0, len(payload) + 4 * samples)] if samples < 0 else payload + b"\0" * samples
    else:
        header["chunks"] = header["chunks"][: which % len(chunks)] if samples < 0 else header["chunks"] * 13
    decoded = expect_value_or_message_error(decode_samples_message, frame(magic, header, payload))
    if decoded is not None:
        assert_valid_chunk(decoded)
        assert sum(c.data.size for c in decoded.chunks) * 4 == len(payload)


def test_a_bundle_of_two_beds_is_refused_naming_the_chunk() -> None:
    a = SampleChunk("bed-1", "rec-1", "exg", ("ECG",), ("mV",), 256.0, 1.7e9, 0, 1.7e9, 1.7e9, np.zeros((1, 4), "f4"))
    b = SampleChunk(**{**a.__dict__, "bed_id": "bed-2", "stream": "aux"})
    with pytest.raises(MessageError, match="bed"):
        encode_bundle([a, b])
    magic, header, payload = split(encode_bundle([a, SampleChunk(**{**b.__dict__, "bed_id": "bed-1"})]))
    header["chunks"][1]["bed_id"] = "bed-2"
    with pytest.raises(MessageError, match="bundle chunk 1 field 'bed_id'"):
        decode_samples_message(frame(magic, header, payload))


@FUZZ
@given(sample_chunks(), st.sampled_from(CHUNK_FIELDS), field_values, st.booleans())
def test_chunk_header_fields_replaced_or_missing(chunk: SampleChunk, name: str, value: Any, delete: bool) -> None:
    """Every header field wrong: wrong type, NaN/Inf tokens, huge or negative numbers, or missing."""
    magic, header, payload = split(encode_chunk(chunk))
    header = delete_path(header, (name,)) if delete else set_path(header, (name,), value)
    decoded = expect_value_or_message_error(decode_samples_message, frame(magic, header, payload))
    if decoded is not None:
        assert_valid_chunk(decoded)


@FUZZ
@given(
    sample_chunks(),
    st.integers(-3, 3).filter(bool),
    st.integers(-64, 64),
    st.sampled_from(["labels", "n", "payload"]),
)
def test_chunk_shape_mismatches(chunk: SampleChunk, channels: int, samples: int, what: str) -> None:
    """Channel counts, sample counts and payload sizes that disagree with each other."""
    magic, header, payload = split(encode_chunk(chunk))
    if what == "labels":
        count = max(0, len(chunk.labels) + channels)
        header["labels"] = [f"ch{i}" for i in range(count)]
        header["units"] = ["uV"] * count
    elif what == "n":
        header["n"] = chunk.n_samples + samples
    else:
        payload = payload[: max(0, len(payload) + 4 * samples)] if samples < 0 else payload + b"\0" * samples
    decoded = expect_value_or_message_error(decode_samples_message, frame(magic, header, payload))
    if decoded is not None:
        assert_valid_chunk(decoded)
        assert decoded.data.size * 4 == len(payload)


@FUZZ
@given(sample_chunks(), st.sampled_from([np.nan, np.inf, -np.inf]), st.data())
def test_nan_samples_pass_and_infinite_samples_are_refused(chunk: SampleChunk, bad: float, data: st.DataObject) -> None:
    values = chunk.data.copy()
    values.flat[data.draw(st.integers(0, values.size - 1))] = bad
    decoded = expect_value_or_message_error(
        decode_samples_message, encode_chunk(SampleChunk(**{**vars(chunk), "data": values}))
    )
    assert (decoded is None) == bool(np.isinf(bad))


@FUZZ
@given(
    device_events,
    st.sampled_from(["bed_id", "recording_id", "stream", "type", "at", "detail"]),
    field_values,
    st.booleans(),
)
def test_device_event_fields_replaced_or_missing(event: DeviceEvent, name: str, value: Any, delete: bool) -> None:
    magic, header, _ = split(encode_device_event(event))
    header = delete_path(header, (name,)) if delete else set_path(header, (name,), value)
    decoded = expect_value_or_message_error(decode_samples_message, frame(magic, header))
    if decoded is not None:
        assert_valid_chunk(decoded)


# --- psg.epochs ---------------------------------------------------------------------------------------


@FUZZ
@given(epoch_messages())
def test_epoch_round_trip(epoch: EpochMessage) -> None:
    back = decode_epoch(encode_epoch(epoch))
    for name in (
        "bed_id",
        "recording_id",
        "epoch",
        "start_time",
        "quality",
        "features",
        "events",
        "end_received_at",
        "epoch_s",
    ):
        assert getattr(back, name) == getattr(epoch, name), name
    np.testing.assert_array_equal(back.signals, epoch.signals)
    np.testing.assert_array_equal(back.aux, epoch.aux)


EPOCH_FIELDS = (
    "bed_id",
    "recording_id",
    "epoch",
    "start_time",
    "epoch_s",
    "channels",
    "aux_channels",
    "aux_n",
    "quality",
    "features",
    "events",
    "end_received_at",
)


@FUZZ
@given(epoch_messages(), st.sampled_from(EPOCH_FIELDS), field_values, st.booleans())
def test_epoch_header_fields_replaced_or_missing(epoch: EpochMessage, name: str, value: Any, delete: bool) -> None:
    magic, header, payload = split(encode_epoch(epoch))
    header = delete_path(header, (name,)) if delete else set_path(header, (name,), value)
    decoded = expect_value_or_message_error(decode_epoch, frame(magic, header, payload))
    if decoded is not None:
        assert_valid_epoch(decoded)
        inference_records(RulesRuntime(), [decoded])  # the inference agent's next call, with the rules runtime


@FUZZ
@given(epoch_messages(), st.integers(-2 * 1920 * 4, 64), st.integers(0, 2**24), st.booleans())
def test_epoch_payload_sizes_and_bit_flips(epoch: EpochMessage, resize: int, bit: int, flip: bool) -> None:
    raw = bytearray(encode_epoch(epoch))
    if flip:
        raw[(bit // 8) % len(raw)] ^= 1 << (bit % 8)
    raw = raw[: len(raw) + resize] if resize < 0 else raw + bytes(resize)
    decoded = expect_value_or_message_error(decode_epoch, bytes(raw))
    if decoded is not None:
        assert_valid_epoch(decoded)
        inference_records(RulesRuntime(), [decoded])


@FUZZ
@given(epoch_messages(), st.sampled_from([np.inf, -np.inf, np.nan]), st.booleans())
def test_epoch_infinite_values_are_refused(epoch: EpochMessage, bad: float, in_aux: bool) -> None:
    signals, aux = epoch.signals.copy(), epoch.aux.copy()
    (aux if in_aux else signals).flat[7 % (aux if in_aux else signals).size] = bad
    message = EpochMessage(**{**vars(epoch), "signals": signals, "aux": aux})
    decoded = expect_value_or_message_error(decode_epoch, encode_epoch(message))
    assert (decoded is None) == bool(np.isinf(bad))


# --- JSON records: sleep.captions, sleep.alerts -------------------------------------------------------


@FUZZ
@given(st.one_of(caption_records(), alert_records(), technical_records()))
def test_json_round_trip(record: dict[str, Any]) -> None:
    fields = {k: v for k, v in record.items() if k != "schema"}
    assert decode_json(encode_json(fields), tuple(fields)) == record


@FUZZ
@given(st.dictionaries(st.text(max_size=10), field_values, max_size=8), st.sampled_from(["dict", "raw"]))
def test_random_json_objects(record: dict[str, Any], how: str) -> None:
    """Random objects, with and without a valid schema version, through every JSON decoder."""
    record = {"schema": 1, **record} if how == "dict" else record
    raw = render_json(record)
    for decode in (lambda r: decode_json(r, CAPTION_REQUIRED), _caption_record, _alert_record):
        expect_value_or_message_error(decode, raw)


CAPTION_PATHS: tuple[tuple[str, ...], ...] = (
    *((name,) for name in CAPTION_REQUIRED),
    ("schema",),
    ("epoch_s",),
    ("stage_source",),
    ("probabilities",),
    ("features",),
    ("quality",),
    ("events",),
    ("advisories",),
    ("runtime",),
    ("aux",),
    ("embedding",),
    ("waveform",),
    ("unknown_extra_field",),
    *(("captions", m) for m in CAPTION_LEVELS),
    ("quality", "ECG"),
    ("features", "hr_bpm"),
    ("aux", "spo2"),
    ("aux", "hr"),
    ("waveform", "fs"),
    ("waveform", "channels"),
    ("waveform", "data_b64"),
)


@FUZZ
@given(caption_records(), st.sampled_from(CAPTION_PATHS), field_values, st.sampled_from(["set", "delete", "item"]))
def test_caption_records_with_fields_wrong(
    store: Store, record: dict[str, Any], path: tuple[str, ...], value: Any, how: str
) -> None:
    """The sink's and alert agent's decoder on a record with one field missing, extra or wrong.

    ``item`` puts the value inside a list field (an event, an advisory, an aux value, an embedding value)."""
    if how == "delete":
        record = delete_path(record, path)
    elif how == "item" and isinstance(record.get(path[0]), list | dict):
        container = record[path[0]]
        if isinstance(container, dict):
            record = set_path(record, path, [value])
        else:
            record = set_path(record, path[:1], [*container[:1], value])
    else:
        record = set_path(record, path, value)
    accepted = expect_value_or_message_error(_caption_record, render_json(record))
    event("accepted" if accepted is not None else "refused")
    if accepted is not None:
        sink_and_alerts(accepted, store)


@FUZZ
@given(
    caption_records(),
    st.sampled_from(["onset_s", "duration_s", "type", "channel"]),
    field_values,
    st.sampled_from(["event", "field"]),
)
def test_caption_records_with_malformed_events(
    store: Store, record: dict[str, Any], name: str, value: Any, how: str
) -> None:
    """Detector events that are not objects, or whose type/onset/duration are wrong: the store's night
    timeline and the alert engine read every event."""
    good = {"type": "obstructive_apnea", "onset_s": 3.0, "duration_s": 12.0, "channel": None}
    record["events"] = [value] if how == "event" else [{**good, name: value}]
    accepted = expect_value_or_message_error(_caption_record, render_json(record))
    event("accepted" if accepted is not None else "refused")
    if accepted is not None:
        sink_and_alerts(accepted, store)


@FUZZ
@given(caption_records(), st.sampled_from(CAPTION_PATHS), hostile_values)
def test_caption_validators_on_python_values(
    store: Store, record: dict[str, Any], path: tuple[str, ...], value: Any
) -> None:
    """``caption_values`` called directly (as ``Store.insert_epochs`` is), with Python NaN, huge ints and
    lone surrogates that JSON would not carry; what it accepts must be storable."""
    record = set_path(record, path, value)
    accepted = expect_value_or_message_error(caption_values, record) is not None
    event("accepted" if accepted else "refused")
    if accepted:
        sink_and_alerts(record, store)


@FUZZ
@given(hostile_values)
def test_validators_on_non_records(value: Any) -> None:
    for validate in (caption_values, alert_event_row, device_event_row):
        expect_value_or_message_error(validate, value)


ALERT_PATHS: tuple[tuple[str, ...], ...] = (
    ("kind",),
    ("event",),
    ("bed_id",),
    ("alert",),
    ("schema",),
    *(
        ("alert", name)
        for name in (
            "id",
            "bed_id",
            "recording_id",
            "type",
            "priority",
            "state",
            "raised_at",
            "updated_at",
            "evidence",
            "escalated",
            "escalated_at",
            "acknowledged_by",
            "acknowledged_at",
            "resolved_at",
        )
    ),
)
TECHNICAL_PATHS: tuple[tuple[str, ...], ...] = tuple(
    (name,) for name in ("kind", "bed_id", "recording_id", "stream", "type", "at", "detail", "schema")
)


@FUZZ
@given(
    st.one_of(
        st.tuples(alert_records(), st.sampled_from(ALERT_PATHS)),
        st.tuples(technical_records(), st.sampled_from(TECHNICAL_PATHS)),
    ),
    field_values,
    st.booleans(),
)
def test_alert_records_with_fields_wrong(
    store: Store, record_path: tuple[dict[str, Any], tuple[str, ...]], value: Any, delete: bool
) -> None:
    """The alert sink's decoder; what it accepts is stored (``apply_alert_events``, ``insert_device_events``)
    and a technical event reaches the alert monitor, which may refuse it only with ``MessageError``."""
    record, path = record_path
    record = delete_path(record, path) if delete else set_path(record, path, value)
    accepted = expect_value_or_message_error(_alert_record, render_json(record))
    event("accepted" if accepted is not None else "refused")
    if accepted is None:
        return
    if accepted["kind"] == "alert":
        store.apply_alert_events([accepted])
        store.alerts("all", bed_id=accepted["bed_id"])
    else:
        store.insert_device_events([accepted])
        expect_value_or_message_error(AlertMonitor().device, accepted)


@FUZZ
@given(
    st.one_of(alert_records(), technical_records()),
    st.sampled_from([k for k in (*(p[-1] for p in ALERT_PATHS), "at") if k not in ("alert", "kind", "schema")]),
    hostile_values,
)
def test_alert_validators_on_python_values(store: Store, record: dict[str, Any], name: str, value: Any) -> None:
    """``alert_event_row``/``device_event_row`` directly, with values JSON would not carry (NaN, lone
    surrogates, huge ints): what they accept the store keeps."""
    if record["kind"] == "alert":
        record = set_path(record, ("alert", name), value)
        if expect_value_or_message_error(alert_event_row, record) is not None:
            store.apply_alert_events([record])
    else:
        record = set_path(record, (name,), value)
        if expect_value_or_message_error(device_event_row, record) is not None:
            store.insert_device_events([record])


def test_waveform_and_embedding_edge_cases(store: Store) -> None:
    """Hand-picked values near the limits the random search rarely hits."""
    record = {
        "schema": 1,
        "bed_id": "bed-w",
        "recording_id": "rec-w",
        "epoch": 0,
        "start_time": 1.7e9,
        "epoch_s": 30.0,
        "stage": "W",
        "captions": _stage_text(0),
        "end_received_at": 1.7e9 + 31,
    }
    cases = [
        {"waveform": {"fs": 8.0, "channels": ["ECG"], "data_b64": base64.b64encode(b"\0\0" * 3).decode()}},
        {"waveform": {"fs": 8.0, "channels": ["ECG", "AF"], "data_b64": base64.b64encode(b"\0" * 6).decode()}},
        {"waveform": {"fs": 8.0, "channels": ["ECG"], "data_b64": "!!not base64!!"}},
        {"waveform": {"fs": 8.0, "channels": ["ECG"], "data_b64": ""}},
        {"embedding": []},
        {"embedding": [0.0] * 2049},
        {"embedding": [1e39]},  # finite as a float64, infinite as the float32 the store keeps
        {"aux": {"spo2": [1e308] * 30}},
        {"aux": {"spo2": "97"}},
        {"aux": []},
    ]
    for extra in cases:
        accepted = expect_value_or_message_error(_caption_record, render_json({**record, **extra}))
        if accepted is not None:
            sink_and_alerts(accepted, store)


# --- every field with every hostile scalar (deterministic grids) ---------------------------------------
#
# Random search draws a given (field, value) pair rarely: a lone surrogate in bed_id, say, in maybe one run
# of ten. These grids try each pair once, in a few seconds, so the regressions they found stay covered.

SCALARS: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    2**31,
    2**63,
    10**400,
    -(10**400),
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    1e10,
    -1e-300,
    "",
    " ",
    "\x00",
    "\ud800",
    "x" * 5_000,
    [],
    {},
    [None],
    {"a": None},
)
#: A real epoch's features (``psg.features``): the rules runtime reads these names.
REAL_FEATURES: dict[str, Any] = {
    **{f"{side}_{band}": 0.2 for side in ("c3", "c4") for band in ("delta", "theta", "alpha", "sigma", "beta")},
    "c3_slow_wave_pct": 0.45,
    "c4_slow_wave_pct": 0.4,
    "eog_slow_power": 12.0,
    "eog_rapid_power": 3.0,
    "eog_lr_correlation": -0.6,
    "emg_tone_uv": 8.0,
    "emg_median_freq_hz": 60.0,
    "position": 2,
    "position_name": "supine",
    "hr_bpm": 61.0,
    "hr_min_bpm": 55.0,
    "hr_max_bpm": 70.0,
    "rmssd_ms": 40.0,
    "n_beats": 30.0,
    "resp_rate_bpm": 14.0,
    "resp_rate_abd_bpm": 14.0,
    "resp_rate_thx_bpm": 14.0,
    "resp_rate_af_bpm": 14.0,
    "flow_amplitude": 1.0,
    "flow_flatness": 0.3,
    "spo2_mean": 95.0,
    "spo2_min": 93.0,
    "spo2_trend": 0.0,
}


def base_caption_record() -> dict[str, Any]:
    """A fixed valid caption record with every optional field present."""
    signals = np.random.default_rng(1).standard_normal((len(MODEL_CHANNELS), MODEL_EPOCH_SAMPLES))
    return {
        "schema": 1,
        "bed_id": "bed-grid",
        "recording_id": "rec-grid",
        "epoch": 2,
        "start_time": 1.7e9 + 60,
        "epoch_s": 30.0,
        "stage": "N2",
        "stage_source": "rules",
        "probabilities": [0.1, 0.1, 0.6, 0.1, 0.1],
        "captions": _stage_text(2),
        "features": dict(REAL_FEATURES),
        "quality": {"ECG": [], "AF": ["flat"]},
        "events": [{"type": "obstructive_apnea", "onset_s": 63.0, "duration_s": 12.0, "channel": "AF"}],
        "advisories": [{"type": "apnea", "score": 0.7}],
        "end_received_at": 1.7e9 + 91,
        "runtime": "rules",
        "aux": {"spo2": [95.0] * 30, "hr": [61.0] * 30},
        "embedding": [0.5] * 8,
        "waveform": waveform_preview(signals, 8.0),
    }


def _grid_ids(paths: tuple[tuple[str, ...], ...]) -> list[str]:
    return [".".join(path) for path in paths]


@pytest.mark.parametrize("path", CAPTION_PATHS, ids=_grid_ids(CAPTION_PATHS))
def test_caption_field_grid(store: Store, path: tuple[str, ...]) -> None:
    """Every caption field set to every hostile scalar, as Python (``caption_values``) and as JSON."""
    for value in SCALARS:
        record = set_path(base_caption_record(), path, value)
        if expect_value_or_message_error(caption_values, record) is not None:
            sink_and_alerts(record, store)
        accepted = expect_value_or_message_error(_caption_record, render_json(record))
        if accepted is not None:
            sink_and_alerts(accepted, store)


@pytest.mark.parametrize("name", ["type", "onset_s", "duration_s", "channel", "reason"])
def test_caption_event_field_grid(store: Store, name: str) -> None:
    for value in SCALARS:
        record = base_caption_record()
        record["events"] = [{**record["events"][0], name: value}]
        if expect_value_or_message_error(caption_values, record) is not None:
            sink_and_alerts(record, store)


BASE_ALERT: dict[str, Any] = {
    "schema": 1,
    "kind": "alert",
    "event": "acknowledged",
    "bed_id": "bed-grid",
    "alert": {
        "id": "bed-grid:spo2_critical:1700000100",
        "bed_id": "bed-grid",
        "recording_id": "rec-grid",
        "type": "spo2_critical",
        "priority": "high",
        "state": "acknowledged",
        "raised_at": 1.7e9 + 100,
        "updated_at": 1.7e9 + 160,
        "evidence": {"start": 1.7e9 + 85, "end": 1.7e9 + 100, "count": 1},
        "escalated": False,
        "escalated_at": None,
        "acknowledged_by": "nurse-1",
        "acknowledged_at": 1.7e9 + 160,
        "resolved_at": None,
    },
}
BASE_TECHNICAL: dict[str, Any] = {
    "schema": 1,
    "kind": "technical",
    "bed_id": "bed-grid",
    "recording_id": "rec-grid",
    "stream": "exg",
    "type": "stream_lost",
    "at": 1.7e9 + 200,
    "detail": "no samples for 5 s",
}


@pytest.mark.parametrize("path", ALERT_PATHS + TECHNICAL_PATHS, ids=_grid_ids(ALERT_PATHS + TECHNICAL_PATHS))
def test_alert_field_grid(store: Store, path: tuple[str, ...]) -> None:
    """Every alert / technical record field set to every hostile scalar, as Python and as JSON."""
    technical = path in TECHNICAL_PATHS
    validate = device_event_row if technical else alert_event_row
    for value in SCALARS:
        record = set_path(BASE_TECHNICAL if technical else BASE_ALERT, path, value)
        for accepted in (
            record if expect_value_or_message_error(validate, record) is not None else None,
            expect_value_or_message_error(_alert_record, render_json(record)),
        ):
            if accepted is None or accepted.get("kind") not in ("alert", "technical"):
                continue
            if technical:
                store.insert_device_events([accepted])
                expect_value_or_message_error(AlertMonitor().device, accepted)
            else:
                store.apply_alert_events([accepted])


HEADER_VALUES: tuple[Any, ...] = (*SCALARS, *sorted(RAW_TOKENS))


@pytest.mark.parametrize("name", CHUNK_FIELDS)
def test_chunk_header_grid(name: str) -> None:
    chunk = SampleChunk(
        "bed-1",
        "rec-1",
        "exg",
        ("ECG", "AF"),
        ("mV", "a.u."),
        256.0,
        1.7e9,
        3,
        1.7e9 - 3,
        1.7e9 + 1,
        np.zeros((2, 16), np.float32),
    )
    magic, header, payload = split(encode_chunk(chunk))
    for value in HEADER_VALUES:
        decoded = expect_value_or_message_error(decode_samples_message, frame(magic, {**header, name: value}, payload))
        if decoded is not None:
            assert_valid_chunk(decoded)


@pytest.mark.parametrize("name", ["bed_id", "recording_id", "stream", "type", "at", "detail"])
def test_device_event_header_grid(name: str) -> None:
    magic, header, _ = split(encode_device_event(DeviceEvent("bed-1", "rec-1", "exg", "stream_lost", 1.7e9, "")))
    for value in HEADER_VALUES:
        decoded = expect_value_or_message_error(decode_samples_message, frame(magic, {**header, name: value}))
        if decoded is not None:
            assert_valid_chunk(decoded)


def _grid_epoch(features: dict[str, Any] | None = None) -> EpochMessage:
    return EpochMessage(
        "bed-1",
        "rec-1",
        2,
        1.7e9 + 60,
        np.zeros((10, 1920), np.float32),
        np.full((2, 30), 95.0, np.float32),
        {"ECG": []},
        dict(REAL_FEATURES if features is None else features),
        [],
        1.7e9 + 91,
    )


@pytest.mark.parametrize("name", EPOCH_FIELDS)
def test_epoch_header_grid(name: str) -> None:
    """Every epoch header field with every hostile value; what decodes also goes through the rules runtime."""
    magic, header, payload = split(encode_epoch(_grid_epoch()))
    for value in HEADER_VALUES:
        decoded = expect_value_or_message_error(decode_epoch, frame(magic, {**header, name: value}, payload))
        if decoded is not None:
            assert_valid_epoch(decoded)
            inference_records(RulesRuntime(), [decoded])


def _features_through_the_rules_runtime(values: tuple[Any, ...]) -> None:
    magic, header, payload = split(encode_epoch(_grid_epoch()))
    for name in REAL_FEATURES:
        for value in values:
            raw = frame(magic, {**header, "features": {**REAL_FEATURES, name: value}}, payload)
            decoded = expect_value_or_message_error(decode_epoch, raw)
            if decoded is not None:
                inference_records(RulesRuntime(), [decoded])


def test_epoch_features_of_the_wrong_shape_are_refused_or_survive_inference() -> None:
    """Every real feature as null, a number of any size, a container or a NaN token: the decoder refuses
    what ``psg.features.Feature`` (number, string or null) does not allow, the rules runtime takes the rest."""
    _features_through_the_rules_runtime((None, True, 0, -1, 2**62, 1e308, -1e308, [], {}, [1.0], {"a": 1}, *RAW_TOKENS))


def test_epoch_features_with_strings_for_numbers_are_refused_or_survive_inference() -> None:
    """Text where a number belongs (c3_alpha='abc') is refused by the decoder, naming the feature; text is
    allowed only for the text features (``TEXT_FEATURES``), which the rules runtime takes."""
    _features_through_the_rules_runtime(("abc", ""))
    magic, header, payload = split(encode_epoch(_grid_epoch()))
    with pytest.raises(MessageError, match="features.c3_alpha': expected a number or null"):
        decode_epoch(frame(magic, {**header, "features": {**REAL_FEATURES, "c3_alpha": "abc"}}, payload))
