"""A bed's origin (simulated or recorded signals) on chunks, bundles and epochs; the epoch's stage measurements.

Both are optional: messages of producers that do not say (older bridges, ``operations/loadgen.py``) decode
with None, and a value that is present is checked like every other header field."""

from __future__ import annotations

import dataclasses
import json
import struct

import numpy as np
import pytest

from psg import recording
from psg.codecs import (
    ORIGINS,
    ChunkBundle,
    EpochMessage,
    SampleChunk,
    decode_epoch,
    decode_samples_message,
    encode_bundle,
    encode_chunk,
    encode_epoch,
)
from psg.errors import MessageError
from psg.montage import MODEL_CHANNELS, MODEL_EPOCH_SAMPLES
from tests.psg.test_codecs import _chunk as chunk


def _chunk(origin: str | None = None, stream: str = "exg") -> SampleChunk:
    return chunk(origin=origin, stream=stream)


def _epoch(**fields: object) -> EpochMessage:
    return EpochMessage(
        bed_id="bed01",
        recording_id="bed01-r1",
        epoch=3,
        start_time=1_700_000_090.0,
        signals=np.zeros((len(MODEL_CHANNELS), MODEL_EPOCH_SAMPLES), dtype=np.float32),
        aux=np.full((2, 30), 95.0, dtype=np.float32),
        quality={"ECG": []},
        **fields,  # type: ignore[arg-type]
    )


def _header(raw: bytes) -> dict:
    _, _, length = struct.unpack_from("<4sBI", raw)
    return json.loads(raw[9 : 9 + length])


def _with_header(raw: bytes, change: dict) -> bytes:
    """``raw`` with its header updated by ``change`` (a key mapped to ... is removed)."""
    _, _, length = struct.unpack_from("<4sBI", raw)
    header = {**_header(raw), **change}
    header = {k: v for k, v in header.items() if v is not ...}
    head = json.dumps(header).encode()
    return raw[:5] + struct.pack("<I", len(head)) + head + raw[9 + length :]


def test_the_origins_are_psg_recordings() -> None:
    assert ORIGINS == (recording.SIMULATED, recording.RECORDED) == ("simulated", "recorded")


@pytest.mark.parametrize("origin", [None, *ORIGINS])
def test_a_chunk_keeps_its_origin(origin: str | None) -> None:
    raw = encode_chunk(_chunk(origin))
    assert ("origin" in _header(raw)) == (origin is not None)  # not said: no key, as older producers write
    back = decode_samples_message(raw)
    assert isinstance(back, SampleChunk) and back.origin == origin
    np.testing.assert_array_equal(back.data, _chunk().data)


def test_each_chunk_of_a_bundle_keeps_its_origin() -> None:
    chunks = [_chunk("recorded", "exg"), _chunk(None, "resp"), _chunk("simulated", "aux")]
    back = decode_samples_message(encode_bundle(chunks))
    assert isinstance(back, ChunkBundle)
    assert [(c.stream, c.origin) for c in back.chunks] == [("exg", "recorded"), ("resp", None), ("aux", "simulated")]


def test_a_chunk_of_an_older_producer_has_no_origin() -> None:
    raw = _with_header(encode_chunk(_chunk("recorded")), {"origin": ...})
    back = decode_samples_message(raw)
    assert isinstance(back, SampleChunk) and back.origin is None
    null = decode_samples_message(_with_header(encode_chunk(_chunk()), {"origin": None}))
    assert isinstance(null, SampleChunk) and null.origin is None


@pytest.mark.parametrize("bad", ["real", "", "SIMULATED", 1, ["recorded"], {"origin": "recorded"}, True])
def test_an_unknown_chunk_origin_is_refused_naming_the_field(bad: object) -> None:
    with pytest.raises(MessageError, match=r"message header field 'origin': expected one of \('simulated', 'rec"):
        decode_samples_message(_with_header(encode_chunk(_chunk()), {"origin": bad}))
    bundle = encode_bundle([_chunk(), _chunk(stream="resp")])
    heads = _header(bundle)["chunks"]
    heads[1]["origin"] = bad
    with pytest.raises(MessageError, match=r"bundle chunk 1: message header field 'origin'"):
        decode_samples_message(_with_header(bundle, {"chunks": heads}))


def test_an_epoch_keeps_its_origin_and_stage_measurements() -> None:
    measured = {"head": "real-prior", "bands": [0.1, 0.2], "ok": True, "nested": {"x": None}}
    epoch = _epoch(origin="recorded", stage_measurements=measured)
    raw = encode_epoch(epoch)
    assert _header(raw)["origin"] == "recorded" and _header(raw)["stage_measurements"] == measured
    back = decode_epoch(raw)
    assert back.origin == "recorded" and back.stage_measurements == measured
    assert dataclasses.replace(back, signals=None, aux=None) == dataclasses.replace(epoch, signals=None, aux=None)


def test_an_epoch_without_origin_or_measurements_stays_valid() -> None:
    raw = encode_epoch(_epoch())
    assert "origin" not in _header(raw) and "stage_measurements" not in _header(raw)
    back = decode_epoch(raw)
    assert back.origin is None and back.stage_measurements is None
    nulls = decode_epoch(_with_header(raw, {"origin": None, "stage_measurements": None}))
    assert nulls.origin is None and nulls.stage_measurements is None
    assert decode_epoch(encode_epoch(_epoch(origin="simulated", stage_measurements={}))).stage_measurements == {}


@pytest.mark.parametrize("bad", ["real", 0, ["simulated"]])
def test_an_unknown_epoch_origin_is_refused_naming_the_field(bad: object) -> None:
    with pytest.raises(MessageError, match=r"message header field 'origin': expected one of"):
        decode_epoch(_with_header(encode_epoch(_epoch()), {"origin": bad}))


@pytest.mark.parametrize("bad", [[1, 2], "bands", 3.5, True])
def test_stage_measurements_that_are_not_an_object_are_refused(bad: object) -> None:
    with pytest.raises(MessageError, match=r"message header field 'stage_measurements': expected an object or null"):
        decode_epoch(_with_header(encode_epoch(_epoch()), {"stage_measurements": bad}))
