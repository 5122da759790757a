"""Fixtures of the broker-free stream-agent tests: one simulated half-hour night, chunked like a bridge
sends it, and the epochs of one in-order pass through the ``Epocher`` (computed once per session)."""

from __future__ import annotations

import pytest

from psg.codecs import EpochMessage, SampleChunk
from psg.epoching.epocher import Epocher
from psg.recording import Recording
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline
from tests.stream_agents.chunking import chunk_recording

#: 0.5 h, seed 3: 12 epochs W, 5 N1, 37 N2, 6 W, and a few respiratory events (AHI 20).
HOURS, SEED = 0.5, 3


@pytest.fixture(scope="session")
def night() -> Recording:
    return simulate(synthetic_timeline(hours=HOURS, seed=SEED, ahi=20), seed=1)


@pytest.fixture(scope="session")
def chunks(night: Recording) -> list[SampleChunk]:
    return chunk_recording(night)


@pytest.fixture(scope="session")
def baseline(chunks: list[SampleChunk]) -> list[EpochMessage]:
    """Every epoch of the night from an in-order pass with the default settings."""
    epocher = Epocher()
    out: list[EpochMessage] = []
    for i, chunk in enumerate(chunks):
        out += epocher.add(chunk, i).epochs
    return out
