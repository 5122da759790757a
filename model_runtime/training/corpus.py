"""The training corpus: 30-s model-input epochs paired with the multilevel captions of ``psg.captions``.

Why it is built this way:

* **Simulated nights from real timelines.** No raw PSG is on our machines, so every shared hypnogram
  (Dreem, ucddb, Sleep-EDF, slpdb) plus a few synthetic apnea-rich nights is rendered by ``psg.simulate``
  with several seeds, with and without artifacts. Each epoch then has a known truth (stage, events).
* **The live path's exact input.** Epochs go through ``psg.model_input.recording_model_epochs``, the
  offline twin of the live epocher (same resampling, same 6-epoch running normaliser), so the model is
  trained on what it serves.
* **Split by night, never by epoch.** Neighbouring epochs of one night are near-duplicates; splitting
  epochs would leak. ``split_of`` hashes the *timeline* (not the seed), so every rendering of one night
  lands in the same split.
* **Cached per night** (``<cache>/<night key>.npz`` + ``.json``): a rebuilt corpus only renders the nights
  it lacks, and the build shows a progress bar.
* **Real PSG too.** ``night_from_recording`` takes any ``Recording`` (``load_psg`` reads EDF/EDF+ with its
  own annotations, an NSRR XML or a Sleep-EDF hypnogram beside it), so a lab with scored real nights trains
  with the same code.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from psg.captions.night import caption_night
from psg.errors import PSGError
from psg.formats import read_psg, read_timeline
from psg.json_codec import to_jsonable
from psg.model_input import recording_model_epochs
from psg.recording import Recording
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline
from psg.timeline import RESPIRATORY_EVENT_TYPES, Stage, Timeline

#: Caption levels of every epoch, in the order of the decoder's modality prefix tokens.
#: Fraction of timelines held out for validation (by a hash of the timeline's file name).
VALIDATION_FRACTION = 0.2
#: Event flags stored per epoch (1 where an event of the group overlaps the epoch).
EVENT_FLAGS: tuple[str, ...] = ("apnea", "hypopnea", "arousal", "desaturation", "artifact")


@dataclass(frozen=True)
class NightSpec:
    """One night of the corpus: ``source`` is a timeline file (rendered by the simulator), ``synthetic:<seed>:<ahi>``,
    or a real scored PSG file (``.edf``: read as it is, EDF+ annotations or an NSRR XML beside it)."""

    source: str
    seed: int
    artifacts: bool

    @property
    def key(self) -> str:
        stem = Path(self.source).name.replace(":", "_").replace(".", "_")
        return f"{stem}-s{self.seed}{'-art' if self.artifacts else ''}"

    @property
    def split(self) -> str:
        return split_of(self.source)


@dataclass
class Night:
    """A night as arrays: ``x`` (n, 10, 1920) float16 model input, ``stages`` (n,) int8 (-1 unscored),
    ``flags`` (n, len(EVENT_FLAGS)) uint8, plus per-epoch captions/features/events for the text side."""

    key: str
    split: str
    x: np.ndarray
    stages: np.ndarray
    flags: np.ndarray
    captions: list[dict[str, str]]
    features: list[dict]
    events: list[list[dict]]


def split_of(source: str) -> str:
    """'validation' or 'train', fixed per timeline so that every rendering of a night shares its split."""
    name = Path(source).name if not source.startswith("synthetic:") else source
    digest = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    return "validation" if digest % 1000 < VALIDATION_FRACTION * 1000 else "train"


def timeline_sources(data_dir: Path, per_source: int | None = None) -> list[str]:
    """Shared hypnograms the simulator can render, at most ``per_source`` from each database, interleaved."""
    groups = [
        sorted((data_dir / "ucddb").glob("*_stage.txt")),
        sorted((data_dir / "dreem" / "dodh" / "scorer_1").glob("*.json")),
        sorted((data_dir / "dreem" / "dodo" / "scorer_1").glob("*.json")),
        sorted((data_dir / "sleep-edfx-hypnograms").glob("*.edf.csv")),
        sorted(p for p in (data_dir / "slpdb").glob("*.st") if p.with_suffix(".hea").is_file()),
    ]
    groups = [g[:per_source] for g in groups]
    out: list[str] = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.extend(str(g[i]) for g in groups if i < len(g))
    return out


def default_specs(
    data_dir: Path, per_source: int = 20, synthetic: int = 8, psg_dir: Path | None = None
) -> list[NightSpec]:
    """One rendering per shared timeline (every other one with artifacts), a second rendering of nights
    that carry scored respiratory events (ucddb, slpdb), synthetic nights with AHI 5-60, and every
    ``*.edf`` under ``psg_dir`` (a lab's real scored nights) as it is."""
    sources = timeline_sources(data_dir, per_source)
    sources += [f"synthetic:{1000 + i}:{5 + (55 * i) // max(synthetic - 1, 1)}" for i in range(synthetic)]
    specs = []
    for i, source in enumerate(sources):
        specs.append(NightSpec(source, seed=0, artifacts=i % 2 == 1))
        if "ucddb" in source or "slpdb" in source or source.startswith("synthetic:"):
            specs.append(NightSpec(source, seed=1, artifacts=i % 2 == 0))
    if psg_dir is not None:
        edfs = sorted(Path(psg_dir).rglob("*.edf"))
        if not edfs:
            raise PSGError(f"{psg_dir}: no .edf files to train on")
        specs += [NightSpec(str(path), seed=0, artifacts=False) for path in edfs]
    return specs


def render(spec: NightSpec) -> Recording:
    """The night of ``spec``: a real PSG file as recorded, else simulated (Sleep-EDF's day-long recordings
    cut to the sleep period +- 30 min)."""
    if spec.source.lower().endswith(".edf"):
        recording = load_psg(spec.source)
        if recording.timeline is None:
            raise PSGError(f"{spec.source}: no scored stages (EDF+ annotations or an NSRR XML beside it) to train on")
        return recording
    if spec.source.startswith("synthetic:"):
        _, seed, ahi = spec.source.split(":")
        timeline = synthetic_timeline(hours=8.0, seed=int(seed), ahi=float(ahi), record_id=spec.key)
    else:
        timeline = read_timeline(spec.source)
        timeline = _crop_to_sleep(timeline)
    return simulate(timeline, seed=spec.seed, artifacts=spec.artifacts)


def _crop_to_sleep(timeline: Timeline, margin_epochs: int = 60) -> Timeline:
    """Keep the sleep period +- ``margin_epochs`` (Sleep-EDF recordings run ~20 h, mostly daytime wake)."""
    period = timeline.sleep_period()
    if period is None:
        return timeline
    first = max(period[0] - margin_epochs, 0)
    last = min(period[1] + margin_epochs + 1, timeline.n_epochs)
    if first == 0 and last == timeline.n_epochs:
        return timeline
    t0, t1 = first * timeline.epoch_s, last * timeline.epoch_s
    beats = timeline.beat_times_s
    return replace(
        timeline,
        stages=timeline.stages[first:last],
        events=[replace(e, onset_s=e.onset_s - t0) for e in timeline.events if e.onset_s >= t0 and e.end_s <= t1],
        beat_times_s=None if beats is None else beats[(beats >= t0) & (beats < t1)] - t0,
        minute_labels={},
        start_time=None,
    )


def load_psg(path: str | Path, scoring: str | Path | None = None) -> Recording:
    """A real or simulated night from EDF/EDF+ with its channels on the montage (``psg.formats.read_psg``)."""
    return read_psg(path, scoring)[0]


def night_from_recording(recording: Recording, key: str, split: str, seed: int = 0) -> Night:
    """Model input, truth and varied multilevel captions of every whole epoch of ``recording``."""
    records, _ = caption_night(recording, style="varied", seed=seed)
    x = recording_model_epochs(recording)
    n = min(len(records), x.shape[0])
    records = records[:n]
    flags = np.zeros((n, len(EVENT_FLAGS)), dtype=np.uint8)
    for i, record in enumerate(records):
        for event in record["events"]:
            group = _flag_group(event["type"])
            if group is not None:
                flags[i, EVENT_FLAGS.index(group)] = 1
    return Night(
        key=key,
        split=split,
        x=x[:n].astype(np.float16),
        stages=np.array([int(Stage.from_label(r["stage"])) for r in records], dtype=np.int8),
        flags=flags,
        captions=[r["captions"] for r in records],
        features=[to_jsonable(r["features"]) for r in records],
        events=[r["events"] for r in records],
    )


def _flag_group(event_type: str) -> str | None:
    if event_type in RESPIRATORY_EVENT_TYPES:
        return "hypopnea" if event_type == "hypopnea" else "apnea"
    return event_type if event_type in EVENT_FLAGS else None


def build_night(spec: NightSpec, cache_dir: Path) -> Path:
    """Render, caption and cache one night (skipped when its cache files exist). Returns the .npz path."""
    npz = cache_dir / f"{spec.key}.npz"
    meta = npz.with_suffix(".json")
    if npz.is_file() and meta.is_file():
        return npz
    night = night_from_recording(render(spec), spec.key, spec.split, seed=spec.seed)
    save_night(night, cache_dir)
    return npz


def save_night(night: Night, cache_dir: Path) -> Path:
    """Write ``night`` as ``<key>.npz`` (arrays) + ``<key>.json`` (text side); the .npz is written last."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    npz = cache_dir / f"{night.key}.npz"
    meta = {
        "key": night.key,
        "split": night.split,
        "captions": night.captions,
        "features": night.features,
        "events": night.events,
    }
    npz.with_suffix(".json").write_text(json.dumps(meta))
    tmp = npz.with_suffix(".tmp.npz")
    np.savez(tmp, x=night.x, stages=night.stages, flags=night.flags)
    tmp.replace(npz)
    return npz


def load_night(npz: Path) -> Night:
    """Read a cached night back."""
    meta = json.loads(npz.with_suffix(".json").read_text())
    with np.load(npz) as arrays:
        return Night(
            meta["key"],
            meta["split"],
            arrays["x"],
            arrays["stages"],
            arrays["flags"],
            meta["captions"],
            meta["features"],
            meta["events"],
        )


def build_corpus(specs: list[NightSpec], cache_dir: Path, workers: int = 2, progress: bool = True) -> list[Path]:
    """Build every night of ``specs`` into ``cache_dir`` (``workers`` processes) and return their .npz paths."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if workers <= 1:
        return [build_night(s, cache_dir) for s in tqdm(specs, desc="corpus", unit="night", disable=not progress)]
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(build_night, s, cache_dir) for s in specs]
        return [f.result() for f in tqdm(futures, desc="corpus", unit="night", disable=not progress)]
