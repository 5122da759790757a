"""Which head the domain gate gives other writers' files, and how near their novelty statistic sits to the gate.

Why: a recorded file (any EDF/BDF our simulator did not write) now always goes to the real-prior head
(``model_runtime.model.stage_head.StageHead.gate``); this shows, per file with EEG, what the statistic
alone would have chosen. Usage::

    .venv/bin/python benchmarks/gate_origin.py $SLEEPLM_DATA/edf-corpus/* $SLEEPLM_DATA/real-signals/*/*.edf
"""

from __future__ import annotations

import collections
import logging
import sys
from pathlib import Path

from model_runtime.serving.model_api import SleepLM
from model_runtime.serving.night import load_night_input, stage_night
from psg.errors import PSGError
from psg.features.stage_spectra import stage_feature_matrix


def main(paths: list[str]) -> None:
    """Print one markdown row per file that has EEG (the others are skipped: staging refuses them)."""
    logging.disable(logging.WARNING)
    lm = SleepLM.load()
    head = lm.stage_head
    assert head is not None, "the shipped checkpoint has no stage head"
    print("| file | origin | head | statistic (gate) | epochs | verdicts |\n|---|---|---|---|---|---|")
    for path in paths:
        try:
            night = load_night_input(path, require_eeg=True)
        except PSGError:
            continue
        features = stage_feature_matrix(night.recording)
        statistic = head.recording_novelty(features.model_input(), features.eeg_ok)
        result = stage_night(lm, night)
        verdicts = dict(collections.Counter(result["stages"]))
        print(
            f"| {Path(path).name} | {result['origin']} | {result['stage_head']} | "
            f"{statistic:.2f} ({head.gate_threshold:.2f}) | {night.n_epochs} | {verdicts} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
