"""The real recordings as a held-out lab would hand them over: clinical labels, EEG at 50 Hz, through ``sleeplm stage``.

Why: the issue's held-out recordings are EEG-only excerpts at 50-200 Hz labelled ``C3-A1`` / ``CZ-A1`` and a full
clinical montage at 50 Hz, and we hold none of them. What we can do is the twin on the real waveforms we have
(``benchmarks/real_signals.py``'s recordings): write each as another writer's EDF (``edfio``, no simulator mark,
so it reads as ``recorded``) with clinical labels, at its native rate and resampled to 50 Hz (an anti-aliased
``resample_poly``, as a 50-Hz amplifier filters), read it back through ``load_night_input`` (the reader and
channel recognition ``sleeplm stage`` uses) and stage it; YASA on the same read-back EEG beside it (a 50-Hz
EEG upsampled to 100 Hz for YASA, which refuses rates under 80 Hz).

    .venv/bin/python benchmarks/real_rates.py --json benchmarks/results/real_rates.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from fractions import Fraction
from pathlib import Path

import edfio
import numpy as np
from real_signals import snippet_nights, yasa_stages
from scipy import signal as sps

from model_runtime.serving.model_api import SleepLM
from model_runtime.serving.night import load_night_input, stage_night
from psg.montage import EEG_C3, EEG_C4, EMG_CHIN, EOG_L, EOG_R
from psg.paths import shared_data_dir
from psg.recording import Recording, Signal

#: Montage slot -> the label a clinical system writes (the issue's held-out labels for the EEG).
CLINICAL_LABELS = {EEG_C3: "C3-A1", EEG_C4: "CZ-A1", EOG_L: "LOC", EOG_R: "ROC", EMG_CHIN: "EMG submental"}
#: Brain channels resampled to the target rate; others (1-Hz respiration of Sleep-EDF, ...) stay as they are.
BRAIN = (EEG_C3, EEG_C4, EOG_L, EOG_R, EMG_CHIN)


def at_rate(signal: Signal, fs: float) -> Signal:
    """``signal`` at ``fs`` when that is below its own rate (anti-aliased), else unchanged."""
    if signal.label not in BRAIN or signal.fs <= fs:
        return signal
    ratio = Fraction(fs / signal.fs).limit_denominator(1000)
    data = sps.resample_poly(signal.data, ratio.numerator, ratio.denominator)
    return Signal(signal.label, data, fs, signal.unit)


def for_yasa(recording: Recording) -> Recording:
    """``recording`` with brain channels below YASA's 80 Hz upsampled to 100 Hz (YASA refuses them otherwise),
    as anyone running YASA on a 50-Hz file has to."""
    signals = {}
    for label, sig in recording.signals.items():
        if label in BRAIN and sig.fs < 80:
            ratio = Fraction(100.0 / sig.fs).limit_denominator(1000)
            sig = Signal(label, sps.resample_poly(sig.data, ratio.numerator, ratio.denominator), 100.0, sig.unit)
        signals[label] = sig
    return Recording(recording.record_id, signals)


def write_clinical_edf(recording: Recording, fs: float | None, path: Path) -> Path:
    """``recording``'s signals, brain channels at ``fs`` (None: native), as a plain EDF+ with clinical labels
    (whole seconds of the shortest signal; signals at a fractional rate left out, as 1-s records need)."""
    resampled = [at_rate(sig, fs) if fs else sig for sig in recording.signals.values()]
    resampled = [sig for sig in resampled if float(sig.fs).is_integer() and sig.data.size >= sig.fs]
    seconds = min(int(sig.data.size // sig.fs) for sig in resampled)
    signals = []
    for sig in resampled:
        data = sig.data[: int(seconds * sig.fs)]
        lo, hi = float(np.min(data)), float(np.max(data))
        label = CLINICAL_LABELS.get(sig.label, sig.label)
        span = (lo, hi if hi > lo else lo + 1.0)
        signals.append(edfio.EdfSignal(data, sig.fs, label=label, physical_dimension=sig.unit, physical_range=span))
    edfio.Edf(signals).write(path)
    return path


def stage_file(lm: SleepLM, path: Path, truth: str) -> dict:
    """``sleeplm stage``'s result for one file, scored against the recording's single expert stage."""
    night = load_night_input(path, require_eeg=True)
    staged = stage_night(lm, night)
    stages = staged["stages"]
    probs = np.asarray(staged["probabilities"])
    theirs = yasa_stages(for_yasa(night.recording))
    return {
        "channels": {
            slot: f"{m.file_label} ({m.fs:g} Hz{', ' + ', '.join(m.flags) if m.flags else ''})"
            for slot, m in night.channels.slots.items()
        },
        "origin": staged["origin"],
        "stage_head": staged["stage_head"],
        "epochs": len(stages),
        "model": dict(Counter(stages)),
        "model_accuracy": float(np.mean([s == truth for s in stages])),
        "model_mean_p_stated": float(probs.max(axis=1).mean()) if len(probs) else None,
        "yasa": dict(Counter(theirs)) if theirs else None,
        "yasa_accuracy": float(np.mean([s == truth for s in theirs])) if theirs else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="shared data dir (default $SLEEPLM_DATA)")
    parser.add_argument("--rates", type=float, nargs="+", default=[0.0, 50.0], help="0 = native rate")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    root = (args.data or shared_data_dir()) / "real-signals"
    lm = SleepLM.load()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, _night, recording, truth) in enumerate(snippet_nights(root)):
            for fs in args.rates:
                path = write_clinical_edf(recording, fs or None, Path(tmp) / f"r{k}_{int(fs)}.edf")
                row = {"recording": name, "truth": truth, "rate": fs or "native", **stage_file(lm, path, truth)}
                rows.append(row)
                print(json.dumps(row))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
