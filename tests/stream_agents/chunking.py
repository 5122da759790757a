"""Test helper: cut a ``psg.recording.Recording`` into ~1-s ``SampleChunk``s per rate-group stream,
the way the bridge sends them (exg 256 Hz, resp 32 Hz, aux 1 Hz), interleaved by device time."""

from __future__ import annotations

import numpy as np

from psg.codecs import SampleChunk
from psg.recording import Recording

#: The simulated bed's streams: name -> montage labels (all labels of one stream share a rate).
STREAMS: dict[str, tuple[str, ...]] = {
    "exg": ("ECG", "EOG-L", "EOG-R", "EEG C3-A2", "EEG C4-A1", "EMG Chin"),
    "resp": ("ABD", "THX", "AF"),
    "aux": ("POS", "SpO2", "HR"),
}
START = 1_700_000_000.0


def chunk_recording(
    recording: Recording,
    bed_id: str = "bed-1",
    recording_id: str = "rec-1",
    start: float = START,
    chunk_s: float = 1.0,
    streams: dict[str, tuple[str, ...]] = STREAMS,
) -> list[SampleChunk]:
    """Every stream's chunks, sorted by (t0, stream): the interleaving a bridge produces."""
    chunks = []
    for name, labels in streams.items():
        signals = [recording.signals[label] for label in labels if label in recording.signals]
        if not signals:
            continue
        fs = signals[0].fs
        data = np.vstack([s.data for s in signals]).astype(np.float32)
        per_chunk = max(1, int(round(chunk_s * fs)))
        for seq, i0 in enumerate(range(0, data.shape[1], per_chunk)):
            t0 = start + i0 / fs
            chunks.append(
                SampleChunk(
                    bed_id=bed_id,
                    recording_id=recording_id,
                    stream=name,
                    labels=tuple(s.label for s in signals),
                    units=tuple(s.unit for s in signals),
                    fs=fs,
                    t0=t0,
                    seq=seq,
                    recording_start=start,
                    received_at=t0 + min(per_chunk, data.shape[1] - i0) / fs + 0.05,
                    data=data[:, i0 : i0 + per_chunk],
                )
            )
    return sorted(chunks, key=lambda c: (c.t0, c.stream))
