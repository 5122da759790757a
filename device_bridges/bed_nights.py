"""What a simulated bed plays: a timeline rendered piece by piece, an EDF file's own signals, or the
nights picked from a source (``synthetic``, a timeline file or a folder of them).

Kept apart from ``device_bridges.simulated`` (the bed: LSL outlets on a virtual device clock) because
choosing and rendering a night needs no LSL: the bed takes any ``Recording`` or iterable of pieces, and
tests build nights from here without opening an outlet.

Rendering a whole 8-h night costs ~4 s and ~350 MB per bed, so ``SimulatedNight`` renders the night in
pieces (30 min by default) one piece ahead of playback in a background thread: N beds start in about a
second and hold two pieces each. Each piece is simulated from its slice of the timeline with the bed's
seed (the same simulated subject all night); at a piece boundary the waveforms restart, which looks like
a brief movement artifact. Pick ``piece_s`` >= the night's length to render it in one go.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np

from psg.channel_map_format import load_map_file
from psg.errors import PSGError
from psg.montage import CHANNELS, EPOCH_S
from psg.paths import shared_data_dir
from psg.quality.signal_loss import ARBITRARY_UNIT
from psg.recording import Recording, Signal, require_analysable
from psg.timeline import Timeline

log = logging.getLogger(__name__)

#: Annotation files ``read_timeline`` understands, for picking nights out of a folder.
_TIMELINE_PATTERNS = ("*.json", "*_stage.txt", "*.edf.csv", "*.st", "*.npz", "*.xml", "*.edf")


def slice_timeline(timeline: Timeline, start_s: float, end_s: float) -> Timeline:
    """The part of ``timeline`` in [start_s, end_s) (whole epochs), times shifted to start at 0."""
    e0, e1 = int(start_s // timeline.epoch_s), int(math.ceil(end_s / timeline.epoch_s))
    start_s, end_s = e0 * timeline.epoch_s, min(e1, timeline.n_epochs) * timeline.epoch_s
    events = []
    for ev in timeline.events:
        if start_s <= ev.onset_s < end_s or ev.overlaps(start_s, end_s):
            onset = max(ev.onset_s, start_s)
            events.append(replace(ev, onset_s=onset - start_s, duration_s=min(ev.end_s, end_s) - onset))
    beats = timeline.beat_times_s
    if beats is not None:
        beats = beats[(beats >= start_s) & (beats < end_s)] - start_s
    return Timeline(
        record_id=timeline.record_id,
        stages=timeline.stages[e0:e1],
        events=events,
        epoch_s=timeline.epoch_s,
        beat_times_s=beats,
        start_time=timeline.start_time + timedelta(seconds=start_s) if timeline.start_time else None,
        source=timeline.source,
    )


class SimulatedNight:
    """A timeline rendered lazily, piece by piece, one piece ahead of whoever iterates it."""

    def __init__(self, timeline: Timeline, seed: int = 0, piece_s: float = 1800.0, artifacts: bool = False) -> None:
        if piece_s < EPOCH_S:
            raise PSGError(f"piece_s must be at least one epoch ({EPOCH_S:g} s), got {piece_s!r}")
        self.timeline = timeline
        self.seed = seed
        self.piece_s = math.floor(piece_s / timeline.epoch_s) * timeline.epoch_s
        self.artifacts = artifacts
        self.record_id = timeline.record_id

    @property
    def duration_s(self) -> float:
        return self.timeline.duration_s

    def render(self, index: int) -> Recording:
        """Piece ``index`` of the night as a ``Recording`` at the device rates."""
        from psg.simulate import simulate

        start = index * self.piece_s
        piece = slice_timeline(self.timeline, start, start + self.piece_s)
        return simulate(piece, seed=self.seed, artifacts=self.artifacts)

    def __iter__(self) -> Iterator[Recording]:
        n = max(1, math.ceil(self.duration_s / self.piece_s))
        with ThreadPoolExecutor(1, thread_name_prefix=f"render-{self.record_id}") as pool:
            queue = [pool.submit(self.render, 0)]
            for index in range(1, n + 1):
                if index < n:
                    queue.append(pool.submit(self.render, index))
                yield queue.pop(0).result()  # not kept here: the bed frees each piece once converted


def edf_recording(path: str | Path, channel_map: str | Path | None = None) -> Recording:
    """An EDF/EDF+ file's signals under montage labels, in montage units, ready to replay.

    Channels are recognised by ``psg.channels`` (files this project wrote map onto themselves);
    ``channel_map`` (a channel-map TOML file) wins over the table. ``PSGError`` if none is recognised.
    Recognised extras that lost their slot are not replayed (the beds stream montage channels only). An
    annotation-only file (a hypnogram) or one shorter than an epoch is refused as every command refuses it
    (``require_analysable``); an EDF+D file's gaps travel with the signals (the bed does not stream them).
    """
    from psg.formats import read_mapped_edf

    recording, report = read_mapped_edf(path, lab_map=load_map_file(channel_map) if channel_map else None)
    require_analysable(recording, str(path))
    log.info("%s", report.summary())
    signals = {label: on_montage_range(signal) for label, signal in recording.signals.items() if label in CHANNELS}
    return Recording(
        recording.record_id,
        signals,
        recording.start_time,
        recording.timeline,
        gaps=recording.gaps,
        metadata=recording.metadata,
    )


def on_montage_range(signal: Signal) -> Signal:
    """``signal`` to stream: a trace in arbitrary units (airflow, belts) moved from the file's range onto our
    montage's, since on the wire a.u. means ours (a stream carries no range; a device's map scales into it).
    Offline the file's range travels with the samples (``Signal.rails``); live, a Nox belt in volts (~50 uV
    on +-0.5 mV) would otherwise read as lead-off against +-5 a.u. Voltage channels stream as they are."""
    spec = CHANNELS[signal.label]
    if signal.rails is None or spec.unit != ARBITRARY_UNIT or signal.rails == (spec.physical_min, spec.physical_max):
        return signal
    (low, high), ours = signal.rails, (spec.physical_min, spec.physical_max)
    gain = (ours[1] - ours[0]) / (high - low)
    return Signal(signal.label, ours[0] + (signal.data - low) * gain, signal.fs, signal.unit, ours)


def night_for(
    source: str | Path, index: int, hours: float, seed: int, piece_s: float = 1800.0
) -> SimulatedNight | Recording:
    """The night bed ``index`` (0-based) plays: generated (``synthetic``), rendered from a timeline file,
    or an EDF file's own signals (an ``.edf`` with montage-labelled signals is replayed, not simulated).

    ``source`` is ``"synthetic"`` or a timeline file or folder (relative paths are tried against the
    working directory, then against the shared data folder); a folder hands its annotation files to the
    beds in turn. Every bed gets its own seed, so beds sharing a timeline still differ. Only the first
    ``hours`` of a timeline are played.
    """
    from psg.formats import read_timeline
    from psg.synthetic import synthetic_timeline

    bed_seed = seed * 10_007 + index
    if str(source) == "synthetic":
        ahi = float(np.random.default_rng(bed_seed).choice([3.0, 8.0, 15.0, 25.0, 40.0]))
        timeline = synthetic_timeline(hours=hours, seed=bed_seed, ahi=ahi, record_id=f"synthetic-{bed_seed}")
    else:
        files = timeline_files(resolve_source(source))
        chosen = files[index % len(files)]
        if chosen.suffix.lower() == ".edf" and _has_signals(chosen):
            return edf_recording(chosen)
        timeline = read_timeline(chosen)
        timeline = slice_timeline(timeline, 0.0, hours * 3600.0)
    if timeline.n_epochs == 0:
        raise PSGError(f"{source}: timeline {timeline.record_id!r} has no epochs to play")
    return SimulatedNight(timeline, seed=bed_seed, piece_s=piece_s)


def _has_signals(path: Path) -> bool:
    from psg.formats import read_edf

    return bool(read_edf(path).signals)


def resolve_source(source: str | Path) -> Path:
    """A timeline path as given, else relative to the shared data folder; ``PSGError`` if neither exists."""
    path = Path(source).expanduser()
    for candidate in (path, shared_data_dir() / path):
        if candidate.exists() or candidate.with_suffix(".st").exists():
            return candidate
    raise PSGError(f"bed source {str(source)!r}: no such file or folder (also tried under {shared_data_dir()})")


def timeline_files(path: Path) -> list[Path]:
    """The annotation files in ``path`` (a file: itself), sorted; ``PSGError`` if there are none."""
    if not path.is_dir():
        return [path]
    found = sorted({f for pattern in _TIMELINE_PATTERNS for f in path.rglob(pattern) if f.is_file()})
    if not found:
        raise PSGError(f"{path}: no annotation files ({', '.join(_TIMELINE_PATTERNS)}) to play")
    return found
