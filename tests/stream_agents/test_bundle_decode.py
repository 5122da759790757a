"""The bundle decoder's fast path (one float32 copy and one infinity check per bundle, header fields taken
without the checks' calls when they are plainly valid) gives exactly what decoding each chunk on its own
gives, on a simulated night with artifacts and missing samples, and refuses what it always refused with
the same reason."""

from __future__ import annotations

import dataclasses
from itertools import groupby

import numpy as np
import pytest

from psg.codecs import (
    ChunkBundle,
    SampleChunk,
    decode_samples_message,
    encode_bundle,
    encode_chunk,
)
from psg.epoching.epocher import Epocher
from psg.errors import MessageError
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline
from tests.stream_agents.chunking import chunk_recording


@pytest.fixture(scope="module")
def bundles() -> list[list[SampleChunk]]:
    """A 6-min night with artifacts, cut as the bridge cuts it, with NaN holes in some chunks, grouped per
    second into one bundle of every stream's chunk (what the bridge and the load generator send)."""
    night = simulate(synthetic_timeline(hours=0.1, seed=5, ahi=30), seed=28, artifacts=True)
    rng = np.random.default_rng(7)
    chunks = []
    for chunk in chunk_recording(night):
        if rng.random() < 0.1:  # a device's missing samples: NaN runs inside the chunk
            data = chunk.data.copy()
            start = int(rng.integers(0, data.shape[1]))
            data[:, start : start + int(rng.integers(1, 40))] = np.nan
            chunk = dataclasses.replace(chunk, data=data)
        chunks.append(chunk)
    return [list(group) for _, group in groupby(chunks, key=lambda c: int(c.t0))]


def _same(a: SampleChunk, b: SampleChunk) -> None:
    for f in dataclasses.fields(SampleChunk):
        if f.name == "data":
            assert a.data.dtype == b.data.dtype and a.data.shape == b.data.shape
            assert np.array_equal(a.data, b.data, equal_nan=True)
            assert a.data.flags.c_contiguous and a.data.flags.writeable
        else:
            assert getattr(a, f.name) == getattr(b, f.name), f.name
            assert type(getattr(a, f.name)) is type(getattr(b, f.name)), f.name


def test_bundled_chunks_decode_exactly_as_single_chunks(bundles: list[list[SampleChunk]]) -> None:
    holes = 0
    for group in bundles:
        decoded = decode_samples_message(encode_bundle(group))
        assert isinstance(decoded, ChunkBundle) and len(decoded.chunks) == len(group)
        for original, got in zip(group, decoded.chunks, strict=True):
            alone = decode_samples_message(encode_chunk(original))
            assert isinstance(alone, SampleChunk)
            _same(got, alone)
            holes += int(np.isnan(got.data).any())
    assert holes > 0, "the fixture should carry chunks with missing samples"


def test_epochs_from_bundles_equal_epochs_from_single_chunks(bundles: list[list[SampleChunk]]) -> None:
    """Downstream too: the epocher makes the same epochs (features, flags, events, model signals)."""
    by_bundle, by_chunk = Epocher(), Epocher()
    a, b = [], []
    for i, group in enumerate(bundles):
        bundle = decode_samples_message(encode_bundle(group))
        assert isinstance(bundle, ChunkBundle)
        a += by_bundle.add_bundle(bundle, i).epochs
        for chunk in group:
            single = decode_samples_message(encode_chunk(chunk))
            assert isinstance(single, SampleChunk)
            b += by_chunk.add(single, i).epochs
    assert len(a) == len(b) >= 10
    for x, y in zip(a, b, strict=True):
        assert (x.epoch, x.quality, x.features, x.events) == (y.epoch, y.quality, y.features, y.events)
        assert np.array_equal(x.signals, y.signals) and np.array_equal(x.aux, y.aux, equal_nan=True)


@pytest.mark.parametrize("bad_chunk", [0, 1, 2])
def test_an_infinite_sample_is_refused_naming_its_chunk(bundles: list[list[SampleChunk]], bad_chunk: int) -> None:
    group = list(bundles[3])
    data = group[bad_chunk].data.copy()
    data[0, -1] = np.inf
    group[bad_chunk] = dataclasses.replace(group[bad_chunk], data=data)
    with pytest.raises(MessageError, match=rf"^bundle chunk {bad_chunk}: samples: infinite sample values"):
        decode_samples_message(encode_bundle(group))


def test_header_values_off_the_fast_path_decode_and_refuse_as_before(bundles: list[list[SampleChunk]]) -> None:
    """Whole-number times (JSON integers) still decode, as floats; bad times and names are still refused by name."""
    chunk = bundles[2][0]
    whole = dataclasses.replace(chunk, t0=float(int(chunk.t0)), received_at=1_700_000_500)
    decoded = decode_samples_message(encode_bundle([whole]))
    assert isinstance(decoded, ChunkBundle)
    assert decoded.chunks[0].received_at == 1_700_000_500.0 and type(decoded.chunks[0].received_at) is float
    for overrides, reason in (
        ({"t0": -1.0}, "field 't0': expected a finite time >= 0"),
        ({"recording_start": True}, "field 'recording_start': expected a number"),
        ({"stream": ""}, "field 'stream': expected 1-200 characters"),
        ({"bed_id": "b" * 201}, "field 'bed_id': expected 1-200 characters"),
    ):
        with pytest.raises(MessageError, match=f"bundle chunk 0: message header {reason}"):
            decode_samples_message(encode_bundle([dataclasses.replace(chunk, **overrides)]))
