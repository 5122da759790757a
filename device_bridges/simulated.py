"""Simulated beds and EDF replay: LSL outlets that behave like a bedside PSG amplifier.

A bed publishes one LSL outlet per sampling-rate group of its recording (``exg`` 256 Hz: ECG, EOG,
EEG, chin EMG; ``resp`` 32 Hz: ABD, THX, AF; ``aux`` 1 Hz: POS, SpO2, HR for the simulator's montage),
each named ``sleeplm-<bed>-<group>``, type ``PSG``, source id ``<bed>:<group>``. The stream description
carries what the bridge needs without a channel-map file: channel labels and units (montage labels),
``sleeplm_bed``, ``group``, ``recording_id`` and ``recording_start`` (LSL clock time of the first sample).

Timing is a *virtual device clock*: sample ``i`` of a group has the timestamp ``recording_start + i/fs``
and ~1-s chunks are pushed with those explicit timestamps; ``speed`` X pushes X device seconds per wall
second (at speed 10 one 30-s epoch takes 3 s), and every group of a bed advances in the same step.
Downstream everything is timed by these sample timestamps, never by the wall clock, so a fast replay
epochs and captions exactly like a real-time night.

A recording with gaps (an EDF+D replay: ``Recording.gaps``) is played as the recorder made it: the outlets
close where a gap starts and fresh ones open where it ends, and no sample of the gap is sent. Samples keep
their place on the device clock, so the first sample after a gap is stamped ``recording_start + t/fs`` of
its true time ``t``: the timestamps jump over the gap and the epocher, which places samples by time, emits
the gap's epochs with NaN samples, flagged ``gap``. New outlets (rather than a jump on the same outlet)
because the bridge's inlets dejitter timestamps, which would smear a jump over the samples after it.

What a bed plays (a night rendered piece by piece, an EDF file's signals, the nights picked from a
source) lives in ``device_bridges.bed_nights``; this module is the bed itself and ``run_beds``, which
keeps N beds playing.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from device_bridges.bed_nights import edf_recording, night_for
from device_bridges.lsl_config import import_pylsl
from psg.errors import PSGError
from psg.montage import CHANNELS
from psg.recording import ORIGIN, RECORDED, SIMULATED, Recording, Signal

log = logging.getLogger(__name__)

#: Wall seconds the outlets stay open after a night's last sample (closing at once can cut off the last chunk).
LINGER_S = 1.0


@dataclass(frozen=True)
class RateGroup:
    """Channels of one recording sharing a sampling rate: one LSL outlet."""

    name: str
    fs: float
    labels: tuple[str, ...]
    units: tuple[str, ...]


def rate_groups(signals: dict[str, Signal]) -> list[RateGroup]:
    """Group channels by rate, fastest first; names by rate class: exg (>= 100 Hz), resp (>= 10 Hz), aux.

    Two rates in one class (an EDF with EEG at 200 Hz and ECG at 512 Hz) get the rate appended.
    """
    by_rate: dict[float, list[Signal]] = {}
    for signal in signals.values():
        by_rate.setdefault(float(signal.fs), []).append(signal)
    groups: list[RateGroup] = []
    taken: set[str] = set()
    for fs in sorted(by_rate, reverse=True):
        name = "exg" if fs >= 100 else "resp" if fs >= 10 else "aux"
        if name in taken:
            name = f"{name}-{fs:g}hz"
        taken.add(name)
        members = by_rate[fs]
        groups.append(RateGroup(name, fs, tuple(s.label for s in members), tuple(s.unit for s in members)))
    return groups


def recording_id_for(bed_id: str, when: datetime | None = None) -> str:
    """``<bed>-<UTC yyyymmddThhmmss>``: the recording id of a night that starts ``when`` (now)."""
    return f"{bed_id}-{(when or datetime.now(UTC)):%Y%m%dT%H%M%S}"


# --- the bed: LSL outlets on a virtual device clock ------------------------------------------------


class SimulatedBed:
    """One bed streaming ``recording`` (a ``Recording`` or an iterable of consecutive pieces) over LSL.

    ``run(stop)`` blocks until the recording is played or ``stop`` is set; ``start()`` runs it in a
    thread. ``disconnect()``/``reconnect()`` pull and re-plug the device: while disconnected the device
    clock runs on but no samples reach LSL (a gap), and the re-opened outlets are new LSL streams with
    the same description, which is what the bridge sees when an amplifier reconnects.
    ``wait_for_consumers_s`` holds the first sample until the outlets have readers (see
    ``_await_consumers``).
    """

    kind = "simulated"
    #: The ``psg.recording.ORIGIN`` the outlets announce (``origin`` in the description) when the recording's
    #: metadata does not say: the simulator's nights are simulated, an EDF file's signals recorded.
    default_origin = SIMULATED

    def __init__(
        self,
        bed_id: str,
        recording: Recording | Iterable[Recording],
        speed: float = 1.0,
        recording_id: str | None = None,
        wait_for_consumers_s: float = 0.0,
    ) -> None:
        if not bed_id or not bed_id.replace("-", "").replace("_", "").isalnum():
            raise PSGError(f"bed id {bed_id!r}: expected letters, digits, '-' or '_'")
        if not (math.isfinite(speed) and speed > 0):
            raise PSGError(f"speed must be a finite number > 0, got {speed!r}")
        self.bed_id = bed_id
        self.speed = float(speed)
        self.recording_id = recording_id or recording_id_for(bed_id)
        self.wait_for_consumers_s = wait_for_consumers_s
        self.record_id = getattr(recording, "record_id", "")
        said = recording.metadata.get(ORIGIN) if isinstance(recording, Recording) else None
        self.origin: str = said or self.default_origin
        self._pieces: Iterable[Recording] = [recording] if isinstance(recording, Recording) else recording
        self.groups: list[RateGroup] = []
        self.recording_start: float | None = None  # LSL clock time of the first sample
        self.pushed_s = 0  # device seconds played so far (pushed or, while disconnected, dropped)
        self.pushed_samples: dict[str, int] = {}  # samples per group played (pushed, or dropped while disconnected)
        self.gap_samples: dict[str, int] = {}  # samples per group not sent because they fall in a recording gap
        self._gaps: list[tuple[float, float]] = []  # the playing piece's gaps (seconds from the piece start)
        self._in_gap = False  # the outlets are closed because the recording has a gap here
        self._outlets: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.error: BaseException | None = None

    # lifecycle
    def start(self) -> SimulatedBed:
        self._thread = threading.Thread(target=self._run_captured, name=f"bed-{self.bed_id}", daemon=True)
        self._thread.start()
        return self

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Wait until the outlets are open (the first piece rendered)."""
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def disconnect(self) -> None:
        """Close the outlets (device unplugged); the device clock keeps running."""
        with self._lock:
            self._outlets = None

    def reconnect(self) -> None:
        """Open fresh outlets with the same stream descriptions (device plugged back in)."""
        with self._lock:
            if self._outlets is None and self.groups:
                self._outlets = {g.name: self._outlet(g) for g in self.groups}

    def _run_captured(self) -> None:
        try:
            self.run(self._stop)
        except BaseException as exc:  # reported by whoever owns the bed (run_beds, tests)
            self.error = exc
            log.exception("bed %s failed", self.bed_id)

    def run(self, stop: threading.Event) -> None:
        """Play the recording in real time x ``speed`` until it ends or ``stop`` is set."""
        pylsl = import_pylsl()
        pieces = iter(self._pieces)
        first = next(pieces, None)
        if first is None or not first.signals:
            raise PSGError(f"bed {self.bed_id}: the recording has no signals to stream")
        self.groups = rate_groups(first.signals)
        blocks: dict[str, np.ndarray] | None = self._blocks(first)
        del first  # float64 signals: only the float32 blocks are kept while playing
        self.pushed_samples = {g.name: 0 for g in self.groups}
        self.gap_samples = {g.name: 0 for g in self.groups}
        recording_start = self.recording_start = float(pylsl.local_clock())
        with self._lock:
            self._outlets = {g.name: self._outlet(g) for g in self.groups}
        self._ready.set()
        self._await_consumers(stop)
        wall0 = time.monotonic()
        try:
            while blocks is not None:
                if not self._play(blocks, wall0, recording_start, stop):
                    return
                piece = next(pieces, None)
                blocks = self._blocks(piece) if piece is not None else None
                del piece
            stop.wait(LINGER_S)  # the night is over: let readers take the last chunk before the outlets close
        finally:
            with self._lock:
                self._outlets = None
            if isinstance(pieces, Generator):
                pieces.close()  # stop rendering ahead

    def _await_consumers(self, stop: threading.Event) -> None:
        """Hold the first sample until every outlet has a reader (up to ``wait_for_consumers_s``).

        LSL sends a new reader only what is pushed after it connects; waiting lets a bridge that starts
        a moment after the beds receive each night from its first sample, as when a technician starts
        the recording once acquisition is running. Sample timestamps do not move: the night still
        starts at ``recording_start``.
        """
        deadline = time.monotonic() + self.wait_for_consumers_s
        assert self._outlets is not None
        for outlet in list(self._outlets.values()):
            while not stop.is_set() and not outlet.have_consumers() and time.monotonic() < deadline:
                outlet.wait_for_consumers(min(0.2, max(0.0, deadline - time.monotonic())))

    def _blocks(self, piece: Recording) -> dict[str, np.ndarray]:
        """A piece as one (samples, channels) float32 block per rate group."""
        blocks = {}
        for group in self.groups:
            missing = [label for label in group.labels if label not in piece.signals]
            if missing or any(piece.signals[label].fs != group.fs for label in group.labels):
                raise PSGError(f"bed {self.bed_id}: piece of {self.record_id!r} changes the channel layout")
            blocks[group.name] = np.stack([piece.signals[label].data for label in group.labels], axis=1).astype(
                np.float32
            )
        self._gaps = sorted(piece.gaps)
        return blocks

    def _play(self, blocks: dict[str, np.ndarray], wall0: float, recording_start: float, stop: threading.Event) -> bool:
        seconds = max(len(blocks[g.name]) / g.fs for g in self.groups)
        for second in range(math.ceil(seconds)):
            delay = wall0 + (self.pushed_s + 1) / self.speed - time.monotonic()
            if stop.wait(delay) if delay > 0 else stop.is_set():
                return False
            with self._lock:
                firsts = {g.name: round(second * g.fs) for g in self.groups}
                ends = {g.name: min(round((second + 1) * g.fs), len(blocks[g.name])) for g in self.groups}
                for start, end in recorded_spans(self._gaps, second, second + 1.0):
                    if self._in_gap:  # the recorder resumes: new outlets, as a device plugged back in
                        self._in_gap = False
                        self._outlets = {g.name: self._outlet(g) for g in self.groups}
                    for group in self.groups:
                        a, b = (
                            max(firsts[group.name], min(ends[group.name], math.ceil(t * group.fs - 1e-9)))
                            for t in (start, end)
                        )
                        if b > a and self._outlets is not None:
                            done = self.pushed_samples[group.name] + a - firsts[group.name]
                            stamps = recording_start + (done + np.arange(b - a)) / group.fs
                            self._outlets[group.name].push_chunk(blocks[group.name][a:b], stamps.tolist())
                    if any(g0 <= end < g1 for g0, g1 in self._gaps):  # a gap starts: the recorder stops
                        self._in_gap, self._outlets = True, None
                for group in self.groups:
                    played = max(0, ends[group.name] - firsts[group.name])
                    self.pushed_samples[group.name] += played
                    self.gap_samples[group.name] += played - _samples_in(
                        recorded_spans(self._gaps, second, second + 1.0), firsts[group.name], ends[group.name], group.fs
                    )
            self.pushed_s += 1
        return True

    def _outlet(self, group: RateGroup) -> Any:
        pylsl = import_pylsl()
        info = pylsl.StreamInfo(
            f"sleeplm-{self.bed_id}-{group.name}",
            "PSG",
            len(group.labels),
            group.fs,
            pylsl.cf_float32,
            f"{self.bed_id}:{group.name}",
        )
        desc = info.desc()
        channels = desc.append_child("channels")
        for label, unit in zip(group.labels, group.units, strict=True):
            channel = channels.append_child("channel")
            channel.append_child_value("label", label)
            channel.append_child_value("unit", unit)
            channel.append_child_value("type", CHANNELS[label].modality if label in CHANNELS else "")
        desc.append_child_value("sleeplm_bed", self.bed_id)
        desc.append_child_value("group", group.name)
        desc.append_child_value("recording_id", self.recording_id)
        desc.append_child_value("recording_start", repr(self.recording_start))
        desc.append_child_value("source", self.kind)
        desc.append_child_value("origin", self.origin)
        desc.append_child_value("record", self.record_id)
        # Each connected inlet may fall ~6 min of wall time behind at any speed before samples are dropped.
        return pylsl.StreamOutlet(info, max_buffered=int(360 * max(1.0, self.speed)))


