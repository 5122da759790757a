"""Calibration on held-out nights, stored in the checkpoint: stage temperature, stage transitions, event thresholds.

* **Temperature.** Zero-shot stage probabilities are a softmax of scaled cosines; the scale that
  maximises the likelihood of the validation stages (temperature scaling, Guo et al. 2017) makes them
  honest probabilities, which the causal smoothing needs. It changes no argmax.
* **Transitions.** The causal smoothing's Markov chain uses the stage-to-stage transition frequencies of
  the training hypnograms (add-one smoothed): a prior over hypnogram shape, not a classifier.
* **Event thresholds.** Zero-shot event scores are cosine similarities, whose useful cut-off differs
  per event class. For each class the threshold that maximises epoch-level F1 on the validation nights
  is kept with the F1 it reached, so an advisory is only raised by a class that earned it (classes
  below ``MIN_F1`` get no threshold and never raise advisories).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model_runtime.model.prompts import NO_EVENT, NO_EVENT_PROMPTS, STAGE_LABELS
from model_runtime.model.text_tower import embed_texts, mask_numbers
from model_runtime.model.zero_shot import best_threshold, softmax
from model_runtime.serving.model_api import SleepLM

#: A class whose best validation F1 stays below this raises no advisories.
MIN_F1 = 0.5


def event_truth(events_per_epoch: list[list[dict]], label: str) -> np.ndarray:
    """1 where an event of class ``label`` overlaps the epoch (hypopnea: any subtype)."""
    return np.array([any(e["type"] == label for e in events) for events in events_per_epoch], dtype=bool)


def stage_transitions(cache_dir: Path, split: str = "train") -> np.ndarray:
    """(5, 5) row-stochastic transition frequencies between consecutive scored epochs of ``split`` nights."""
    counts = np.ones((len(STAGE_LABELS), len(STAGE_LABELS)))
    for npz in sorted(Path(cache_dir).glob("*.npz")):
        if npz.name.endswith(".tmp.npz") or json.loads(npz.with_suffix(".json").read_text())["split"] != split:
            continue
        with np.load(npz) as arrays:
            stages = arrays["stages"].astype(np.int64)
        pairs = (stages[:-1] >= 0) & (stages[1:] >= 0)
        np.add.at(counts, (stages[:-1][pairs], stages[1:][pairs]), 1)
    return counts / counts.sum(axis=1, keepdims=True)


def best_scale(cosines: np.ndarray, truth: np.ndarray) -> float:
    """The softmax scale (5..100) maximising the log-likelihood of ``truth`` given (n, k) cosines."""
    grid = np.linspace(5.0, 100.0, 96)
    nll = [-np.log(softmax(scale * cosines)[np.arange(len(truth)), truth] + 1e-12).mean() for scale in grid]
    return float(grid[int(np.argmin(nll))])


def ensure_no_event_prompts(checkpoint: Path) -> None:
    """Add the "no events" contrast prompts to a checkpoint trained before they existed."""
    from model_runtime.model.checkpoint import load_checkpoint, save_checkpoint  # torch: train extra

    ckpt = load_checkpoint(checkpoint)
    if NO_EVENT in ckpt.event_prompt_features:
        return
    ckpt.event_prompts[NO_EVENT] = list(NO_EVENT_PROMPTS)
    ckpt.event_prompt_features[NO_EVENT] = embed_texts([mask_numbers(t) for t in NO_EVENT_PROMPTS])
    save_checkpoint(ckpt, checkpoint)


def calibrate(checkpoint: Path, cache_dir: Path, out: Path | None = None) -> dict:
    """Fit temperature, transitions and event thresholds on the cached nights; write them into the checkpoint."""
    from model_runtime.model.checkpoint import load_checkpoint, save_checkpoint  # torch: train extra
    from model_runtime.training.dataset import (
        load_split,  # the corpus code: not for processes that only calibrate rules
    )

    ensure_no_event_prompts(checkpoint)
    lm = SleepLM.load(checkpoint, backend="torch")
    nights = load_split(cache_dir, "validation", progress=False)
    embeddings: list[np.ndarray] = []
    events: list[list[dict]] = []  # per scored epoch, its events (``event_truth``)
    stages: list[np.ndarray] = []
    for night in nights:
        scored = night.stages >= 0
        embeddings.append(lm.embed(night.x[scored].astype(np.float32)))
        events.extend(e for e, keep in zip(night.events, scored, strict=True) if keep)
        stages.append(night.stages[scored].astype(np.int64))
    emb = np.concatenate(embeddings)
    scale = best_scale(emb @ lm.stage_classes.T, np.concatenate(stages))
    scores = lm.event_scores(emb)
    report, thresholds = {}, {}
    for label, values in scores.items():
        threshold, f1 = best_threshold(values, event_truth(events, label))
        report[label] = {"threshold": threshold, "f1": f1, "positives": int(event_truth(events, label).sum())}
        if f1 >= MIN_F1:
            thresholds[label] = threshold
    ckpt = load_checkpoint(checkpoint)
    ckpt.calibration = {
        "stage_scale": scale,
        "transition": stage_transitions(cache_dir).tolist(),
        "event_thresholds": thresholds,
        "event_report": report,
        "epochs": int(len(emb)),
    }
    save_checkpoint(ckpt, out or checkpoint)
    return ckpt.calibration
