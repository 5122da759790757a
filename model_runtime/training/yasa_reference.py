"""Build the reference night YASA's features of a short recording are scaled towards (``psg.features.night_reference``).

Which nights: the first ``--nights`` training-split timelines of the corpus (``corpus.split_of``: never the
held-out validation nights the benchmarks play), rendered by the simulator with artifacts, each EEG derivation
(C3, C4) with the left EOG and the chin EMG at YASA's 100 Hz, as ``yasa_prior`` hands them. Per night, the
median and 5-95 % percentiles of YASA's two smoothed feature blocks; per feature, the median over nights.

    .venv/bin/python -m model_runtime.training.yasa_reference            # writes the shipped file (~2 min)
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model_runtime.training.corpus import NightSpec, render, split_of, timeline_sources
from psg.features.night_reference import DEFAULT_PATH, NightReference, build_night_reference, night_statistics
from psg.features.yasa_features import epoch_base_features, smoothed_blocks
from psg.features.yasa_prior import at_yasa_rate
from psg.montage import EEG_C3, EEG_C4, EMG_CHIN, EOG_L
from psg.paths import shared_data_dir
from psg.recording import Recording

NIGHTS = 16
SEED = 3


def reference_sources(nights: int = NIGHTS, data_dir: Path | None = None) -> list[str]:
    """The training-split timelines the reference is rendered from."""
    sources = timeline_sources(data_dir or shared_data_dir(), 30)
    return [s for s in sources if split_of(s) == "train"][:nights]


def night_blocks(recording: Recording) -> Iterator[tuple[list[str], dict[str, np.ndarray]]]:
    """Per EEG derivation of ``recording``: its YASA base feature names and each smoothed block's statistics."""
    n = recording.n_epochs
    others = {g: at_yasa_rate(recording.signals[label], n) for g, label in (("eog", EOG_L), ("emg", EMG_CHIN))}
    for label in (EEG_C4, EEG_C3):
        names, features = epoch_base_features({"eeg": at_yasa_rate(recording.signals[label], n), **others})
        yield names, {window: night_statistics(rolled) for window, rolled in smoothed_blocks(features).items()}


def build(sources: list[str], seed: int = SEED) -> NightReference:
    def blocks() -> Iterator[tuple[list[str], dict[str, np.ndarray]]]:
        for source in tqdm(sources, desc="reference nights", unit="night"):
            yield from night_blocks(render(NightSpec(source, seed=seed, artifacts=True)))

    return build_night_reference(blocks())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nights", type=int, default=NIGHTS, help="training-split timelines to render")
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args()
    sources = reference_sources(args.nights)
    if not sources:
        parser.error(f"no training timelines under {shared_data_dir()} (set SLEEPLM_DATA)")
    args.out.write_text(build(sources).to_json() + "\n")
    print(f"wrote {args.out} from {len(sources)} nights")


if __name__ == "__main__":
    main()