class EdfReplay(SimulatedBed):
    """Replay an EDF/EDF+ file's signals as a bed, timed exactly like a simulated bed (see ``edf_recording``)."""

    kind = "edf"
    default_origin = RECORDED

    def __init__(
        self,
        bed_id: str,
        path: str | Path,
        speed: float = 1.0,
        channel_map: str | Path | None = None,
        recording_id: str | None = None,
        wait_for_consumers_s: float = 0.0,
    ) -> None:
        super().__init__(bed_id, edf_recording(path, channel_map), speed, recording_id, wait_for_consumers_s)


def recorded_spans(gaps: list[tuple[float, float]], start_s: float, end_s: float) -> list[tuple[float, float]]:
    """The parts of ``[start_s, end_s)`` outside every gap in ``gaps`` (sorted ``[start, end)`` pairs)."""
    spans, at = [], start_s
    for g0, g1 in gaps:
        if g1 <= at or g0 >= end_s:
            continue
        if g0 > at:
            spans.append((at, g0))
        at = max(at, g1)
    if at < end_s:
        spans.append((at, end_s))
    return spans


def _samples_in(spans: list[tuple[float, float]], first: int, end: int, fs: float) -> int:
    """How many sample indices in ``[first, end)`` lie in ``spans`` (seconds) at rate ``fs``."""
    return sum(max(0, min(end, math.ceil(b * fs - 1e-9)) - max(first, math.ceil(a * fs - 1e-9))) for a, b in spans)


