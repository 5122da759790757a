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

The parts live by job: the validation nights and their truth in ``model_runtime.evaluation.nights``, the
pure metrics in ``model_runtime.evaluation.metrics``, the plots and the summary table in
``model_runtime.evaluation.report``; this module runs the model on the nights and puts the results together.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from model_runtime.evaluation.metrics import (
    detection_scores,
    dreem_agreement,
    few_shot_curve,
    mentions,
    recall_at_k,
    stage_metrics,
    stated_stage,
)
from model_runtime.evaluation.nights import EvalNight, prepare_night, validation_specs
from model_runtime.evaluation.report import write_plots
from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.model.text_tower import embed_texts, mask_numbers
from model_runtime.model.tokenizer import fill_slots
from model_runtime.serving.model_api import SleepLM
from psg.errors import PSGError
from psg.json_codec import to_jsonable
from psg.paths import shared_data_dir
from psg.timeline import RESPIRATORY_EVENT_TYPES

#: Generated captions are scored on this many seeded, scored epochs per night (decoding is the slow part).
CAPTION_EPOCHS_PER_NIGHT = 400
RETRIEVAL_EPOCHS = 1000
QUERY_TOP = 20
#: Query text -> the event type whose overlap makes a returned epoch a hit.
QUERIES: dict[str, str] = {"hypopnea": "hypopnea", "obstructive apnea": "obstructive_apnea"}
#: Acceptance thresholds of the issue (held-out simulated timelines).
CRITERIA = {"macro_f1": 0.80, "accuracy_over_yasa": 0.03, "stated_stage": 0.85, "respiratory_f1": 0.75, "query": 0.80}


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
