"""What the live path would show for a real bed (issue 12): the signal encoder's zero-shot stage, the only
stager the live runtime has, on the real epochs we hold, and whether its embedding's distance from the
simulated nights could flag them as unlike the training data (a live ``uncertain`` without the stage head).

Novelty: Mahalanobis distance of each embedding from the reference bank's embeddings of half its nights
(even night numbers); its quantiles on the other half are the simulated baseline.

    .venv/bin/python benchmarks/live_encoder_real.py
"""

from __future__ import annotations

import numpy as np
from real_signals import snippet_nights

from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.model.shipped import bank_path_for
from model_runtime.serving.model_api import SleepLM
from psg.paths import shared_data_dir


def main() -> None:
    lm = SleepLM.load()
    bank = np.load(bank_path_for())
    embeddings, nights = bank["embeddings"].astype(np.float64), bank["night"]
    fit = nights % 2 == 0
    mean = embeddings[fit].mean(axis=0)
    precision = np.linalg.inv(np.cov(embeddings[fit], rowvar=False) + 1e-4 * np.eye(embeddings.shape[1]))

    def novelty(e: np.ndarray) -> np.ndarray:
        d = e - mean
        return np.sqrt(np.einsum("ij,jk,ik->i", d, precision, d))

    q = np.quantile(novelty(embeddings[~fit]), [0.5, 0.95, 0.995])
    print(f"simulated held-out nights: novelty q50 {q[0]:.2f}, q95 {q[1]:.2f}, q99.5 {q[2]:.2f}")
    for name, night, _, truth in snippet_nights(shared_data_dir() / "real-signals"):
        emb = lm.embed(night.x)
        probs = lm.smooth(lm.stage_probabilities(emb))  # as a live bed: causal smoothing
        stages = [STAGE_LABELS[i] for i in probs.argmax(axis=1)]
        counts = {s: stages.count(s) for s in STAGE_LABELS if s in stages}
        n = novelty(emb)
        print(
            f"{name}: truth {truth}, encoder {counts}, mean p {probs.max(axis=1).mean():.2f}, "
            f"novelty {n.min():.1f}-{n.max():.1f} ({int((n > q[2]).sum())}/{len(n)} above q99.5)"
        )


if __name__ == "__main__":
    main()
