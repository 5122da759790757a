"""YASA's per-epoch EEG features on the real recordings beside the simulator's, stage by stage.

Why: the real-prior head reads YASA's features of a short recording scaled partly to a reference night that
our simulator rendered (``psg.features.night_reference``), so where the simulated EEG departs from real EEG
in those features, a real recording is placed wrongly against it (the one real N2 epoch reads N3 under a
35-Hz low-pass or at 50 Hz: ``RESULTS.md``). This shows where: the median of each feature over each real
recording's EEG derivations (what ``yasa_prior`` hands YASA, at 100 Hz), and over the epochs of each stage of
held-out simulated nights (validation split, no artifacts, the C3 derivation).

    .venv/bin/python benchmarks/real_vs_simulated_features.py --json benchmarks/results/real_vs_simulated_features.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from real_signals import snippet_nights, write_rows
from tqdm import tqdm

from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.training.corpus import NightSpec, render, split_of, timeline_sources
from psg.features.yasa_features import epoch_base_features
from psg.features.yasa_prior import at_yasa_rate, yasa_inputs
from psg.montage import EEG_C3
from psg.paths import shared_data_dir

#: YASA's EEG features that read the spectrum's shape (relative band powers, complexity, zero crossings).
FEATURES = (
    "eeg_sdelta",
    "eeg_fdelta",
    "eeg_theta",
    "eeg_alpha",
    "eeg_sigma",
    "eeg_beta",
    "eeg_higuchi",
    "eeg_perm",
    "eeg_nzc",
    "eeg_hmob",
    "eeg_hcomp",
)


def medians(names: list[str], features: np.ndarray) -> dict[str, float]:
    return {key: round(float(np.median(features[:, names.index(key)])), 4) for key in FEATURES}


def real_rows(root: Path) -> list[dict]:
    rows = []
    for name, _night, recording, truth in snippet_nights(root):
        for eeg in yasa_inputs(recording.signals)[0]:
            names, features = epoch_base_features({"eeg": at_yasa_rate(eeg, recording.n_epochs)})
            rows.append({"source": f"real: {name}, {eeg.label}", "stage": truth, "epochs": len(features)})
            rows[-1].update(medians(names, features))
    return rows


def simulated_rows(data: Path, nights: int, seed: int) -> list[dict]:
    by_stage: dict[int, list[np.ndarray]] = {}
    names: list[str] = []
    sources = [s for s in timeline_sources(data, 30) if split_of(s) == "validation"][:nights]
    for source in tqdm(sources, desc="simulated nights", unit="night"):
        recording = render(NightSpec(source, seed=seed, artifacts=False))
        assert recording.timeline is not None
        names, features = epoch_base_features({"eeg": at_yasa_rate(recording.signals[EEG_C3], recording.n_epochs)})
        stages = np.asarray(recording.timeline.stages[: len(features)])
        for k in range(len(STAGE_LABELS)):
            by_stage.setdefault(k, []).append(features[stages == k])
    rows = []
    for k, parts in sorted(by_stage.items()):
        features = np.concatenate(parts)
        if len(features):
            rows.append({"source": f"simulated: {len(sources)} held-out nights", "stage": STAGE_LABELS[k]})
            rows[-1].update(epochs=len(features), **medians(names, features))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="shared data dir (default $SLEEPLM_DATA)")
    parser.add_argument("--nights", type=int, default=4, help="held-out simulated nights")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args()
    data = args.data or shared_data_dir()
    rows = real_rows(data / "real-signals") + simulated_rows(data, args.nights, args.seed)
    for row in rows:
        print(json.dumps(row))
    write_rows(rows, args.json)


if __name__ == "__main__":
    main()
