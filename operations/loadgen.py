"""A fast bed generator for load tests: many simulated beds produced straight to ``psg.samples``.

WHY not LSL for every bed: an LSL outlet per stream per bed (and the bridge resolving and pulling
1500 of them) would measure liblsl, not the monitor. The generator skips that hop but sends what the
bridge sends: every second of a bed, one ``ChunkBundle`` record holding a ~1-s ``SampleChunk`` per
rate-group stream (exg 256 Hz, resp 32 Hz, aux 1 Hz), keyed by bed id, with device timestamps equal to
the wall clock (a bed at real time), ``received_at`` the moment it is produced. A few beds of a benchmark
still go through real LSL and the real bridge (``operations.bench_stream``).

The signals are real simulator output (``psg.simulate`` on synthetic nights with apneas), rendered once
for ``nights`` distinct nights and shared by the beds (bed k plays night k mod ``nights`` from its own
offset), so every epoch carries physiology for the detectors and the model to work on. Beds start their
recordings staggered over one epoch (bed k at k/N of 30 s), as beds in a lab do, so epochs complete at
an even rate instead of all at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from psg.codecs import SampleChunk, encode_bundle
from psg.recording import Recording
from psg.timeline import EPOCH_S

#: The streams of a simulated bed (what ``device_bridges.simulated`` publishes): name -> montage labels.
STREAMS: dict[str, tuple[str, ...]] = {
    "exg": ("ECG", "EOG-L", "EOG-R", "EEG C3-A2", "EEG C4-A1", "EMG Chin"),
    "resp": ("ABD", "THX", "AF"),
    "aux": ("POS", "SpO2", "HR"),
}


@dataclass(frozen=True)
class StreamData:
    """One stream of one rendered night as float32 (channels, samples)."""

    name: str
    labels: tuple[str, ...]
    units: tuple[str, ...]
    fs: float
    data: np.ndarray

    @property
    def seconds(self) -> int:
        return int(self.data.shape[1] // self.fs)


@dataclass(frozen=True)
class GeneratedBed:
    """A generated bed: its night, where in it it starts, and when its recording starts (Unix s)."""

    bed_id: str
    recording_id: str
    night: int
    offset_s: int
    recording_start: float


def night_streams(recording: Recording) -> list[StreamData]:
    """The ``STREAMS`` of a rendered night, as the bridge would group them."""
    out = []
    for name, labels in STREAMS.items():
        signals = [recording.signals[label] for label in labels if label in recording.signals]
        if signals:
            data = np.vstack([s.data for s in signals]).astype("<f4")
            out.append(
                StreamData(name, tuple(s.label for s in signals), tuple(s.unit for s in signals), signals[0].fs, data)
            )
    return out


def render_nights(count: int, seconds: float, seed: int = 0, ahi: float = 25.0) -> list[list[StreamData]]:
    """``count`` distinct synthetic nights of at least ``seconds`` (plus a margin), rendered once."""
    from psg.simulate import simulate
    from psg.synthetic import synthetic_timeline

    hours = (seconds + 2 * EPOCH_S) / 3600.0
    return [
        night_streams(simulate(synthetic_timeline(hours=hours, seed=seed + k, ahi=ahi), seed=seed + k))
        for k in range(count)
    ]


def plan_beds(n: int, start: float, nights: int, prefix: str = "gen", first_second: int = 0) -> list[GeneratedBed]:
    """``n`` beds whose recordings start staggered over one epoch after ``start``, playing their nights from
    ``first_second`` on (a later piece of an accelerated night: the soak in pieces)."""
    width = max(4, len(str(n)))
    return [
        GeneratedBed(
            bed_id=f"{prefix}-{k:0{width}d}",
            recording_id=f"{prefix}-{k:0{width}d}-{int(start)}",
            night=k % nights,
            offset_s=first_second + (k // nights) * 7,
            recording_start=start + EPOCH_S * k / n,
        )
        for k in range(n)
    ]


def bed_chunk(bed: GeneratedBed, stream: StreamData, second: int, received_at: float) -> SampleChunk:
    """Second ``second`` of ``bed``'s recording on ``stream`` (the night wraps around when it ends)."""
    fs = int(stream.fs)
    k = (bed.offset_s + second) % stream.seconds
    return SampleChunk(
        bed_id=bed.bed_id,
        recording_id=bed.recording_id,
        stream=stream.name,
        labels=stream.labels,
        units=stream.units,
        fs=stream.fs,
        t0=bed.recording_start + second,
        seq=second,
        recording_start=bed.recording_start,
        received_at=received_at,
        data=stream.data[:, k * fs : (k + 1) * fs],
    )


class LoadGenerator:
    """Produces every bed's chunks when their last sample's time has come, until ``stop_at``.

    ``send(key, value)`` is the producer (kafka-python's ``KafkaProducer.send`` for the benchmark, a list
    in the tests). ``run`` paces itself on ``clock``; ``behind_s`` is the worst lag it had to catch up on
    (the generator itself must not be the bottleneck of a benchmark).
    """

    def __init__(
        self,
        beds: list[GeneratedBed],
        nights: list[list[StreamData]],
        send: Callable[[bytes, bytes], object],
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        speed: float = 1.0,
    ) -> None:
        """``speed`` > 1 runs the beds' device clock that much faster than ``clock`` from the first bed's
        recording start (an accelerated night for soak tests); 1 is real time."""
        self.beds = beds
        self.nights = nights
        self.send = send
        self.clock = clock
        self.sleep = sleep
        self.speed = float(speed)
        self.origin = min((b.recording_start for b in beds), default=0.0)
        self.sent_seconds = {bed.bed_id: 0 for bed in beds}
        self.messages = 0  # records sent
        self.chunks = 0  # chunks in them
        self.behind_s = 0.0

    def due(self, now: float) -> Iterator[tuple[GeneratedBed, int]]:
        """(bed, second) pairs whose second ended by device time ``now`` and were not sent yet, oldest first."""
        for bed in self.beds:
            ended = math.floor(now - bed.recording_start)
            for second in range(self.sent_seconds[bed.bed_id], max(0, ended)):
                yield bed, second

    def device_time(self, now: float) -> float:
        """The beds' device clock at wall time ``now``."""
        return self.origin + self.speed * (now - self.origin)

    def step(self, now: float) -> int:
        """Send everything due at wall time ``now`` (one record per bed and second); returns the records sent."""
        sent = 0
        device_now = self.device_time(now)
        for bed, second in list(self.due(device_now)):
            self.behind_s = max(self.behind_s, (device_now - (bed.recording_start + second + 1)) / self.speed)
            chunks = [bed_chunk(bed, stream, second, now) for stream in self.nights[bed.night]]
            self.send(bed.bed_id.encode(), encode_bundle(chunks))
            self.chunks += len(chunks)
            sent += 1
            self.sent_seconds[bed.bed_id] = second + 1
        self.messages += sent
        return sent

    def run(self, stop_at: float, tick_s: float = 0.05, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Send on schedule until wall time ``stop_at`` (Unix s) or ``should_stop()``."""
        while not should_stop():
            now = self.clock()
            if now >= stop_at:
                break
            self.step(now)
            self.sleep(max(0.0, tick_s - (self.clock() - now)))

    def complete_epochs(self, bed: GeneratedBed) -> int:
        """Epochs of ``bed`` whose every sample was sent (what the store must end up holding)."""
        return int(self.sent_seconds[bed.bed_id] // EPOCH_S)
