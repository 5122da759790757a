"""Calibration of the advisory event detector on validation nights (stored in the checkpoint).

Zero-shot event scores are cosine similarities, whose useful cut-off differs per event class. For
each class the threshold that maximises epoch-level F1 on the validation nights is kept, along with
the F1 it reached, so an advisory is only raised by a class that earned it (classes below
``MIN_F1`` get no threshold and never raise advisories).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model_runtime.checkpoint import load_checkpoint, save_checkpoint
from model_runtime.dataset import load_split
from model_runtime.sleeplm import SleepLM

#: A class whose best validation F1 stays below this raises no advisories.
MIN_F1 = 0.5


def event_truth(events_per_epoch: list[list[dict]], label: str) -> np.ndarray:
    """1 where an event of class ``label`` overlaps the epoch (hypopnea: any subtype)."""
    return np.array([any(e["type"] == label for e in events) for events in events_per_epoch], dtype=bool)


def best_threshold(scores: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 of ``scores >= threshold`` against ``truth``."""
    if truth.sum() == 0:
        return float("inf"), 0.0
    order = np.argsort(-scores)
    hits = np.cumsum(truth[order])
    predicted = np.arange(1, len(scores) + 1)
    f1 = 2 * hits / (predicted + truth.sum())
    best = int(np.argmax(f1))
    return float(scores[order][best]), float(f1[best])


def calibrate(checkpoint: Path, cache_dir: Path, out: Path | None = None) -> dict:
    """Fit per-class thresholds on the cached validation nights and write them into the checkpoint."""
    lm = SleepLM.load(checkpoint, backend="torch")
    nights = load_split(cache_dir, "validation", progress=False)
    embeddings, events = [], []
    for night in nights:
        scored = night.stages >= 0
        embeddings.append(lm.embed(night.x[scored].astype(np.float32)))
        events.extend(e for e, keep in zip(night.events, scored, strict=True) if keep)
    emb = np.concatenate(embeddings)
    scores = lm.event_scores(emb)
    report, thresholds = {}, {}
    for label, values in scores.items():
        threshold, f1 = best_threshold(values, event_truth(events, label))
        report[label] = {"threshold": threshold, "f1": f1, "positives": int(event_truth(events, label).sum())}
        if f1 >= MIN_F1:
            thresholds[label] = threshold
    ckpt = load_checkpoint(checkpoint)
    ckpt.calibration = {"event_thresholds": thresholds, "event_report": report, "epochs": int(len(emb))}
    save_checkpoint(ckpt, out or checkpoint)
    return ckpt.calibration
