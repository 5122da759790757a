"""Linear probe on embeddings: K-per-class draws, metrics, learning curve, errors; and on real tiny-model embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_runtime.evaluation.probe import evaluate_probe, fit_probe, probe_curve, run_probe
from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.serving.model_api import SleepLM
from model_runtime.serving.night import embed_night, load_night_input
from psg.errors import PSGError

RESULT_KEYS = {"shots", "accuracy", "macro_f1", "kappa", "per_class_f1", "train_epochs", "test_epochs"}


def clusters(n_per_class: int = 40, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Five well-separated unit-vector clusters (one per stage) plus a few unscored epochs."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((5, dim))
    labels = np.repeat(np.arange(5), n_per_class)
    x = centres[labels] + 0.15 * rng.standard_normal((len(labels), dim))
    x = np.concatenate([x, rng.standard_normal((7, dim))])
    labels = np.concatenate([labels, np.full(7, -1)])
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


def test_fit_probe_draws_k_per_class_and_never_unscored() -> None:
    x, y = clusters()
    clf, train_idx = fit_probe(x, y, shots=3, seed=1)
    assert len(train_idx) == 15 and (y[train_idx] >= 0).all()
    assert np.bincount(y[train_idx], minlength=5).tolist() == [3] * 5
    _, again = fit_probe(x, y, shots=3, seed=1)
    _, other = fit_probe(x, y, shots=3, seed=2)
    assert np.array_equal(train_idx, again) and not np.array_equal(train_idx, other)
    assert list(clf.classes_) == [0, 1, 2, 3, 4]


def test_probe_separates_clusters_and_counts_epochs() -> None:
    x, y = clusters()
    result = run_probe(x, y, shots=5, seed=0)
    assert set(result) == RESULT_KEYS
    assert result["accuracy"] > 0.95 and result["macro_f1"] > 0.95 and result["kappa"] > 0.9
    assert set(result["per_class_f1"]) == set(STAGE_LABELS)
    assert result["train_epochs"] == 25 and result["test_epochs"] == 200 - 25


def test_small_class_contributes_all_its_epochs() -> None:
    x, y = clusters()
    y = y.copy()
    y[np.flatnonzero(y == 1)[2:]] = -1  # N1: only two scored epochs
    clf, train_idx = fit_probe(x, y, shots=5, seed=0)
    assert np.bincount(y[train_idx], minlength=5).tolist() == [5, 2, 5, 5, 5]
    result = evaluate_probe(clf, x, y, train_idx)
    assert "N1" not in result["per_class_f1"]  # none left to test on


def test_probe_curve_rows() -> None:
    x, y = clusters()
    rows = probe_curve(x, y, shots_list=[1, 4], seeds=[0, 1])
    assert [r["shots"] for r in rows] == [1, 4]
    for r in rows:
        assert RESULT_KEYS | {"seeds", "macro_f1_std"} == set(r)
        assert r["seeds"] == [0, 1] and 0.0 <= r["macro_f1"] <= 1.0 and r["macro_f1_std"] >= 0.0
    assert rows[1]["train_epochs"] == 20


def test_probe_errors() -> None:
    x, y = clusters()
    with pytest.raises(PSGError, match="shots"):
        fit_probe(x, y, shots=0)
    with pytest.raises(PSGError, match="two stages"):
        fit_probe(x, np.where(y == 2, 2, -1), shots=3)
    with pytest.raises(PSGError, match="labels"):
        fit_probe(x, y[:-1], shots=3)
    with pytest.raises(PSGError, match="labels"):
        fit_probe(x, np.full(len(y), 7), shots=3)
    small_x, small_y = x[y >= 0][::40], y[y >= 0][::40]  # one epoch per class
    with pytest.raises(PSGError, match="no scored epochs left"):
        run_probe(small_x, small_y, shots=1)


def test_probe_on_tiny_model_embeddings(tiny_checkpoint: Path, simulated_edf: Path) -> None:
    lm = SleepLM.load(tiny_checkpoint, backend="torch")
    night = load_night_input(simulated_edf)
    embeddings = embed_night(lm, night, progress=True)
    labels = night.truth_indices()
    assert embeddings.shape == (night.n_epochs, lm.checkpoint.config.embed_dim) and labels is not None
    result = run_probe(embeddings, labels, shots=2, seed=0)
    assert set(result) == RESULT_KEYS
    present = {STAGE_LABELS[c] for c in set(labels.tolist()) if c >= 0}
    assert set(result["per_class_f1"]) <= present
    assert result["train_epochs"] + result["test_epochs"] == int((labels >= 0).sum())
