"""Would smoothing a whole recording's stage probabilities over time help the stage head? (issue 12, a lever
tried and not shipped.)

The stage head (and YASA inside it) already read context features that look minutes both ways, so an HMM
on top may count the same evidence twice. This measures it on ``stage_head_eval.py``'s held-out simulated
nights and variants (same nights, seed and perturbations): the shipped head's probabilities, and YASA's
alone (what the real-prior head reads), each as produced and after forward-backward smoothing with the
checkpoint's stage chain (the training hypnograms' transitions), evidence tempered by ``gamma``, and in
the hybrid form (evidence = posterior / the chain's stationary share). Accuracy is of the most likely stage
(``uncertain`` not applied); ECE of its probability.

    .venv/bin/python benchmarks/stage_smoothing.py --json benchmarks/results/stage_smoothing.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from stage_head_eval import held_out_sources, variants

from model_runtime.serving.model_api import SleepLM
from model_runtime.training.corpus import NightSpec, render
from model_runtime.training.stage_head_training import expected_calibration_error
from psg.features.stage_spectra import PRIOR_COLUMNS, StageFeatures, stage_feature_matrix

#: ``StageFeatures``' fields in constructor order: what the cache keeps of each recording.
FIELDS = ("values", "available", "eeg_ok", "prior")


def stationary(chain: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eig(chain.T)
    share = np.abs(np.real(vectors[:, int(np.argmin(np.abs(values - 1.0)))]))
    return share / share.sum()


def forward_backward(probs: np.ndarray, chain: np.ndarray, gamma: float = 1.0, hybrid: bool = False) -> np.ndarray:
    """Posterior stage probabilities of consecutive epochs (scaled at each step: no underflow)."""
    start = stationary(chain)
    evidence = np.clip(probs, 1e-6, None) ** gamma / (start**gamma if hybrid else 1.0)
    n, k = evidence.shape
    forward, backward = np.empty((n, k)), np.ones((n, k))
    belief = start * evidence[0]
    forward[0] = belief / belief.sum()
    for t in range(1, n):
        belief = (forward[t - 1] @ chain) * evidence[t]
        forward[t] = belief / belief.sum()
    for t in range(n - 2, -1, -1):
        message = chain @ (evidence[t + 1] * backward[t + 1])
        backward[t] = message / message.sum()
    posterior = forward * backward
    return posterior / posterior.sum(axis=1, keepdims=True)


def features(nights: int, seed: int, cache: Path | None) -> dict[str, np.ndarray]:
    """Per night and variant, the stage head's measurements (``StageFeatures``' fields) and the truth."""
    if cache is not None and cache.exists():
        return dict(np.load(cache))
    sources = held_out_sources(nights)
    rng, out = np.random.default_rng(seed), {}
    for i, source in enumerate(sources):
        recording = render(NightSpec(source, seed=seed, artifacts=True))
        truth = np.array(recording.timeline.stages)
        for name, (rec, window) in variants(recording, rng).items():
            f = stage_feature_matrix(rec)
            out |= {f"{i}_{name}_{field}": getattr(f, field) for field in FIELDS}
            out[f"{i}_{name}_y"] = truth[window][: len(f.eeg_ok)]
        print(f"{Path(source).name}: done", flush=True)
    if cache is not None:
        np.savez_compressed(cache, **out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nights", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=None, help="features saved here once, read back after")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    lm = SleepLM.load()
    assert lm.stage_head is not None and lm.transition is not None
    chain = np.asarray(lm.transition, dtype=np.float64)
    data = features(args.nights, args.seed, args.cache)
    ways = {"as produced": {}, "fb gamma 0.5": {"gamma": 0.5}, "fb": {}, "fb hybrid": {"hybrid": True}}
    report: dict[str, dict] = {}
    for name in ("full", "eeg_only", "eeg_only_foreign"):
        hits: dict[str, list] = {}
        for i in range(args.nights):
            measured = StageFeatures(*(data[f"{i}_{name}_{field}"] for field in FIELDS))
            y = data[f"{i}_{name}_y"]  # the scored epochs can end before the recording's last whole epoch
            head = lm.stage_head.stage_features(measured).probabilities[: len(y)]
            prior = measured.model_input()[: len(y), PRIOR_COLUMNS]
            yasa = np.where((prior[:, -1] > 0)[:, None], prior[:, :5], 0.2)
            scored = y >= 0
            for source, probs in (("head", head), ("yasa", yasa)):
                for way, kwargs in ways.items():
                    p = probs if way == "as produced" else forward_backward(probs, chain, **kwargs)
                    bucket = hits.setdefault(f"{source}, {way}", [[], []])
                    bucket[0] += list(p[scored].argmax(axis=1) == y[scored])
                    bucket[1] += list(p[scored].max(axis=1))
        report[name] = {
            key: {
                "accuracy": round(float(np.mean(h)), 3),
                "ece": round(expected_calibration_error(np.array(c), np.array(h)), 3),
            }
            for key, (h, c) in hits.items()
        } | {"epochs": len(next(iter(hits.values()))[0])}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