# --- run_beds: N beds until stopped ---------------------------------------------------------------


def bed_ids(n: int, prefix: str = "bed") -> list[str]:
    """``bed-01``, ``bed-02``, ... (zero-padded so they sort)."""
    return [f"{prefix}-{i:02d}" for i in range(1, n + 1)]


def run_beds(
    n: int,
    speed: float = 1.0,
    hours: float = 8.0,
    seed: int = 0,
    source: str | Path = "synthetic",
    stop_event: threading.Event | None = None,
    piece_s: float = 1800.0,
    prefix: str = "bed",
    wait_for_bridge_s: float = 30.0,
    nights: int | None = None,
) -> None:
    """Stream ``n`` beds over LSL until ``stop_event`` is set; each bed starts a new night when one ends.

    ``nights`` bounds the nights per bed (tests and demos that need an exact epoch count); then the
    function returns once every bed is done.

    Beds are ``bed-01`` .. ``bed-NN`` (``prefix``). Each night waits up to ``wait_for_bridge_s`` for a
    reader on all its outlets before its first sample, so a bridge started just after the beds gets
    every night from the start.

    Blocks. Every bed's first night is read before any bed starts, so a bad ``source`` fails at once
    with a ``PSGError``; rendering happens in the beds' threads, so N beds start together. A bed that
    fails later stops all beds and its error is raised here.
    """
    if n < 1:
        raise PSGError(f"number of beds must be >= 1, got {n}")
    if not hours > 0:
        raise PSGError(f"hours must be > 0, got {hours!r}")
    stop = stop_event or threading.Event()
    first_nights = [night_for(source, i, hours, seed, piece_s) for i in range(n)]
    errors: list[BaseException] = []

    def play(index: int, bed_id: str) -> None:
        night, count, previous = first_nights[index], 0, ""
        try:
            while not stop.is_set() and (nights is None or count < nights):
                recording_id = recording_id_for(bed_id)
                if recording_id == previous:  # nights shorter than a second (tests): keep ids unique
                    recording_id = f"{recording_id}-{count}"
                SimulatedBed(bed_id, night, speed, recording_id, wait_for_bridge_s).run(stop)
                previous, count = recording_id, count + 1
                night = night_for(source, index + count * n, hours, seed + count, piece_s)
        except BaseException as exc:
            errors.append(exc)
            stop.set()
            log.exception("bed %s failed", bed_id)

    threads = [
        threading.Thread(target=play, args=(i, bed_id), name=f"bed-{bed_id}", daemon=True)
        for i, bed_id in enumerate(bed_ids(n, prefix))
    ]
    for thread in threads:
        thread.start()
    try:
        while not stop.wait(0.5):
            if not any(thread.is_alive() for thread in threads):
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join(10.0)
    if errors:
        raise PSGError(f"simulated beds stopped: {errors[0]}") from errors[0]


def wait_all_ready(beds: list[SimulatedBed], timeout: float = 30.0) -> None:
    """Block until every bed's outlets are open; ``PSGError`` naming the beds that are not."""
    deadline = time.monotonic() + timeout
    late = [bed.bed_id for bed in beds if not bed.wait_ready(max(0.0, deadline - time.monotonic()))]
    if late:
        raise PSGError(f"beds {late} did not open their LSL outlets within {timeout:g} s")
