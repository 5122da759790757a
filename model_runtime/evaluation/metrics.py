"""The pure metrics of the model evaluation: staging scores, caption parsing, recall@k, scorer agreement
and the few-shot probe curve.

Kept apart from ``model_runtime.evaluation.evaluate`` because these take arrays and strings, not a model: they are
checked by hand on small inputs, and the Dreem scorer agreement (the human ceiling) needs no checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from model_runtime.model.prompts import STAGE_LABELS
from psg.errors import PSGError

RECALL_KS: tuple[int, ...] = (1, 5, 10)
FEW_SHOT_K: tuple[int, ...] = (1, 2, 5, 10, 20, 50)
FEW_SHOT_SEEDS: tuple[int, ...] = (0, 1, 2)
_STATED = re.compile(r"\((W|N1|N2|N3|R)\)")
_RESPIRATORY_WORD = re.compile(r"apnea|hypopnea", re.IGNORECASE)
#: 'hypopnea' does not contain 'apnea', so this matches apneas only.
_APNEA_WORD = re.compile(r"apnea", re.IGNORECASE)
_HYPOPNEA_WORD = re.compile(r"hypopnea", re.IGNORECASE)


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
