"""Real EEG low-passed by its device, one derivation or all: staged offline (``sleeplm stage``) and live.

Why: missing beta reads as sleep to YASA, whose probabilities stage a recorded file and a live real bed.
A recording whose every EEG was low-passed below YASA's band is called ``uncertain`` offline
(``psg.features.eeg_bandwidth``); this measures that, the case where only one of two derivations was
low-passed (staging now reads the full-band one alone), and the live path, which checks the same slope over
a bed's history. Each real recording of ``real_signals.snippet_nights`` with its EEG (the derivations named
by ``--which``) filtered by a 4th-order zero-phase Butterworth low-pass at its native rate, then written as
another writer's EDF with clinical labels and staged through ``load_night_input`` + ``stage_night`` (what
``sleeplm stage`` runs), and played epoch by epoch through the live path as a recorded bed
(``recording_windows`` -> ``analyse`` -> the epoch message -> ``SleepLMRuntime.infer``).

    .venv/bin/python benchmarks/low_passed_eeg.py --json benchmarks/results/low_passed_eeg.json
    .venv/bin/python benchmarks/low_passed_eeg.py --eeg-only --json benchmarks/results/low_passed_eeg_only.json
    .venv/bin/python benchmarks/low_passed_eeg.py --lowpass 0 35 30 25 --which all \
        --json benchmarks/results/low_passed_eeg_35_25.json

Each row also gives YASA's own stages of the same filtered recording (``real_signals.yasa_stages``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path

from live_stage_head import live_stages
from real_rates import device_lowpass, write_clinical_edf
from real_signals import snippet_nights, write_rows, yasa_stages

from model_runtime.serving.model_api import SleepLM
from model_runtime.serving.night import load_night_input, stage_night
from psg.features.yasa_prior import EEG_DERIVATIONS
from psg.paths import shared_data_dir
from psg.recording import ORIGIN, RECORDED, Recording

#: Which EEG derivations a variant low-passes: the first YASA reads (C4's slot), or every one.
WHICH = {"first": EEG_DERIVATIONS[:1], "all": EEG_DERIVATIONS}


def low_passed(recording: Recording, labels: tuple[str, ...], hz: float | None, eeg_only: bool) -> Recording:
    """``recording`` with the EEG channels ``labels`` low-passed at ``hz`` (None: unchanged); ``eeg_only``: its
    EEG derivations alone, as the held-out EEG-only excerpts are."""
    signals = dict(recording.signals)
    if eeg_only:
        signals = {label: sig for label, sig in signals.items() if label in EEG_DERIVATIONS}
    for label in labels:
        if hz and label in signals:
            signals[label] = device_lowpass(signals[label], hz)
    return Recording(recording.record_id, signals, metadata={ORIGIN: RECORDED})


def offline_stages(lm: SleepLM, recording: Recording, path: Path) -> list[str]:
    return list(stage_night(lm, load_night_input(write_clinical_edf(recording, None, path)))["stages"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="shared data dir (default $SLEEPLM_DATA)")
    parser.add_argument("--lowpass", type=float, nargs="+", default=[0.0, 20.0, 15.0], help="Hz; 0 = none")
    parser.add_argument("--which", nargs="+", choices=sorted(WHICH), default=["first", "all"])
    parser.add_argument("--eeg-only", action="store_true", help="drop every channel but the EEG")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    lm = SleepLM.load()
    rows = []
    recordings = snippet_nights((args.data or shared_data_dir()) / "real-signals")
    with tempfile.TemporaryDirectory() as tmp:
        for hz in args.lowpass:
            for which in args.which if hz else ["none"]:
                for k, (name, _night, recording, truth) in enumerate(recordings):
                    eegs = [label for label in WHICH.get(which, ()) if label in recording.signals]
                    if which == "first" and len(set(EEG_DERIVATIONS) & set(recording.signals)) < 2:
                        continue  # one EEG: "first" is "all"
                    filtered = low_passed(recording, tuple(eegs), hz, args.eeg_only)
                    row = {"recording": name, "truth": truth, "lowpass_hz": hz or None, "low_passed": which}
                    row["eeg_only"] = args.eeg_only
                    for way, stages in (
                        ("offline", offline_stages(lm, filtered, Path(tmp) / f"r{k}.edf")),
                        ("live", live_stages(lm, filtered, RECORDED)),
                    ):
                        row[way] = dict(Counter(stages))
                        row[f"{way}_right"] = sum(s == truth for s in stages)
                    row["epochs"] = len(stages)
                    yasa = yasa_stages(filtered) or []  # YASA 0.8 itself on the same EEG, the yardstick
                    row["yasa"], row["yasa_right"] = dict(Counter(yasa)), sum(s == truth for s in yasa)
                    rows.append(row)
                    print(json.dumps(row))
    write_rows(rows, args.json)


if __name__ == "__main__":
    main()
