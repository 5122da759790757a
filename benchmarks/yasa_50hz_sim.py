"""The simulated twin of ``real_rates.py``: YASA's prior on held-out simulated nights at 256 Hz, at 50 Hz, and at
50 Hz with the band extension (``psg.features.band_extension``).

Why: the extension was measured on real wake; this shows what it does to sleep stages, where we have truth
(held-out corpus nights rendered with seed 7 and artifacts, as ``stage_head_eval.py``; C3 + left EOG,
anti-aliased to 50 Hz by ``resample_poly``; YASA's prior alone, its most likely stage per epoch).

    .venv/bin/python benchmarks/yasa_50hz_sim.py --json benchmarks/results/yasa_50hz_sim.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from unittest import mock

import numpy as np
from real_rates import resampled

from model_runtime.training.corpus import NightSpec, render
from psg.features.yasa_prior import STAGES, yasa_prior
from psg.montage import EEG_C3, EOG_L
from psg.paths import shared_data_dir
from psg.recording import Recording

NIGHTS = ("slpdb/slp01a.st", "slpdb/slp02a.st", "ucddb/ucddb002_stage.txt")


def yasa_stages(recording: Recording, extension: bool) -> np.ndarray:
    """YASA's most likely stage per epoch (``STAGES`` labels), with the band extension on or off."""
    if extension:
        prior = yasa_prior(recording)
    else:
        with mock.patch("psg.features.yasa_prior.extend_band", lambda x, *_args: x):
            prior = yasa_prior(recording)
    return np.array(STAGES)[prior[:, :5].argmax(axis=1)]


def scores(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """Accuracy and per-stage recall over the scored epochs."""
    per_stage = {s: float((predicted[truth == s] == s).mean()) for s in STAGES if (truth == s).any()}
    return {"epochs": int(truth.size), "accuracy": float((predicted == truth).mean()), "recall": per_stage}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="shared data dir (default $SLEEPLM_DATA)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    root = args.data or shared_data_dir()
    pooled: dict[str, tuple[list, list]] = {}
    report: dict[str, dict] = {}
    for name in NIGHTS:
        recording = render(NightSpec(str(root / name), seed=7, artifacts=True))
        truth = np.array([STAGES[s] if s >= 0 else "?" for s in recording.timeline.stages])
        native = {k: recording.signals[k] for k in (EEG_C3, EOG_L)}
        slow = {k: resampled(s, 50.0) for k, s in native.items()}
        for variant, signals, extension in (
            ("256 Hz", native, True),
            ("50 Hz", slow, False),
            ("50 Hz + extension", slow, True),
        ):
            predicted = yasa_stages(Recording(name, signals), extension)
            n = min(predicted.size, truth.size)
            scored = np.isin(truth[:n], STAGES)
            p, t = predicted[:n][scored], truth[:n][scored]
            report.setdefault(name, {})[variant] = scores(p, t)
            pooled.setdefault(variant, ([], []))[0].append(p)
            pooled[variant][1].append(t)
            print(name, variant, json.dumps(report[name][variant]))
    report["pooled"] = {v: scores(np.concatenate(p), np.concatenate(t)) for v, (p, t) in pooled.items()}
    print("pooled", json.dumps(report["pooled"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
