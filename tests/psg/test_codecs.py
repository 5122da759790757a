"""Message codecs: round trips, and every malformed input rejected with a reason (never a crash)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from psg.codecs import (
    DeviceEvent,
    EpochMessage,
    SampleChunk,
    decode_epoch,
    decode_samples_message,
    encode_chunk,
    encode_device_event,
    encode_epoch,
)
from psg.errors import MessageError
from psg.json_codec import decode_json, encode_json
from psg.montage import MODEL_CHANNELS, MODEL_EPOCH_SAMPLES


def _chunk(**overrides) -> SampleChunk:
    fields = dict(
        bed_id="bed01",
        recording_id="bed01-r1",
        stream="exg",
        labels=("ECG", "EEG C3-A2"),
        units=("mV", "uV"),
        fs=256.0,
        t0=1_700_000_000.0,
        seq=7,
        recording_start=1_699_999_990.0,
        received_at=1_700_000_001.0,
        data=np.arange(512, dtype=np.float32).reshape(2, 256),
    )
    fields.update(overrides)
    return SampleChunk(**fields)


def _epoch() -> EpochMessage:
    rng = np.random.default_rng(0)
    return EpochMessage(
        bed_id="bed01",
        recording_id="bed01-r1",
        epoch=3,
        start_time=1_700_000_090.0,
        signals=rng.standard_normal((len(MODEL_CHANNELS), MODEL_EPOCH_SAMPLES)).astype(np.float32),
        aux=np.full((2, 30), np.nan, dtype=np.float32),
        quality={"ECG": [], "AF": ["flat"]},
        features={"hr_mean": 61.2, "eeg_c3_alpha": None},
        events=[{"type": "apnea", "onset_s": 95.0}],
        end_received_at=1_700_000_121.0,
    )


def test_chunk_round_trip_keeps_every_field_and_nan_samples() -> None:
    data = np.arange(512, dtype=np.float32).reshape(2, 256)
    data[1, 10] = np.nan
    chunk = _chunk(data=data)
    back = decode_samples_message(encode_chunk(chunk))
    assert isinstance(back, SampleChunk)
    assert back.labels == chunk.labels and back.seq == 7 and back.fs == 256.0 and back.t0 == chunk.t0
    np.testing.assert_array_equal(back.data, data)
    assert back.t_end == pytest.approx(chunk.t0 + 1.0)


def test_device_event_and_epoch_round_trip() -> None:
    event = DeviceEvent("bed01", "bed01-r1", "exg", "stream_lost", 1_700_000_000.0, "no samples for 5 s")
    assert decode_samples_message(encode_device_event(event)) == event
    epoch = _epoch()
    back = decode_epoch(encode_epoch(epoch))
    np.testing.assert_array_equal(back.signals, epoch.signals)
    assert np.isnan(back.aux).all() and back.aux.shape == (2, 30)
    assert (back.epoch, back.quality, back.features, back.events) == (3, epoch.quality, epoch.features, epoch.events)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"fs": 0.0}, "'fs'"),
        ({"labels": ("ECG", "ECG")}, "'labels'"),
        ({"units": ("mV",)}, "'units'"),
        ({"seq": -1}, "'seq'"),
        ({"bed_id": ""}, "'bed_id'"),
        ({"t0": -5.0}, "'t0'"),
    ],
)
def test_invalid_chunk_fields_are_named(overrides: dict, field: str) -> None:
    with pytest.raises(MessageError, match=field):
        decode_samples_message(encode_chunk(_chunk(**overrides)))


def test_nan_header_values_are_refused_when_encoding() -> None:
    with pytest.raises(MessageError, match="write missing values as null"):
        encode_chunk(_chunk(fs=float("nan")))


def test_infinite_samples_and_short_payloads_are_rejected() -> None:
    data = np.zeros((2, 256), dtype=np.float32)
    data[0, 3] = np.inf
    with pytest.raises(MessageError, match="infinite"):
        decode_samples_message(encode_chunk(_chunk(data=data)))
    with pytest.raises(MessageError, match="payload is"):
        decode_samples_message(encode_chunk(_chunk())[:-4])
    with pytest.raises(MessageError, match="not an epoch"):
        decode_epoch(encode_chunk(_chunk()))


def test_json_messages_need_schema_and_required_fields() -> None:
    assert decode_json(encode_json({"bed_id": "b"}), ("bed_id",))["schema"] == 1
    with pytest.raises(MessageError, match="schema"):
        decode_json(json.dumps({"bed_id": "b"}).encode())
    with pytest.raises(MessageError, match="missing field"):
        decode_json(encode_json({}), ("bed_id",))
    with pytest.raises(MessageError, match="not valid JSON"):
        decode_json(b"\xff{")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash_a_decoder(raw: bytes) -> None:
    for decode in (decode_samples_message, decode_epoch, decode_json):
        try:
            decode(raw)
        except MessageError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=600), st.binary(min_size=1, max_size=8))
def test_corrupted_valid_chunks_decode_or_are_rejected(position: int, garbage: bytes) -> None:
    raw = bytearray(encode_chunk(_chunk()))
    position = min(position, len(raw) - 1)
    raw[position : position + len(garbage)] = garbage
    try:
        decode_samples_message(bytes(raw))
    except MessageError:
        pass
