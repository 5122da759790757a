"""YASA on pieces of a night: each recording scaled to itself (YASA) or partly to a reference night (shipped).

``psg.features.night_reference`` scales the shape features of a recording shorter than a night towards a
reference night built from simulated training nights; this measures what that does to YASA's most likely
stage (our port and YASA's classifiers, ``psg.features.yasa_prior``'s inputs; probabilities averaged over the
EEG derivations) against YASA's own scaling, on:

* held-out simulated nights (``stage_head_eval.py``'s, seed 7, never in the reference): excerpts of 5 min,
  30 min and 2 h, one from the night's start and three from random positions, as one central EEG (clean;
  perturbed within the training ranges, ``TRAIN``; beyond them, ``STRONG``: gain 0.35-2.8, spectral tilt +-1,
  mains, EOG leak) and as the full montage (2 EEG, EOG, chin EMG); plus the whole night's scale for the
  30-min mid-night excerpts (what an excerpt would get if the rest of its night were known);
* the real recordings of ``real_signals.py`` (two awake recordings, one N2 and one N3 epoch).

Accuracy, mean confidence and expected calibration error (10 bins) of YASA's most likely stage.

    .venv/bin/python benchmarks/night_reference.py --json benchmarks/results/night_reference.json \\
        --plot benchmarks/plots/night_reference.png
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from real_signals import snippet_nights
from stage_head_eval import held_out_sources
from tqdm import tqdm

from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.training.corpus import NightSpec, render
from model_runtime.training.stage_head_training import STRONG, TRAIN, crop, expected_calibration_error, perturb
from psg.features.night_reference import OWN_SCALE_EPOCHS, load_night_reference
from psg.features.yasa_features import epoch_base_features, feature_table
from psg.features.yasa_prior import at_yasa_rate, classifier_probabilities, yasa_inputs
from psg.montage import EEG_C3, EEG_C4
from psg.paths import shared_data_dir
from psg.recording import Recording

LENGTHS = {"5 min": 10, "30 min": 60, "2 h": 240}
SCALINGS = ("own", "reference")


def probabilities(recording: Recording, n: int, own_scale_epochs: int) -> dict[str, np.ndarray]:
    """scaling -> (n, 5) YASA probabilities, averaged over the usable EEG derivations."""
    eegs, others = yasa_inputs(recording.signals)
    shipped = replace(load_night_reference(), own_scale_epochs=own_scale_epochs)
    out: dict[str, np.ndarray] = {}
    for eeg in eegs:
        channels = {"eeg": eeg, **others}
        names, features = epoch_base_features({g: at_yasa_rate(sig, n) for g, sig in channels.items()})
        for scaling in SCALINGS:
            reference = shipped if scaling == "reference" else None
            p = classifier_probabilities("+".join(channels), *feature_table(names, features, reference=reference))
            out[scaling] = out.get(scaling, 0) + p / len(eegs)
    return out


def whole_night_probabilities(recording: Recording, start: int, n: int) -> np.ndarray:
    """The excerpt's rows of YASA run on its whole night (one central EEG): the scale it would get if known."""
    total = recording.n_epochs
    names, features = epoch_base_features({"eeg": at_yasa_rate(recording.signals[EEG_C4], total)})
    return classifier_probabilities("eeg", *feature_table(names, features))[start : start + n]


def add(bucket: dict, truth: np.ndarray, probs: dict[str, np.ndarray]) -> None:
    scored = truth >= 0
    for scaling, p in probs.items():
        entry = bucket.setdefault(scaling, {"right": [], "confidence": []})
        entry["right"] += (p.argmax(axis=1) == truth)[scored].tolist()
        entry["confidence"] += p.max(axis=1)[scored].tolist()


def summary(bucket: dict) -> dict:
    out = {}
    for scaling, entry in bucket.items():
        right, confidence = np.array(entry["right"], dtype=bool), np.array(entry["confidence"])
        out[scaling] = {
            "epochs": int(right.size),
            "accuracy": round(float(right.mean()), 3),
            "mean_confidence": round(float(confidence.mean()), 3),
            "ece": round(expected_calibration_error(confidence, right), 3),
        }
    return out


def simulated(nights: int, seed: int, own_scale_epochs: int) -> dict:
    rng = np.random.default_rng(seed)
    buckets: dict[str, dict] = {}
    for source in tqdm(held_out_sources(nights), desc="held-out nights", unit="night"):
        recording = render(NightSpec(source, seed=seed, artifacts=True))
        truth = np.array(recording.timeline.stages)
        n_night = min(recording.n_epochs, len(truth))
        for length_name, length in LENGTHS.items():
            if n_night <= length:  # a night no longer than the excerpt has no piece to cut
                continue
            starts = [0, *rng.integers(0, n_night - length + 1, size=3)]
            for k, start in enumerate(starts):
                excerpt = crop(recording, int(start), length)
                y = truth[start : start + length]
                eegs = {c: excerpt.signals[c] for c in (EEG_C3, EEG_C4)}
                inputs = {
                    "one EEG": Recording("clean", {EEG_C4: excerpt.signals[EEG_C4]}),
                    "one EEG, perturbed (training ranges)": perturb(Recording("mild", dict(eegs)), rng, TRAIN),
                    "one EEG, perturbed (beyond them)": perturb(Recording("strong", dict(eegs)), rng, STRONG),
                    "full montage": excerpt,
                }
                where = "from the start" if k == 0 else "mid-night"
                for name, rec in inputs.items():
                    probs = probabilities(rec, len(y), own_scale_epochs)
                    if name == "one EEG" and length_name == "30 min" and k > 0:
                        probs["whole night's scale"] = whole_night_probabilities(recording, int(start), len(y))
                    add(buckets.setdefault(f"{name}, {length_name}, {where}", {}), y, probs)
    return {name: summary(bucket) for name, bucket in sorted(buckets.items())}


def real(own_scale_epochs: int) -> dict:
    pooled: dict = {}
    out: dict = {}
    for name, _, recording, stage in snippet_nights(shared_data_dir() / "real-signals"):
        bucket: dict = {}
        truth = np.full(recording.n_epochs, STAGE_LABELS.index(stage))
        probs = probabilities(recording, recording.n_epochs, own_scale_epochs)
        add(bucket, truth, probs)
        add(pooled, truth, probs)
        out[f"{name} (truth {stage})"] = {
            **summary(bucket),
            "stages": {s: [STAGE_LABELS[i] for i in p.argmax(axis=1)] for s, p in probs.items()},
        }
    out["pooled"] = summary(pooled)
    return out


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {k: v for k, v in report["simulated"].items() if ", 30 min," in k}
    labels = [k.replace(", 30 min", "") for k in rows] + ["real recordings (24 epochs)"]
    values = {s: [rows[k][s]["accuracy"] for k in rows] + [report["real"]["pooled"][s]["accuracy"]] for s in SCALINGS}
    y = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(labels) + 1.2))
    for i, scaling in enumerate(SCALINGS):
        ax.barh(y + (i - 0.5) * 0.38, values[scaling], height=0.38, label=f"scaled to {scaling}")
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy of YASA's most likely stage")
    ax.set_title("30-min excerpts of held-out simulated nights, and the real recordings", fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nights", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--own-scale-epochs", type=int, default=OWN_SCALE_EPOCHS, help="blend up to this many epochs (shipped: 240)"
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    report = {
        "own_scale_epochs": args.own_scale_epochs,
        "real": real(args.own_scale_epochs),
        "simulated": simulated(args.nights, args.seed, args.own_scale_epochs),
    }
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    if args.plot:
        plot(report, args.plot)


if __name__ == "__main__":
    main()
