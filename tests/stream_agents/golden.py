"""Golden epochs of the epocher's analysis: reference nights, their per-epoch summary, and the fixture file.

The epocher's per-epoch analysis (``psg.epoching.analysis.analyse``) was made faster by
replacing library calls with equivalent ones (one spectrum per channel and epoch, cached filter
designs, reuse of the context window's earlier results). This module pins what it produced *before*
those changes: ``write()`` ran once on the pre-change code and saved ``data/epoch_analysis_golden.json``;
``test_epoch_analysis_golden`` recomputes the summary with the current code and compares.

The summary keeps what the consumers read: per epoch the quality flags, the events (already rounded
to 0.01 by ``DetectedEvent.to_dict``), the features (10 significant digits, far finer than the test
tolerance), the aux channels (SpO2 / HR, 6 significant digits) and, for the model signals, an exact
SHA-1 of the float32 bytes with the mean and standard deviation per channel. Features are stored as
columns (one list per key) to keep the file small.

Run ``python -m tests.stream_agents.golden`` to rewrite the fixture (only when a change of results
is intended and reviewed).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from psg.codecs import EpochMessage, SampleChunk
from psg.epoching.epocher import Epocher
from psg.recording import Recording
from tests.stream_agents.chunking import START, chunk_recording

FIXTURE = Path(__file__).parent / "data" / "epoch_analysis_golden.json"
#: ucddb002, 3.5-4 h: hypopneas, obstructive and mixed apneas, W and N1 (a scored night of real timing).
UCDDB_FILE, UCDDB_START_S = "ucddb/ucddb002_stage.txt", 3.5 * 3600.0
HOURS = 0.5


#: Chunks dropped from the "lossy" night, (stream, start s, end s): a short and a long hole per rate
#: group, one covering most of an epoch (its channels are zeroed for the feature code) and a lost
#: oximeter minute.
DROPPED: tuple[tuple[str, float, float], ...] = (
    ("resp", 600.0, 612.0),
    ("exg", 900.0, 903.0),
    ("exg", 1000.0, 1020.0),
    ("exg", 1298.0, 1318.0),
    ("aux", 1200.0, 1260.0),
)


def synthetic_night(seed: int = 1, artifacts: bool = False) -> Recording:
    """The stream-agent tests' night (0.5 h, timeline seed 3, AHI 20; ``conftest.py``) simulated with ``seed``."""
    from psg.simulate import simulate
    from psg.synthetic import synthetic_timeline

    return simulate(synthetic_timeline(hours=HOURS, seed=3, ahi=20), seed=seed, artifacts=artifacts)


def ucddb_night() -> Recording | None:
    """Half an hour of a real scored night (``UCDDB_FILE``) simulated, or None without the shared data."""
    from device_bridges.bed_nights import slice_timeline
    from psg.formats import read_timeline
    from psg.paths import shared_data_dir
    from psg.simulate import simulate

    path = shared_data_dir() / UCDDB_FILE
    if not path.is_file():
        return None
    timeline = slice_timeline(read_timeline(path), UCDDB_START_S, UCDDB_START_S + HOURS * 3600.0)
    return simulate(timeline, seed=2)


@dataclass(frozen=True)
class Night:
    """A reference night: how to make it, and which chunks the bridge lost."""

    make: Callable[[], Recording | None]
    dropped: tuple[tuple[str, float, float], ...] = ()


#: The reference nights. seed 28 with artifacts: clipping on both EEGs, lead-off of ABD, SpO2 and
#: EOG-L, a body movement; seed 7: lead-off of EOG-L, ECG (R peaks lost) and C3, an electrode pop,
#: with ``DROPPED`` chunks lost on top.
NIGHTS: dict[str, Night] = {
    "synthetic": Night(synthetic_night),
    "artifacts": Night(lambda: synthetic_night(seed=28, artifacts=True)),
    "artifacts_lossy": Night(lambda: synthetic_night(seed=7, artifacts=True), DROPPED),
    "ucddb002": Night(ucddb_night),
}


def night_chunks(night: Night) -> list[SampleChunk] | None:
    """The night's chunks as the bridge sends them, less the dropped ones (None: night unavailable)."""
    recording = night.make()
    if recording is None:
        return None
    return [
        c
        for c in chunk_recording(recording)
        if not any(c.stream == s and lo <= c.t0 - START < hi for s, lo, hi in night.dropped)
    ]


def run_epocher(chunks: list[SampleChunk], epocher: Epocher | None = None) -> list[EpochMessage]:
    """Every epoch from an in-order pass of ``chunks`` through ``epocher`` (default settings if None)."""
    epocher = epocher or Epocher()
    out: list[EpochMessage] = []
    for i, chunk in enumerate(chunks):
        out += epocher.add(chunk, i).epochs
    return out


def _sig(value: Any, digits: int) -> Any:
    """Floats to ``digits`` significant digits (JSON-safe: non-finite -> None); other values unchanged."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}") if math.isfinite(value) else None
    return value


def summarise(epochs: list[EpochMessage]) -> dict[str, Any]:
    """The golden summary of one night's epochs (see the module docstring)."""
    keys = sorted({k for m in epochs for k in m.features})
    return {
        "epochs": [m.epoch for m in epochs],
        "quality": [{label: flags for label, flags in m.quality.items() if flags} for m in epochs],
        "quality_labels": sorted({label for m in epochs for label in m.quality}),
        "events": [m.events for m in epochs],
        "features": {k: [_sig(m.features.get(k), 10) for m in epochs] for k in keys},
        "aux": [[[_sig(float(v), 6) for v in row] for row in m.aux] for m in epochs],
        "signals_sha1": [hashlib.sha1(np.ascontiguousarray(m.signals).tobytes()).hexdigest() for m in epochs],
        "signals_mean": [[_sig(float(v), 6) for v in m.signals.astype(np.float64).mean(axis=1)] for m in epochs],
        "signals_std": [[_sig(float(v), 6) for v in m.signals.astype(np.float64).std(axis=1)] for m in epochs],
    }


def write() -> None:
    """Recompute every available night and write the fixture (see the module docstring)."""
    golden: dict[str, Any] = {}
    for name, night in NIGHTS.items():
        chunks = night_chunks(night)
        if chunks is not None:
            golden[name] = summarise(run_epocher(chunks))
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(golden, separators=(",", ":"), allow_nan=False))
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size / 1024:.0f} KB): {', '.join(golden)}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    write()
