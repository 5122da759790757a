"""The validation nights of the model evaluation: rendered once, with their truth and YASA's labels.

Kept apart from ``model_runtime.evaluation.evaluate`` because preparing a night is its own job (render the corpus
spec, caption it, run YASA, cache it) and because the reference bank (``model_runtime.serving.reference_bank``)
picks the same held-out nights without needing the evaluation harness.

Rendered nights (model input, features, reference captions, YASA's labels) are cached per night in
``cache_dir``, so re-evaluating a new checkpoint only re-runs the model.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.serving.model_api import respiratory_evidence
from model_runtime.training.corpus import NightSpec, default_specs, render
from psg.captions.night import caption_night
from psg.detectors import detect_events
from psg.errors import PSGError
from psg.json_codec import to_jsonable
from psg.model_input import recording_model_epochs
from psg.montage import EEG_C4, EMG_CHIN, EOG_L
from psg.recording import Recording

#: Corpus spec parameters that define the validation nights (the same hash split as training).
PER_SOURCE, SYNTHETIC = 12, 8
#: Order in which validation nights are taken (round-robin), so ``nights=3`` still spans sources that
#: carry respiratory events (ucddb, synthetic) and pure staging sources (Dreem, Sleep-EDF, slpdb).
GROUP_ORDER: tuple[str, ...] = ("ucddb", "synthetic", "dreem", "sleep-edf", "slpdb")
_CACHE_VERSION = 2
_YASA_LABELS = {"WAKE": "W", "REM": "R"}
_VOLTS = {"uv": 1e-6, "µv": 1e-6, "μv": 1e-6, "mv": 1e-3, "v": 1.0}


@dataclass
class EvalNight:
    """A rendered validation night with its truth.

    ``truth`` and ``yasa`` are indices into ``STAGE_LABELS`` (-1: unscored / no YASA label); ``events``
    lists per epoch the event types overlapping it ('hypopnea', 'arousal', ...), as the captions do.
    """

    key: str
    source: str
    group: str
    x: np.ndarray  # (n, 10, 1920) float32
    features: list[dict]
    captions: list[str]  # reference stage_event captions (canonical phrasing)
    truth: np.ndarray
    events: list[list[str]]
    yasa: np.ndarray | None
    #: Per epoch, the respiratory event type the AASM rule detectors measured ('none'): the decoder's
    #: evidence prefix, exactly as `sleeplm describe` and the live path give it (never the truth).
    evidence: list[str] = field(default_factory=list)

    @property
    def n_epochs(self) -> int:
        return int(self.x.shape[0])

    def has_event(self, types: Sequence[str]) -> np.ndarray:
        """(n,) bool: an event of one of ``types`` overlaps the epoch."""
        return np.array([any(t in types for t in ev) for ev in self.events], dtype=bool)

    def eval_mask(self) -> np.ndarray:
        """Epochs staging is scored on: scored truth and, where YASA ran, a YASA label (same set for both)."""
        mask = self.truth >= 0
        return mask & (self.yasa >= 0) if self.yasa is not None else mask


def source_group(source: str) -> str:
    """'ucddb', 'synthetic', 'dreem', 'sleep-edf', 'slpdb' (or 'other') for a spec's source."""
    if source.startswith("synthetic:"):
        return "synthetic"
    parts = Path(source).parts
    for group, marker in (("ucddb", "ucddb"), ("dreem", "dreem"), ("sleep-edf", "sleep-edfx-hypnograms")):
        if marker in parts:
            return group
    return "slpdb" if "slpdb" in parts else "other"


def validation_specs(data_dir: Path, nights: int | None = None) -> list[NightSpec]:
    """Validation specs in round-robin order over ``GROUP_ORDER``, at most ``nights`` of them."""
    specs = [
        s for s in default_specs(Path(data_dir), per_source=PER_SOURCE, synthetic=SYNTHETIC) if s.split == "validation"
    ]
    by_group: dict[str, list[NightSpec]] = {}
    for spec in specs:
        by_group.setdefault(source_group(spec.source), []).append(spec)
    groups = [by_group[g] for g in (*GROUP_ORDER, "other") if g in by_group]
    ordered = [g[i] for i in range(max((len(g) for g in groups), default=0)) for g in groups if i < len(g)]
    return ordered if nights is None else ordered[: max(int(nights), 0)]


