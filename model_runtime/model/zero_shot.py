"""Zero-shot staging and event scoring: cosine similarity between epoch embeddings and prompt ensembles.

``causal_smooth`` is the optional smoothing over epochs: a forward (filtering) pass of a sticky hidden
Markov chain over the zero-shot probabilities. It only looks back, so live beds and offline files get
the same stage for an epoch the moment that epoch arrives.
"""

from __future__ import annotations

import numpy as np

#: Probability that the next epoch keeps the stage (AASM hypnograms change stage every ~10 epochs).
STAY_PROBABILITY = 0.85


def class_embeddings(prompt_embeddings: list[np.ndarray]) -> np.ndarray:
    """Per class, the mean of its prompts' unit embeddings, renormalised -> (n_classes, E)."""
    means = np.stack([p.mean(axis=0) for p in prompt_embeddings])
    return means / np.linalg.norm(means, axis=1, keepdims=True)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def class_probabilities(embeddings: np.ndarray, classes: np.ndarray, scale: float) -> np.ndarray:
    """(n, E) unit epoch embeddings x (k, E) class embeddings -> (n, k) probabilities (softmax of scaled cosines)."""
    return softmax(scale * embeddings @ classes.T)


def transition_matrix(n_classes: int, stay: float = STAY_PROBABILITY) -> np.ndarray:
    """Sticky chain: ``stay`` on the diagonal, the rest spread evenly."""
    off = (1.0 - stay) / (n_classes - 1)
    return np.full((n_classes, n_classes), off) + np.eye(n_classes) * (stay - off)


def causal_smooth(
    probabilities: np.ndarray,
    stay: float = STAY_PROBABILITY,
    prior: np.ndarray | None = None,
    transition: np.ndarray | None = None,
) -> np.ndarray:
    """Forward-filtered posteriors: p_t ∝ probs_t * (p_{t-1} @ T). ``prior`` continues a live bed's chain;
    ``transition`` (k, k) replaces the sticky chain (the checkpoint's hypnogram statistics)."""
    probs = np.asarray(probabilities, dtype=np.float64)
    out = np.empty_like(probs)
    transition = transition_matrix(probs.shape[1], stay) if transition is None else np.asarray(transition)
    belief = np.full(probs.shape[1], 1.0 / probs.shape[1]) if prior is None else np.asarray(prior, dtype=np.float64)
    for t, p in enumerate(probs):
        belief = (belief @ transition) * np.clip(p, 1e-6, None)
        belief /= belief.sum()
        out[t] = belief
    return out


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
