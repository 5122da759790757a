"""A lab's own few-shot stage head (``sleeplm adapt``): a linear probe on the stage head's embeddings.

Why: a lab's amplifiers, montage and population differ from anything a simulator can randomise. Scoring a
handful of its own epochs per stage and fitting a regularised logistic regression on the stage head's
embeddings (the shared-space points the zero-shot stages are read from) moves the decision boundaries to
that lab, while the embedding, the novelty check and the 'uncertain' verdict stay the model's. The file is
plain arrays (``.npz``); offline commands take it with ``--lab-head`` and the live runtime with
``SLEEPLM_LAB_HEAD``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_runtime.model.head_file import load_head_file
from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.model.zero_shot import softmax
from psg.errors import PSGError

FORMAT = "sleeplm-lab-head/1"


@dataclass
class LabHead:
    """Logistic-regression weights over the stage head's unit embeddings, W..R in ``STAGE_LABELS`` order."""

    coef: np.ndarray  # (5, E)
    intercept: np.ndarray  # (5,)
    shots: int

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        return softmax(np.asarray(embeddings, np.float64) @ self.coef.T + self.intercept)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, format=np.array(FORMAT), coef=self.coef, intercept=self.intercept, shots=np.array(self.shots))
        return path

    @classmethod
    def load(cls, path: str | Path) -> LabHead:
        path = Path(path)
        return load_head_file(
            path,
            "lab head",
            f"make one with `sleeplm adapt NIGHT.edf ... --out {path}`",
            (FORMAT,),
            lambda z: cls(z["coef"], z["intercept"], int(z["shots"])),
        )


def pick_shots(labels: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``shots`` epochs per scored stage (all of a stage's epochs when it has fewer)."""
    picked = []
    for k in range(len(STAGE_LABELS)):
        idx = np.flatnonzero(labels == k)
        picked.extend(rng.choice(idx, size=min(shots, idx.size), replace=False).tolist())
    return np.array(sorted(picked), dtype=np.int64)


def fit_lab_head(embeddings: np.ndarray, labels: np.ndarray, shots: int) -> LabHead:
    """A regularised multinomial logistic regression on the picked epochs; a stage with no example keeps a
    very low intercept (the lab head never predicts a stage it was not shown). Fitting needs scikit-learn
    (the train extra); loading a head and staging with it (``LabHead``) need only NumPy."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:
        raise PSGError(
            "fitting a lab head needs scikit-learn, which the base install leaves out: pip install 'sleeplm[train]'"
        ) from exc

    present = sorted(set(labels.tolist()))
    if len(present) < 2:
        only = [STAGE_LABELS[k] for k in present]
        raise PSGError(f"adapting needs scored epochs of at least two stages; got only {only}")
    clf = LogisticRegression(C=1.0, max_iter=2000)
    clf.fit(embeddings, labels)
    coef = np.zeros((len(STAGE_LABELS), embeddings.shape[1]))
    intercept = np.full(len(STAGE_LABELS), -30.0)
    for row, k in enumerate(clf.classes_):
        if len(clf.classes_) == 2:  # sklearn's binary case has one row: class 1 vs class 0
            coef[k] = clf.coef_[0] * (1 if row == 1 else -1) / 2
            intercept[k] = clf.intercept_[0] * (1 if row == 1 else -1) / 2
        else:
            coef[k], intercept[k] = clf.coef_[row], clf.intercept_[row]
    return LabHead(coef, intercept, shots)