def yasa_stages(recording: Recording) -> np.ndarray:
    """YASA's stage per 30-s epoch of the whole recording (indices into ``STAGE_LABELS``) from C4-A1, E1
    and chin EMG at their native rate, as ``benchmarks/yasa_agreement.py`` runs it."""
    import mne
    import yasa

    logging.getLogger("yasa").setLevel(logging.ERROR)
    names = [EEG_C4, EOG_L, EMG_CHIN]
    signals = [recording.require(name) for name in names]
    fs = signals[0].fs
    if any(s.fs != fs for s in signals):
        raise PSGError(
            f"{recording.record_id}: YASA needs {', '.join(names)} at one rate, got {[s.fs for s in signals]}"
        )
    n = min(len(s.data) for s in signals)
    data = np.vstack([s.data[:n] * _VOLTS.get(s.unit.strip().lower(), 1e-6) for s in signals])  # MNE works in volts
    info = mne.create_info(names, fs, ch_types=["eeg", "eog", "emg"], verbose=False)
    raw = mne.io.RawArray(data, info, verbose=False)
    with warnings.catch_warnings():  # YASA's pickled classifier predates our scikit-learn (harmless)
        warnings.simplefilter("ignore", UserWarning)
        staging = yasa.SleepStaging(raw, eeg_name=EEG_C4, eog_name=EOG_L, emg_name=EMG_CHIN)
        hypno = staging.predict().hypno.to_numpy()
    labels = [_YASA_LABELS.get(str(v), str(v)) for v in hypno]
    return np.array([STAGE_LABELS.index(v) if v in STAGE_LABELS else -1 for v in labels], dtype=np.int64)


def night_from_recording(recording: Recording, key: str, source: str, run_yasa: bool = True) -> EvalNight:
    """Model input, features, canonical reference captions, truth and YASA's labels of ``recording``."""
    records, _ = caption_night(recording, style="canonical")
    x = recording_model_epochs(recording)
    n = min(len(records), x.shape[0])
    records = records[:n]
    truth = np.array([STAGE_LABELS.index(r["stage"]) if r["stage"] in STAGE_LABELS else -1 for r in records])
    yasa = None
    if run_yasa:
        labels = yasa_stages(recording)[:n]
        yasa = np.full(n, -1, dtype=np.int64)
        yasa[: len(labels)] = labels
    return EvalNight(
        key=key,
        source=source,
        group=source_group(source),
        x=np.ascontiguousarray(x[:n], dtype=np.float32),
        features=[to_jsonable(r["features"]) for r in records],
        captions=[r["captions"]["stage_event"] for r in records],
        truth=truth.astype(np.int64),
        events=[sorted({e["type"] for e in r["events"]}) for r in records],
        yasa=yasa,
        evidence=respiratory_evidence([e.to_dict() for e in detect_events(recording)], n),
    )


def prepare_night(spec: NightSpec, cache_dir: Path | None = None) -> EvalNight:
    """Render ``spec`` into an ``EvalNight`` (from ``cache_dir`` when cached there)."""
    stem = f"eval-v{_CACHE_VERSION}-{spec.key}"
    if cache_dir is not None:
        npz, meta_path = Path(cache_dir) / f"{stem}.npz", Path(cache_dir) / f"{stem}.json"
        if npz.is_file() and meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            with np.load(npz) as arrays:
                yasa = arrays["yasa"] if meta["has_yasa"] else None
                return EvalNight(
                    spec.key,
                    spec.source,
                    source_group(spec.source),
                    arrays["x"],
                    meta["features"],
                    meta["captions"],
                    arrays["truth"],
                    meta["events"],
                    yasa,
                    meta["evidence"],
                )
    night = night_from_recording(render(spec), spec.key, spec.source)
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        meta = {
            "features": night.features,
            "captions": night.captions,
            "events": night.events,
            "evidence": night.evidence,
        }
        meta_path.write_text(json.dumps({**meta, "has_yasa": night.yasa is not None, "source": spec.source}))
        tmp = npz.with_suffix(".tmp.npz")
        yasa = night.yasa if night.yasa is not None else np.zeros(0, np.int64)
        np.savez(tmp, x=night.x, truth=night.truth, yasa=yasa)
        tmp.replace(npz)
    return night
