"""Model evaluation on held-out simulated nights: the numbers that go into ``benchmarks/RESULTS.md``.

What is measured, and why this way:

* **Validation nights** are the corpus specs whose timeline hashes to the validation split, so the model
  never saw these hypnograms in training. Each night is rendered by the simulator (known truth per epoch)
  and fed through the live path's exact input (``psg.model_input.recording_model_epochs``).
* **Zero-shot staging vs YASA on the same signals.** YASA (a LightGBM stager trained on real NSRR nights)
  scores the C4-A1, E1 and chin EMG channels of the *same* rendered night; both are scored on the same
  epochs (scored epochs where YASA has a label), so the comparison is like for like.
* **The human ceiling.** Dreem's five scorers each against the majority of the other four: a model
  cannot be expected to agree with the truth much better than experts agree with each other.
* **Retrieval** R@1/5/10 between 1000 sampled epochs and their reference captions, in both directions.
  Canonical captions repeat ('Stable Light Sleep (N2) ... No events'), so a hit is any candidate with
  the epoch's own caption text (numbers masked, as the text tower sees them), and, looser, any candidate
  with the same stage and the same set of events.
* **Caption facts.** Generated ``stage_event`` captions are parsed for the stated stage (first '(N2)'
  pattern) and for apnea/hypopnea mentions. Two variants: the product path (``describe`` with the model's
  smoothed zero-shot stage as prefix) and the decoder alone (stage prefix '?'). Reference captions pass
  through the same parser as a sanity check (should score 1.0).
* **Query**: precision of the top 20 epochs for 'hypopnea' / 'obstructive apnea' on nights holding them.
* **Few-shot**: a linear probe on embeddings with K labelled epochs per class, trained on half of the
  validation timelines and tested on the other half (split by timeline, so two renderings of one
  hypnogram never sit on both sides).
* **Speed** comes from ``model_runtime.evaluation.bench.bench_model`` when that module is present.

Rendered nights (model input, features, reference captions, YASA's labels) are cached per night in
``cache_dir``, so re-evaluating a new checkpoint only re-runs the model.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from tqdm import tqdm

from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.model.text_tower import embed_texts, mask_numbers
from model_runtime.model.tokenizer import fill_slots
from model_runtime.serving.model_api import SleepLM, respiratory_evidence
from model_runtime.training.corpus import NightSpec, default_specs, render
from psg.captions.night import caption_night
from psg.codecs import to_jsonable
from psg.detectors import detect_events
from psg.errors import PSGError
from psg.model_input import recording_model_epochs
from psg.montage import EEG_C4, EMG_CHIN, EOG_L
from psg.paths import shared_data_dir
from psg.recording import Recording
from psg.timeline import RESPIRATORY_EVENT_TYPES

#: Corpus spec parameters that define the validation nights (the same hash split as training).
PER_SOURCE, SYNTHETIC = 12, 8
#: Order in which validation nights are taken (round-robin), so ``nights=3`` still spans sources that
#: carry respiratory events (ucddb, synthetic) and pure staging sources (Dreem, Sleep-EDF, slpdb).
GROUP_ORDER: tuple[str, ...] = ("ucddb", "synthetic", "dreem", "sleep-edf", "slpdb")
#: Generated captions are scored on this many seeded, scored epochs per night (decoding is the slow part).
CAPTION_EPOCHS_PER_NIGHT = 400
RETRIEVAL_EPOCHS = 1000
RECALL_KS: tuple[int, ...] = (1, 5, 10)
FEW_SHOT_K: tuple[int, ...] = (1, 2, 5, 10, 20, 50)
FEW_SHOT_SEEDS: tuple[int, ...] = (0, 1, 2)
QUERY_TOP = 20
#: Query text -> the event type whose overlap makes a returned epoch a hit.
QUERIES: dict[str, str] = {"hypopnea": "hypopnea", "obstructive apnea": "obstructive_apnea"}
#: Acceptance thresholds of the issue (held-out simulated timelines).
CRITERIA = {"macro_f1": 0.80, "accuracy_over_yasa": 0.03, "stated_stage": 0.85, "respiratory_f1": 0.75, "query": 0.80}
_CACHE_VERSION = 2
_STATED = re.compile(r"\((W|N1|N2|N3|R)\)")
_RESPIRATORY_WORD = re.compile(r"apnea|hypopnea", re.IGNORECASE)
#: 'hypopnea' does not contain 'apnea', so this matches apneas only.
_APNEA_WORD = re.compile(r"apnea", re.IGNORECASE)
_HYPOPNEA_WORD = re.compile(r"hypopnea", re.IGNORECASE)
_YASA_LABELS = {"WAKE": "W", "REM": "R"}
_VOLTS = {"uv": 1e-6, "µv": 1e-6, "μv": 1e-6, "mv": 1e-3, "v": 1.0}


# --- one validation night ------------------------------------------------------------------------


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


# --- metric helpers (pure) -----------------------------------------------------------------------


def stage_metrics(truth: ArrayLike, pred: ArrayLike) -> dict:
    """Accuracy, macro-F1 (over the classes present in truth or prediction, sklearn's default), Cohen's
    kappa, per-class F1 (None for a class absent from both) and the 5x5 confusion (rows truth)."""
    from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, f1_score

    y_true, y_pred = np.asarray(truth, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    labels = list(range(len(STAGE_LABELS)))
    if y_true.size == 0:
        return {
            "epochs": 0,
            "accuracy": None,
            "macro_f1": None,
            "kappa": None,
            "per_class_f1": {},
            "confusion": np.zeros((5, 5), dtype=int).tolist(),
        }
    present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    per_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    kappa = cohen_kappa_score(y_true, y_pred, labels=labels) if len(present) > 1 else float("nan")
    return {
        "epochs": int(y_true.size),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "kappa": float(kappa),
        "per_class_f1": {STAGE_LABELS[k]: (float(per_class[k]) if k in present else None) for k in labels},
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def stated_stage(text: str) -> str | None:
    """The stage a stage_event caption states: its first '(W)', '(N1)', '(N2)', '(N3)' or '(R)'."""
    match = _STATED.search(text)
    return match.group(1) if match else None


def mentions(text: str, kind: str = "respiratory") -> bool:
    """Whether ``text`` mentions a 'respiratory' event (apnea or hypopnea), an 'apnea' or a 'hypopnea'."""
    pattern = {"respiratory": _RESPIRATORY_WORD, "apnea": _APNEA_WORD, "hypopnea": _HYPOPNEA_WORD}[kind]
    return pattern.search(text) is not None


def detection_scores(predicted: Sequence[bool], truth: Sequence[bool]) -> dict:
    """Epoch-level precision, recall and F1 of ``predicted`` against ``truth`` (None where undefined)."""
    p, t = np.asarray(predicted, dtype=bool), np.asarray(truth, dtype=bool)
    tp, fp, fn = int(np.sum(p & t)), int(np.sum(p & ~t)), int(np.sum(~p & t))
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn, "positives": tp + fn}


def recall_at_k(similarity: np.ndarray, relevant: np.ndarray, ks: Sequence[int] = RECALL_KS) -> dict[str, float]:
    """Fraction of queries (rows) with a relevant candidate among their ``k`` most similar columns.

    Ties are broken by column order (stable sort); duplicated captions have identical embeddings, so a
    duplicate of the right caption ties with it and counts as a hit.
    """
    similarity, relevant = np.asarray(similarity), np.asarray(relevant, dtype=bool)
    if similarity.shape != relevant.shape:
        raise PSGError(f"similarity {similarity.shape} and relevance {relevant.shape} must have one shape")
    order = np.argsort(-similarity, axis=1, kind="stable")
    hits = np.take_along_axis(relevant, order, axis=1)
    first = np.where(hits.any(axis=1), hits.argmax(axis=1), similarity.shape[1])
    return {f"R@{k}": float(np.mean(first < k)) for k in ks}


def consensus(votes: np.ndarray) -> np.ndarray:
    """Majority stage per epoch of ``votes`` (scorers, epochs) coded -1..4; -1 votes do not count, -1 where
    nobody scored. A tie goes to the tied label named by the first scorer (in row order) who voted for one."""
    votes = np.asarray(votes, dtype=np.int64)
    epochs = np.arange(votes.shape[1])
    counts = np.stack([(votes == k).sum(axis=0) for k in range(len(STAGE_LABELS))])  # (5, epochs)
    tied = (counts == counts.max(axis=0)) & (counts > 0)
    out = np.where(tied.sum(axis=0) == 1, counts.argmax(axis=0), -1)
    open_tie = tied.sum(axis=0) > 1
    for row in votes:
        take = open_tie & (row >= 0) & tied[np.clip(row, 0, None), epochs]
        out[take] = row[take]
        open_tie &= ~take
    return out


def scorer_agreement(nights: Sequence[np.ndarray]) -> dict:
    """Each scorer against the consensus of the others, pooled over ``nights`` ((scorers, epochs) each):
    per scorer metrics plus their means (the human ceiling a stager is compared with)."""
    if not nights:
        return {"nights": 0, "scorers": []}
    n_scorers = min(v.shape[0] for v in nights)
    per_scorer = []
    for k in range(n_scorers):
        truth, pred = [], []
        for votes in nights:
            others = consensus(np.delete(votes[:n_scorers], k, axis=0))
            keep = (votes[k] >= 0) & (others >= 0)
            truth.append(others[keep])
            pred.append(votes[k][keep])
        per_scorer.append(stage_metrics(np.concatenate(truth), np.concatenate(pred)))
    out = {"nights": len(nights), "scorers": per_scorer}
    for metric in ("accuracy", "macro_f1", "kappa"):
        out[f"mean_{metric}"] = float(np.mean([s[metric] for s in per_scorer]))
    return out


def dreem_agreement(data_dir: Path) -> dict:
    """Five-scorer agreement on the shared Dreem DOD-H and DOD-O hypnograms (``dodh``, ``dodo``, ``all``)."""
    from psg.formats.dreem import read_dreem_json

    out: dict[str, dict] = {}
    pooled: list[np.ndarray] = []
    for dataset in ("dodh", "dodo"):
        root = Path(data_dir) / "dreem" / dataset
        nights = []
        for first in sorted((root / "scorer_1").glob("*.json")):
            paths = [root / f"scorer_{k}" / first.name for k in range(1, 6)]
            if not all(p.is_file() for p in paths):
                continue
            stages = [read_dreem_json(p).stages.astype(np.int64) for p in paths]
            n = min(len(s) for s in stages)
            nights.append(np.stack([s[:n] for s in stages]))
        if nights:
            out[dataset] = scorer_agreement(nights)
            pooled += nights
    out["all"] = scorer_agreement(pooled)
    return out


def few_shot_curve(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    shots: Sequence[int] = FEW_SHOT_K,
    seeds: Sequence[int] = FEW_SHOT_SEEDS,
) -> dict:
    """Linear probe (logistic regression) with ``k`` labelled epochs per class from the train pool,
    evaluated on all test epochs; accuracy and macro-F1 mean and SD over ``seeds`` per ``k``.

    Embeddings are standardised with the *unlabelled* train pool's mean and SD (available without labels)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    train_x, test_x = np.asarray(train_x, dtype=np.float64), np.asarray(test_x, dtype=np.float64)
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    mean, sd = train_x.mean(axis=0), train_x.std(axis=0) + 1e-8
    train_x, test_x = (train_x - mean) / sd, (test_x - mean) / sd
    classes = np.unique(train_y)
    rows = []
    for k in shots:
        accs, f1s, sizes = [], [], []
        for seed in seeds:
            rng = np.random.default_rng(seed)
            picked = np.concatenate(
                [
                    rng.choice(np.flatnonzero(train_y == c), min(k, int(np.sum(train_y == c))), replace=False)
                    for c in classes
                ]
            )
            if len(np.unique(train_y[picked])) < 2:
                continue
            probe = LogisticRegression(max_iter=1000).fit(train_x[picked], train_y[picked])
            pred = probe.predict(test_x)
            accs.append(accuracy_score(test_y, pred))
            f1s.append(f1_score(test_y, pred, average="macro", zero_division=0))
            sizes.append(len(picked))
        rows.append(
            {
                "k": int(k),
                "train_epochs": int(np.mean(sizes)) if sizes else 0,
                "accuracy_mean": float(np.mean(accs)) if accs else None,
                "accuracy_sd": float(np.std(accs)) if accs else None,
                "macro_f1_mean": float(np.mean(f1s)) if f1s else None,
                "macro_f1_sd": float(np.std(f1s)) if f1s else None,
            }
        )
    return {"test_epochs": int(len(test_y)), "classes": [STAGE_LABELS[int(c)] for c in classes], "curve": rows}


# --- model-side steps ----------------------------------------------------------------------------


def embed_caption_texts(lm: SleepLM, texts: Sequence[str]) -> np.ndarray:
    """Unit embeddings (n, E) of many captions, as ``SleepLM.embed_text`` embeds one (numbers masked,
    MiniLM, the checkpoint's projection), each distinct text embedded once."""
    masked = [mask_numbers(t.strip()) for t in texts]
    unique = sorted(set(masked))
    if not unique:
        return np.zeros((0, lm.checkpoint.config.embed_dim), np.float32)
    projected = lm.checkpoint.embed_text(embed_texts(unique))
    index = {t: i for i, t in enumerate(unique)}
    return projected[[index[t] for t in masked]]


def zero_shot_stages(lm: SleepLM, embeddings: np.ndarray, smooth: bool) -> np.ndarray:
    """Stage indices per epoch exactly as ``SleepLM.stage(x, smooth)`` (from embeddings computed once)."""
    probs = lm.stage_probabilities(embeddings)
    if smooth and len(probs):
        probs = lm.smooth(probs)
    return probs.argmax(axis=1)


def caption_facts(texts: Sequence[str], truth: Sequence[int], events: Sequence[Sequence[str]]) -> dict:
    """Stated stage = truth rate and apnea/hypopnea mention scores of ``texts`` against the truth."""
    stated = [stated_stage(t) for t in texts]
    truth_labels = [STAGE_LABELS[int(s)] for s in truth]
    out: dict[str, Any] = {
        "epochs": len(texts),
        "stated_stage_accuracy": float(np.mean([s == t for s, t in zip(stated, truth_labels, strict=True)]))
        if texts
        else None,
        "no_stage_stated": float(np.mean([s is None for s in stated])) if texts else None,
    }
    kinds = {
        "respiratory": RESPIRATORY_EVENT_TYPES,
        "apnea": tuple(t for t in RESPIRATORY_EVENT_TYPES if "apnea" in t),
        "hypopnea": ("hypopnea",),
    }
    for kind, types in kinds.items():
        said = [mentions(t, kind) for t in texts]
        held = [any(e in types for e in ev) for ev in events]
        out[f"{kind}_mention"] = detection_scores(said, held)
    return out


def _sample(indices: np.ndarray, n: int | None, rng: np.random.Generator) -> np.ndarray:
    if n is None or len(indices) <= n:
        return indices
    return np.sort(rng.choice(indices, n, replace=False))


def caption_results(
    lm: SleepLM,
    nights: Sequence[EvalNight],
    memories: dict[str, np.ndarray],
    smoothed: dict[str, np.ndarray],
    per_night: int | None = CAPTION_EPOCHS_PER_NIGHT,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Caption facts of the product path (stage prefix = the model's smoothed zero-shot stage, evidence
    prefix = the AASM detectors' respiratory finding, via ``describe``), of the same without evidence, of
    the decoder alone (both prefixes '?') and of the reference captions, on sampled epochs."""
    rng = np.random.default_rng(seed)
    texts: dict[str, list[str]] = {
        "model_stage": [],
        "model_stage_no_evidence": [],
        "decoder_alone": [],
        "reference": [],
    }
    truth: list[int] = []
    events: list[list[str]] = []
    given: list[int] = []
    chunk = 64
    picks = {n.key: _sample(np.flatnonzero(n.truth >= 0), per_night, rng) for n in nights}
    bar = tqdm(total=sum(len(p) for p in picks.values()), desc="captions", unit="epoch", disable=not progress)
    for night in nights:
        idx = picks[night.key]
        for start in range(0, len(idx), chunk):
            part = idx[start : start + chunk]
            stages = [STAGE_LABELS[int(s)] for s in smoothed[night.key][part]]
            features = [night.features[i] for i in part]
            evidence = [night.evidence[i] for i in part]
            texts["model_stage"] += lm.describe(night.x[part], features, "stage_event", stages, evidence)
            texts["model_stage_no_evidence"] += lm.describe(night.x[part], features, "stage_event", stages)
            pieces = lm.generate(memories[night.key][part], "stage_event", ["?"] * len(part))
            texts["decoder_alone"] += [fill_slots(p, night.features[i], []) for p, i in zip(pieces, part, strict=True)]
            bar.update(len(part))
        texts["reference"] += [night.captions[i] for i in idx]
        truth += night.truth[idx].tolist()
        events += [night.events[i] for i in idx]
        given += smoothed[night.key][idx].tolist()
    bar.close()
    out: dict[str, Any] = {variant: caption_facts(t, truth, events) for variant, t in texts.items()}
    stated = [stated_stage(t) for t in texts["model_stage"]]
    out["model_stage"]["states_given_stage"] = (
        float(np.mean([s == STAGE_LABELS[g] for s, g in zip(stated, given, strict=True)])) if given else None
    )
    out["examples"] = [
        {
            "truth": STAGE_LABELS[truth[i]],
            "reference": texts["reference"][i],
            "model_stage": texts["model_stage"][i],
            "decoder_alone": texts["decoder_alone"][i],
        }
        for i in range(min(5, len(truth)))
    ]
    out["epochs_per_night"] = per_night
    return out


def retrieval_results(
    lm: SleepLM,
    nights: Sequence[EvalNight],
    embeddings: dict[str, np.ndarray],
    n: int = RETRIEVAL_EPOCHS,
    seed: int = 0,
) -> dict:
    """R@k signal->caption and caption->signal among ``n`` sampled scored epochs and their reference captions."""
    pool = [(night, i) for night in nights for i in np.flatnonzero(night.truth >= 0)]
    rng = np.random.default_rng(seed)
    chosen = [pool[j] for j in sorted(rng.choice(len(pool), min(n, len(pool)), replace=False))] if pool else []
    if not chosen:
        return {"epochs": 0}
    signal = np.stack([embeddings[night.key][i] for night, i in chosen])
    captions = [night.captions[i] for night, i in chosen]
    text = embed_caption_texts(lm, captions)
    similarity = signal @ text.T
    masked = np.array([mask_numbers(c) for c in captions])
    keys = np.array([f"{STAGE_LABELS[night.truth[i]]}|{','.join(night.events[i])}" for night, i in chosen])
    same_text, same_stage_events = masked[:, None] == masked[None, :], keys[:, None] == keys[None, :]
    return {
        "epochs": len(chosen),
        "distinct_captions": int(len(set(masked.tolist()))),
        "signal_to_caption": recall_at_k(similarity, same_text),
        "caption_to_signal": recall_at_k(similarity.T, same_text.T),
        "signal_to_caption_stage_events": recall_at_k(similarity, same_stage_events),
        "caption_to_signal_stage_events": recall_at_k(similarity.T, same_stage_events.T),
    }


def query_results(lm: SleepLM, nights: Sequence[EvalNight], embeddings: dict[str, np.ndarray]) -> dict:
    """Precision of ``query(text, top=20)`` on every night holding the event; mean over ucddb/synthetic
    nights (the issue's criterion) and over all nights, with the base rate (chance) for context."""
    out: dict[str, dict] = {}
    for text, event_type in QUERIES.items():
        rows: list[dict[str, Any]] = []
        for night in nights:
            held = night.has_event((event_type,))
            if not held.any():
                continue
            matches = lm.query(night.x, text, top=QUERY_TOP, embeddings=embeddings[night.key])
            rows.append(
                {
                    "night": night.key,
                    "group": night.group,
                    "precision": float(np.mean([held[m.epoch] for m in matches])),
                    "base_rate": float(held.mean()),
                    "epochs_with_event": int(held.sum()),
                }
            )
        headline = [r["precision"] for r in rows if r["group"] in ("ucddb", "synthetic")]
        out[text] = {
            "top": QUERY_TOP,
            "nights": rows,
            "mean_precision_ucddb_synthetic": float(np.mean(headline)) if headline else None,
            "mean_precision_all": float(np.mean([r["precision"] for r in rows])) if rows else None,
            "mean_base_rate": float(np.mean([r["base_rate"] for r in rows])) if rows else None,
        }
    return out


def split_by_timeline(nights: Sequence[EvalNight]) -> tuple[list[EvalNight], list[EvalNight]]:
    """Few-shot train/test halves: alternate *timelines* (both renderings of one hypnogram stay together)."""
    sources = list(dict.fromkeys(n.source for n in nights))
    train_sources = set(sources[::2])
    return [n for n in nights if n.source in train_sources], [n for n in nights if n.source not in train_sources]


def few_shot_results(nights: Sequence[EvalNight], embeddings: dict[str, np.ndarray], smoothed: dict) -> dict:
    """The probe curve on the timeline split, next to smoothed zero-shot staging on the same test epochs."""
    train, test = split_by_timeline(nights)
    if not train or not test:
        return {"skipped": "few-shot needs validation nights from at least two timelines"}

    def stack(group: Sequence[EvalNight]) -> tuple[np.ndarray, np.ndarray]:
        xs = [embeddings[n.key][n.truth >= 0] for n in group]
        ys = [n.truth[n.truth >= 0] for n in group]
        return np.concatenate(xs), np.concatenate(ys)

    train_x, train_y = stack(train)
    test_x, test_y = stack(test)
    out = few_shot_curve(train_x, train_y, test_x, test_y)
    zero = np.concatenate([smoothed[n.key][n.truth >= 0] for n in test])
    out["zero_shot_smoothed_on_test"] = stage_metrics(test_y, zero)
    out["train_nights"], out["test_nights"] = [n.key for n in train], [n.key for n in test]
    return out


def staging_results(nights: Sequence[EvalNight], smoothed: dict, raw: dict) -> dict:
    """Per night and pooled: model (smoothed, raw) and YASA on the same epochs."""
    rows: list[dict[str, Any]] = []
    pooled: dict[str, tuple[list, list]] = {"model_smoothed": ([], []), "model_raw": ([], []), "yasa": ([], [])}
    for night in nights:
        mask = night.eval_mask()
        truth = night.truth[mask]
        preds = {"model_smoothed": smoothed[night.key][mask], "model_raw": raw[night.key][mask]}
        if night.yasa is not None:
            preds["yasa"] = night.yasa[mask]
        row: dict[str, Any] = {
            "night": night.key,
            "group": night.group,
            "epochs": int(mask.sum()),
            "scored_epochs_without_yasa": int(np.sum((night.truth >= 0) & ~mask)),
        }
        for name, pred in preds.items():
            row[name] = stage_metrics(truth, pred)
            pooled[name][0].append(truth)
            pooled[name][1].append(pred)
        rows.append(row)
    out: dict[str, Any] = {"nights": rows}
    for name, (truths, predictions) in pooled.items():
        out[name] = stage_metrics(np.concatenate(truths), np.concatenate(predictions)) if truths else None
    yasa_nights = [r for r in rows if "yasa" in r]
    out["same_epochs_as_yasa"] = len(yasa_nights) == len(rows)
    if out["yasa"] and out["model_smoothed"]:
        out["accuracy_over_yasa"] = out["model_smoothed"]["accuracy"] - out["yasa"]["accuracy"]
    return out


# --- the whole evaluation ------------------------------------------------------------------------


def evaluate(
    checkpoint: str | Path | None = None,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    nights: int | None = None,
    *,
    backend: str = "torch",
    device: str | None = None,
    caption_epochs: int | None = CAPTION_EPOCHS_PER_NIGHT,
    retrieval_epochs: int = RETRIEVAL_EPOCHS,
    seed: int = 0,
    speed: bool = True,
) -> dict:
    """Evaluate ``checkpoint`` (default: the shipped one) on the validation nights of ``data_dir``.

    Returns the results dict (see the module docstring); with ``out_dir`` also writes
    ``model_eval.json`` and the plots there. ``cache_dir`` keeps rendered nights between runs.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data_dir = Path(data_dir) if data_dir else shared_data_dir()
    if not data_dir.is_dir():
        raise PSGError(f"shared data folder {data_dir} not found; pass --data or set SLEEPLM_DATA")
    specs = validation_specs(data_dir, nights)
    if not specs:
        raise PSGError(
            f"{data_dir}: no validation timelines found (expected ucddb/, dreem/, sleep-edfx-hypnograms/, slpdb/)"
        )
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    lm = SleepLM.load(checkpoint, backend=backend, device=device)
    evaluated = [
        prepare_night(s, Path(cache_dir) if cache_dir else None)
        for s in tqdm(specs, desc="render nights", unit="night", disable=not progress)
    ]
    timing["prepare_nights"] = time.perf_counter() - t0

    t = time.perf_counter()
    embeddings, memories, smoothed, raw = {}, {}, {}, {}
    for night in tqdm(evaluated, desc="encode", unit="night", disable=not progress):
        embeddings[night.key], memories[night.key] = lm.encode(night.x)
        smoothed[night.key] = zero_shot_stages(lm, embeddings[night.key], smooth=True)
        raw[night.key] = zero_shot_stages(lm, embeddings[night.key], smooth=False)
    timing["encode"] = time.perf_counter() - t

    result: dict = {
        "checkpoint": str(checkpoint) if checkpoint else "shipped",
        "data_dir": str(data_dir),
        "backend": type(lm.backend).__name__,
        "device": getattr(lm.backend, "device", None),
        "nights": [
            {
                "key": n.key,
                "source": n.source,
                "group": n.group,
                "epochs": n.n_epochs,
                "scored_epochs": int(np.sum(n.truth >= 0)),
            }
            for n in evaluated
        ],
        "criteria": CRITERIA,
    }
    steps = {
        "staging": lambda: staging_results(evaluated, smoothed, raw),
        "human_agreement_dreem": lambda: dreem_agreement(data_dir),
        "retrieval": lambda: retrieval_results(lm, evaluated, embeddings, retrieval_epochs, seed),
        "captions": lambda: caption_results(lm, evaluated, memories, smoothed, caption_epochs, seed, progress),
        "query": lambda: query_results(lm, evaluated, embeddings),
        "few_shot": lambda: few_shot_results(evaluated, embeddings, smoothed),
    }
    for name, step in steps.items():
        t = time.perf_counter()
        if progress:
            tqdm.write(f"evaluate: {name}")
        result[name] = step()
        timing[name] = time.perf_counter() - t
    if speed:
        t = time.perf_counter()
        result["speed"] = _speed(checkpoint)
        timing["speed"] = time.perf_counter() - t
    result["passes"] = check_criteria(result)
    result["timing_s"] = timing
    result = to_jsonable(result)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "model_eval.json").write_text(json.dumps(result, indent=2))
        result["plots"] = [str(p) for p in write_plots(result, out)]
    return result


def _speed(checkpoint: str | Path | None) -> dict:
    try:
        from model_runtime.evaluation.bench import bench_model
    except ImportError as exc:
        return {"skipped": f"model_runtime.evaluation.bench not available ({exc})"}
    try:
        return dict(bench_model(checkpoint, backend="auto", batch=256, seconds=10))
    except Exception as exc:  # noqa: BLE001 - the speed bench must not lose an hour of evaluation
        return {"error": f"{type(exc).__name__}: {exc}"}


def check_criteria(result: dict) -> dict:
    """The issue's acceptance checks as booleans (None where the number is missing)."""
    staging, captions, query = result.get("staging") or {}, result.get("captions") or {}, result.get("query") or {}
    model = staging.get("model_smoothed") or {}

    def at_least(value: float | None, bound: float) -> bool | None:
        return None if value is None else bool(value >= bound)

    product = captions.get("model_stage") or {}
    resp = (product.get("respiratory_mention") or {}).get("f1")
    hypopnea = (query.get("hypopnea") or {}).get("mean_precision_ucddb_synthetic")
    return {
        "macro_f1": at_least(model.get("macro_f1"), CRITERIA["macro_f1"]),
        "accuracy_over_yasa": at_least(staging.get("accuracy_over_yasa"), CRITERIA["accuracy_over_yasa"]),
        "stated_stage": at_least(product.get("stated_stage_accuracy"), CRITERIA["stated_stage"]),
        "respiratory_f1": at_least(resp, CRITERIA["respiratory_f1"]),
        "query_hypopnea": at_least(hypopnea, CRITERIA["query"]),
    }


# --- plots and the summary table -----------------------------------------------------------------


def write_plots(result: dict, out_dir: Path) -> list[Path]:
    """Confusion matrices (model vs YASA), the few-shot curve and per-night accuracy bars as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    written = []
    staging = result.get("staging") or {}
    candidates = [(name, staging.get(key)) for name, key in (("SleepLM zero-shot", "model_smoothed"), ("YASA", "yasa"))]
    panels = [(n, m) for n, m in candidates if m and m.get("epochs")]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.4), squeeze=False)
        for ax, (name, metrics) in zip(axes[0], panels, strict=True):
            cm = np.asarray(metrics["confusion"], dtype=float)
            norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
            ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
            for i in range(5):
                for j in range(5):
                    ax.text(
                        j,
                        i,
                        f"{norm[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
            ax.set_xticks(range(5), STAGE_LABELS)
            ax.set_yticks(range(5), STAGE_LABELS)
            ax.set_xlabel("predicted")
            ax.set_ylabel("truth")
            ax.set_title(f"{name}: acc {metrics['accuracy']:.3f}, F1 {metrics['macro_f1']:.3f}")
        fig.tight_layout()
        written.append(_save(fig, out_dir / "confusion.png"))
    curve = (result.get("few_shot") or {}).get("curve")
    if curve:
        fig, ax = plt.subplots(figsize=(6, 4))
        ks = [r["k"] for r in curve if r["accuracy_mean"] is not None]
        for metric, label in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
            ys = [r[f"{metric}_mean"] for r in curve if r["accuracy_mean"] is not None]
            sds = [r[f"{metric}_sd"] for r in curve if r["accuracy_mean"] is not None]
            ax.errorbar(ks, ys, yerr=sds, marker="o", capsize=3, label=f"linear probe {label}")
        zero = result["few_shot"].get("zero_shot_smoothed_on_test") or {}
        if zero.get("accuracy") is not None:
            ax.axhline(zero["accuracy"], color="grey", ls="--", label="zero-shot accuracy (same test epochs)")
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("labelled epochs per class")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        ax.set_title("Few-shot staging on held-out timelines")
        fig.tight_layout()
        written.append(_save(fig, out_dir / "few_shot.png"))
    rows = staging.get("nights") or []
    if rows:
        fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(rows) + 2), 4))
        pos = np.arange(len(rows))
        ax.bar(pos - 0.2, [r["model_smoothed"]["accuracy"] or 0 for r in rows], 0.4, label="SleepLM zero-shot")
        ax.bar(pos + 0.2, [(r.get("yasa") or {}).get("accuracy") or 0 for r in rows], 0.4, label="YASA")
        ax.set_xticks(pos, [f"{r['group']}:{r['night'][:10]}" for r in rows], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        ax.set_title("Staging accuracy per validation night")
        fig.tight_layout()
        written.append(_save(fig, out_dir / "per_night_accuracy.png"))
    return written


def _save(fig, path: Path) -> Path:  # noqa: ANN001 - a matplotlib Figure
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _fmt(value: object, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _row(*cells: object) -> str:
    return "| " + " | ".join(c if isinstance(c, str) else _fmt(c) for c in cells) + " |"


def summary_markdown(result: dict) -> str:
    """A compact markdown summary of ``result`` for ``benchmarks/RESULTS.md``."""
    staging = result.get("staging") or {}
    human = (result.get("human_agreement_dreem") or {}).get("all") or {}
    nights = result.get("nights", [])
    scored = sum(n["scored_epochs"] for n in nights)
    lines = [
        f"Validation nights: {len(nights)} ({scored} scored epochs), checkpoint `{result.get('checkpoint')}`",
        "",
        _row("Staging (same epochs)", "accuracy", "macro-F1", "kappa"),
        "|---|---|---|---|",
    ]
    for key, name in (
        ("model_smoothed", "SleepLM zero-shot, smoothed"),
        ("model_raw", "SleepLM zero-shot, raw"),
        ("yasa", "YASA on the same simulated signals"),
    ):
        m = staging.get(key) or {}
        lines.append(_row(name, m.get("accuracy"), m.get("macro_f1"), m.get("kappa")))
    lines.append(
        _row(
            f"Dreem scorer vs majority of the other four ({human.get('nights', 0)} nights)",
            human.get("mean_accuracy"),
            human.get("mean_macro_f1"),
            human.get("mean_kappa"),
        )
    )
    retrieval = result.get("retrieval") or {}
    if retrieval.get("epochs"):
        title = f"Retrieval among {retrieval['epochs']} epochs ({retrieval['distinct_captions']} distinct captions)"
        lines += ["", _row(title, "R@1", "R@5", "R@10"), "|---|---|---|---|"]
        for key, name in (
            ("signal_to_caption", "signal -> caption (same text)"),
            ("caption_to_signal", "caption -> signal (same text)"),
            ("signal_to_caption_stage_events", "signal -> caption (same stage + events)"),
            ("caption_to_signal_stage_events", "caption -> signal (same stage + events)"),
        ):
            r = retrieval[key]
            lines.append(_row(name, r["R@1"], r["R@5"], r["R@10"]))
    captions = result.get("captions") or {}
    if captions:
        lines += ["", _row("stage_event captions", "stated stage = truth", "resp. P", "resp. R", "resp. F1")]
        lines.append("|---|---|---|---|---|")
        for key, name in (
            ("model_stage", "generated, model's stage as prefix"),
            ("decoder_alone", "generated, prefix '?' (decoder alone)"),
            ("reference", "reference captions (sanity)"),
        ):
            c = captions[key]
            m = c["respiratory_mention"]
            name = f"{name}, {c['epochs']} epochs"
            lines.append(_row(name, c["stated_stage_accuracy"], m["precision"], m["recall"], m["f1"]))
    query = result.get("query") or {}
    if query:
        lines += ["", _row("Query", "precision@top (ucddb/synthetic)", "precision@top (all)", "base rate", "nights")]
        lines.append("|---|---|---|---|---|")
        for text, q in query.items():
            lines.append(
                _row(
                    f"'{text}', top {q['top']}",
                    q["mean_precision_ucddb_synthetic"],
                    q["mean_precision_all"],
                    q["mean_base_rate"],
                    str(len(q["nights"])),
                )
            )
    few = result.get("few_shot") or {}
    if few.get("curve"):
        lines += ["", _row(f"Few-shot probe, K per class ({few['test_epochs']} test epochs)", "accuracy", "macro-F1")]
        lines.append("|---|---|---|")
        for r in few["curve"]:
            acc = f"{_fmt(r['accuracy_mean'])} ± {_fmt(r['accuracy_sd'])}"
            f1 = f"{_fmt(r['macro_f1_mean'])} ± {_fmt(r['macro_f1_sd'])}"
            lines.append(_row(str(r["k"]), acc, f1))
    speed = result.get("speed")
    if speed:
        plain = ", ".join(f"{k} {_fmt(v, 2)}" for k, v in speed.items() if not isinstance(v, (dict, list)))
        lines += ["", f"Speed: {plain}"]
    verdicts = {True: "pass", False: "FAIL", None: "n/a"}
    checks = ", ".join(f"{k} {verdicts[v]}" for k, v in (result.get("passes") or {}).items())
    lines += ["", f"Criteria: {checks}"]
    return "\n".join(lines)
