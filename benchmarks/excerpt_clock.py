"""YASA's clock on recordings that are a piece of a night: its own, or its position taken as unknown.

YASA's classifier reads two time features, ``time_hour`` (hours since the recording began) and ``time_norm``
(time over the recording's length). On a whole night they say where in the night an epoch lies; on a 30-min
excerpt cut from mid-night (the held-out evaluation's kind of file) they say "the first half hour of a night
that ends after 30 min". This measures what four clocks give YASA (our port, ``psg.features.yasa_prior``'s
inputs and classifiers; probabilities averaged over the EEG derivations, without the prior's per-epoch
masking of flat or missing epochs):

* ``yasa``: YASA's own (what ``sleeplm stage`` gives it today);
* ``start``: the excerpt taken as the start of an 8-h night (``RecordingClock``: what a live bed gets);
* ``marginalised``: the position unknown, uniform over an 8-h night (probabilities averaged over
  ``N_POSITIONS`` offsets);
* ``true``: the excerpt's true position (simulated nights only).

Inputs: 30-min excerpts of held-out simulated nights (``stage_head_eval.py``'s nights and seed), one central
EEG clean and perturbed (``STRONG``), three at random positions per night and one from the recording's start;
and the real recordings of ``real_signals.py`` (two awake recordings from their start, two mid-sleep snippets).
Accuracy of YASA's most likely stage, its mean confidence, and the accuracy in the excerpts' first and last
4 epochs (where YASA's recording-relative smoothing has one side only) apart from the rest.

    .venv/bin/python benchmarks/excerpt_clock.py --json benchmarks/results/excerpt_clock.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from real_signals import snippet_nights
from stage_head_eval import held_out_sources
from tqdm import tqdm

from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.training.corpus import NightSpec, render
from model_runtime.training.stage_head_training import STRONG, crop, perturb
from psg.features.yasa_features import RecordingClock, epoch_base_features, feature_table
from psg.features.yasa_prior import at_yasa_rate, classifier_probabilities, yasa_inputs
from psg.montage import EEG_C3, EEG_C4, EPOCH_S
from psg.paths import shared_data_dir
from psg.recording import Recording

EXCERPT_EPOCHS = 60
NIGHT_S = 8 * 3600.0
N_POSITIONS = 16
EDGE_EPOCHS = 4
CLOCKS = ("yasa", "start", "marginalised", "true")


def clocks(n: int, start_s: float | None) -> dict[str, list[RecordingClock | None]]:
    """Each clock's list of ``feature_table`` clocks (None: YASA's own); ``true`` only where ``start_s`` is known."""
    times = np.arange(n) * EPOCH_S
    offsets = np.linspace(0.0, max(NIGHT_S - n * EPOCH_S, 0.0), N_POSITIONS)
    out: dict[str, list[RecordingClock | None]] = {
        "yasa": [None],
        "start": [RecordingClock(times, NIGHT_S)],
        "marginalised": [RecordingClock(offset + times, NIGHT_S) for offset in offsets],
    }
    if start_s is not None:
        out["true"] = [RecordingClock(start_s + times, NIGHT_S)]
    return out


def probabilities(recording: Recording, n: int, start_s: float | None) -> dict[str, np.ndarray]:
    """clock -> (n, 5) YASA probabilities, averaged over the usable EEG derivations."""
    eegs, others = yasa_inputs(recording.signals)
    out: dict[str, np.ndarray] = {}
    for eeg in eegs:
        channels = {"eeg": eeg, **others}
        signals = {g: at_yasa_rate(sig, n) for g, sig in channels.items()}
        names, features = epoch_base_features(signals)
        channel_set = "+".join(channels)
        for clock, tables in clocks(n, start_s).items():
            tabled = [feature_table(names, features, clock=c) for c in tables]
            p = np.mean([classifier_probabilities(channel_set, *table) for table in tabled], axis=0)
            out[clock] = out.get(clock, 0) + p / len(eegs)
    return out


def score(bucket: dict, truth: np.ndarray, probs: dict[str, np.ndarray]) -> None:
    scored = truth >= 0
    edge = np.zeros(len(truth), dtype=bool)
    edge[:EDGE_EPOCHS] = edge[-EDGE_EPOCHS:] = True
    for clock, p in probs.items():
        right = p.argmax(axis=1) == truth
        entry = bucket.setdefault(clock, {"right": [], "conf": [], "edge": []})
        entry["right"] += right[scored].tolist()
        entry["conf"] += p.max(axis=1)[scored].tolist()
        entry["edge"] += edge[scored].tolist()


def summary(bucket: dict) -> dict:
    out = {}
    for clock, entry in bucket.items():
        right, edge = np.array(entry["right"]), np.array(entry["edge"])
        out[clock] = {
            "epochs": int(right.size),
            "accuracy": round(float(right.mean()), 3),
            "mean_confidence": round(float(np.mean(entry["conf"])), 3),
            "accuracy_edges": round(float(right[edge].mean()), 3) if edge.any() else None,
            "accuracy_inside": round(float(right[~edge].mean()), 3) if (~edge).any() else None,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nights", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    sources = held_out_sources(args.nights)
    rng = np.random.default_rng(args.seed)
    buckets: dict[str, dict] = {}
    for source in tqdm(sources, desc="held-out nights", unit="night"):
        recording = render(NightSpec(source, seed=args.seed, artifacts=True))
        truth = np.array(recording.timeline.stages)
        n = min(recording.n_epochs, len(truth))
        starts = [0, *rng.integers(0, max(n - EXCERPT_EPOCHS, 0) + 1, size=3)]
        for k, start in enumerate(starts):
            excerpt = crop(recording, int(start), EXCERPT_EPOCHS)
            y = truth[start : start + EXCERPT_EPOCHS]
            where = "from the start" if k == 0 else "mid-night"
            clean = Recording("clean", {EEG_C4: excerpt.signals[EEG_C4]})
            foreign = perturb(Recording("foreign", {c: excerpt.signals[c] for c in (EEG_C3, EEG_C4)}), rng, STRONG)
            for variant, rec in (("one EEG", clean), ("one EEG, perturbed", foreign)):
                score(buckets.setdefault(f"{variant}, {where}", {}), y, probabilities(rec, len(y), start * EPOCH_S))
    report: dict = {"simulated 30-min excerpts": {name: summary(b) for name, b in buckets.items()}}
    real: dict = {}
    for name, _, rec, stage in snippet_nights(shared_data_dir() / "real-signals"):
        bucket: dict = {}
        score(bucket, np.full(rec.n_epochs, STAGE_LABELS.index(stage)), probabilities(rec, rec.n_epochs, None))
        real[f"{name} (truth {stage})"] = summary(bucket)
    report["real recordings"] = real
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
