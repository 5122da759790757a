"""Few-shot staging: a linear probe (logistic regression) on frozen SleepLM embeddings.

Why a linear probe: it measures what the embedding space already separates, with K labelled epochs per
class and nothing else trained, which is how a lab would adapt the model to its own scoring. Training
epochs are drawn per class (K each, seeded) from the scored epochs; every other scored epoch is test.

>>> clf, train_idx = fit_probe(embeddings, labels, shots=10, seed=0)
>>> evaluate_probe(clf, embeddings, labels, train_idx)["macro_f1"]
>>> probe_curve(embeddings, labels, shots_list=[1, 5, 10, 50], seeds=[0, 1, 2])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model_runtime.model.prompts import STAGE_LABELS
from psg.errors import PSGError

#: Inverse regularisation strength; unit embeddings are rescaled by sqrt(E) first (see ``_scaled``).
C = 1.0


def fit_probe(embeddings: np.ndarray, labels: np.ndarray, shots: int, seed: int = 0):  # noqa: ANN201 - sklearn
    """Fit a logistic-regression probe on ``shots`` epochs per scored class; returns (classifier, train_idx).

    ``labels`` are indices into ``STAGE_LABELS`` with -1 for unscored epochs (never drawn). A class with
    fewer than ``shots`` scored epochs contributes all of them. At least two classes must be scored.
    """
    from sklearn.linear_model import LogisticRegression

    embeddings, labels = _check(embeddings, labels)
    if shots < 1:
        raise PSGError(f"--shots must be >= 1, got {shots}")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels[labels >= 0])
    if len(classes) < 2:
        raise PSGError(
            f"a probe needs scored epochs of at least two stages, found {[STAGE_LABELS[c] for c in classes]}"
        )
    train_idx = np.sort(
        np.concatenate(
            [
                rng.choice(np.flatnonzero(labels == c), size=min(shots, int((labels == c).sum())), replace=False)
                for c in classes
            ]
        )
    )
    classifier = LogisticRegression(C=C, max_iter=2000)
    classifier.fit(_scaled(embeddings[train_idx]), labels[train_idx])
    return classifier, train_idx


def evaluate_probe(classifier, embeddings: np.ndarray, labels: np.ndarray, train_idx: np.ndarray) -> dict:  # noqa: ANN001
    """Metrics on every scored epoch not in ``train_idx``: accuracy, macro-F1, Cohen's kappa, per-class F1."""
    from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

    embeddings, labels = _check(embeddings, labels)
    test = np.ones(len(labels), dtype=bool)
    test[train_idx] = False
    test &= labels >= 0
    if not test.any():
        raise PSGError("no scored epochs left to test the probe on; use fewer --shots or more nights")
    truth = labels[test]
    pred = classifier.predict(_scaled(embeddings[test]))
    present = sorted(set(truth.tolist()))
    per_class = f1_score(truth, pred, labels=present, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(truth, pred)),
        "macro_f1": float(f1_score(truth, pred, labels=present, average="macro", zero_division=0)),
        "kappa": _kappa(cohen_kappa_score, truth, pred),
        "per_class_f1": {STAGE_LABELS[c]: float(f) for c, f in zip(present, per_class, strict=True)},
        "train_epochs": int(len(train_idx)),
        "test_epochs": int(test.sum()),
    }


def run_probe(embeddings: np.ndarray, labels: np.ndarray, shots: int, seed: int = 0) -> dict:
    """Fit and evaluate once: ``{"shots", "accuracy", "macro_f1", "kappa", "per_class_f1", "train_epochs",
    "test_epochs"}`` (what ``sleeplm probe --json`` prints)."""
    classifier, train_idx = fit_probe(embeddings, labels, shots, seed)
    return {"shots": int(shots), **evaluate_probe(classifier, embeddings, labels, train_idx)}


def probe_curve(
    embeddings: np.ndarray, labels: np.ndarray, shots_list: Sequence[int], seeds: Sequence[int] = (0, 1, 2)
) -> list[dict]:
    """Few-shot learning curve: per K in ``shots_list``, metrics averaged over ``seeds`` (different draws).

    Each row: ``{"shots", "seeds", "accuracy", "macro_f1", "macro_f1_std", "kappa", "per_class_f1",
    "train_epochs", "test_epochs"}``; ``per_class_f1`` and epoch counts are means over seeds too.
    """
    if not seeds:
        raise PSGError("probe_curve needs at least one seed")
    rows = []
    for shots in shots_list:
        runs = [run_probe(embeddings, labels, shots, seed) for seed in seeds]
        classes = sorted({c for r in runs for c in r["per_class_f1"]}, key=STAGE_LABELS.index)
        f1s = [r["macro_f1"] for r in runs]
        rows.append(
            {
                "shots": int(shots),
                "seeds": [int(s) for s in seeds],
                "accuracy": float(np.mean([r["accuracy"] for r in runs])),
                "macro_f1": float(np.mean(f1s)),
                "macro_f1_std": float(np.std(f1s)),
                "kappa": float(np.mean([r["kappa"] for r in runs])),
                "per_class_f1": {
                    c: float(np.mean([r["per_class_f1"][c] for r in runs if c in r["per_class_f1"]])) for c in classes
                },
                "train_epochs": float(np.mean([r["train_epochs"] for r in runs])),
                "test_epochs": float(np.mean([r["test_epochs"] for r in runs])),
            }
        )
    return rows


def _scaled(embeddings: np.ndarray) -> np.ndarray:
    # Unit vectors have per-dimension spread ~1/sqrt(E); rescaling makes C mean the same for every model size.
    return embeddings * np.sqrt(embeddings.shape[1])


def _kappa(cohen_kappa_score, truth: np.ndarray, pred: np.ndarray) -> float:  # noqa: ANN001
    # Kappa is undefined (NaN, with a warning) when truth and prediction are one single class together.
    if len(set(truth.tolist()) | set(np.asarray(pred).tolist())) < 2:
        return 1.0 if np.array_equal(truth, pred) else 0.0
    return float(cohen_kappa_score(truth, pred))


def _check(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    embeddings = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if embeddings.ndim != 2 or labels.shape != (len(embeddings),):
        raise PSGError(f"probe expects embeddings (n, E) and labels (n,), got {embeddings.shape} and {labels.shape}")
    if labels.size and (labels.min() < -1 or labels.max() >= len(STAGE_LABELS)):
        raise PSGError(f"probe labels must be -1 (unscored) or 0..{len(STAGE_LABELS) - 1} ({', '.join(STAGE_LABELS)})")
    return embeddings, labels
