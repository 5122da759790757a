"""The real recordings as a held-out lab would hand them over: clinical labels, EEG at 50 Hz, through ``sleeplm stage``.

Why: the issue's held-out recordings are EEG-only excerpts at 50-200 Hz labelled ``C3-A1`` / ``CZ-A1`` and a full
clinical montage at 50 Hz, and we hold none of them. What we can do is the twin on the real waveforms we have
(``benchmarks/real_signals.py``'s recordings): write each as another writer's EDF (``edfio``, no simulator mark,
so it reads as ``recorded``) with clinical labels, at its native rate and resampled to 50 Hz (an anti-aliased
``resample_poly``, as a 50-Hz amplifier filters), read it back through ``load_night_input`` (the reader and
channel recognition ``sleeplm stage`` uses) and stage it; YASA on the same read-back EEG beside it (a 50-Hz
EEG upsampled to 100 Hz for YASA, which refuses rates under 80 Hz).

    .venv/bin/python benchmarks/real_rates.py --json benchmarks/results/real_rates.json \
        --plot benchmarks/plots/real_50hz.png
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
from real_signals import snippet_nights, write_rows, yasa_stages
from scipy import signal as sps

from model_runtime.serving.model_api import SleepLM
from model_runtime.serving.night import load_night_input, stage_night
from psg.features.band_extension import extend_band
from psg.formats import vocabulary as vocab
from psg.montage import EEG_C3, EEG_C4, EMG_CHIN, EOG_L, EOG_R
from psg.paths import shared_data_dir
from psg.recording import Recording, Signal
from psg.timeline import Stage, Timeline

#: Montage slot -> the label a clinical system writes (the issue's held-out labels for the EEG).
CLINICAL_LABELS = {EEG_C3: "C3-A1", EEG_C4: "CZ-A1", EOG_L: "LOC", EOG_R: "ROC", EMG_CHIN: "EMG submental"}
#: Brain channels resampled to the target rate; others (1-Hz respiration of Sleep-EDF, ...) stay as they are.
BRAIN = (EEG_C3, EEG_C4, EOG_L, EOG_R, EMG_CHIN)


def resampled(signal: Signal, fs: float) -> Signal:
    """``signal`` at ``fs``, up or down (``resample_poly``: anti-aliased on the way down)."""
    ratio = Fraction(fs / signal.fs).limit_denominator(1000)
    data = sps.resample_poly(signal.data, ratio.numerator, ratio.denominator)
    return Signal(signal.label, data, fs, signal.unit, signal.rails)  # a file's range holds at any rate


def at_rate(signal: Signal, fs: float, lowpass_hz: float | None = None) -> Signal:
    """A brain channel at ``fs`` when that is below its own rate, else unchanged; ``lowpass_hz``: a device's
    own low-pass first (4th-order Butterworth, zero-phase), as a 50-Hz amplifier may filter below its
    Nyquist frequency."""
    if signal.label not in BRAIN or signal.fs <= fs:
        return signal
    return resampled(device_lowpass(signal, lowpass_hz) if lowpass_hz else signal, fs)


def device_lowpass(signal: Signal, hz: float) -> Signal:
    """``signal`` through a device's low-pass at ``hz`` (4th-order Butterworth, zero-phase)."""
    data = sps.sosfiltfilt(sps.butter(4, hz, fs=signal.fs, output="sos"), signal.data)
    return Signal(signal.label, data, signal.fs, signal.unit)


def for_yasa(recording: Recording) -> Recording:
    """``recording`` with brain channels below YASA's 80 Hz upsampled to 100 Hz (YASA refuses them otherwise),
    as anyone running YASA on a 50-Hz file has to."""
    signals = {
        label: resampled(sig, 100.0) if label in BRAIN and sig.fs < 80 else sig
        for label, sig in recording.signals.items()
    }
    return Recording(recording.record_id, signals)


def write_clinical_edf(
    recording: Recording,
    fs: float | None,
    path: Path,
    lowpass_hz: float | None = None,
    scoring: Timeline | None = None,
) -> Path:
    """``recording``'s signals, brain channels at ``fs`` (None: native), as a plain EDF+ with clinical labels
    (whole seconds of the shortest signal; signals at a fractional rate left out, as 1-s records need), and
    ``scoring``'s stages and events as its annotations where given (the scorer's text a lab's export writes)."""
    resampled = [at_rate(sig, fs, lowpass_hz) if fs else sig for sig in recording.signals.values()]
    resampled = [sig for sig in resampled if float(sig.fs).is_integer() and sig.data.size >= sig.fs]
    seconds = min(int(sig.data.size // sig.fs) for sig in resampled)
    signals = []
    for sig in resampled:
        data = sig.data[: int(seconds * sig.fs)]
        lo, hi = float(np.min(data)), float(np.max(data))
        label = CLINICAL_LABELS.get(sig.label, sig.label)
        span = (lo, hi if hi > lo else lo + 1.0)
        signals.append(edfio.EdfSignal(data, sig.fs, label=label, physical_dimension=sig.unit, physical_range=span))
    edfio.Edf(signals, annotations=scoring_annotations(scoring) if scoring else None).write(path)
    return path


def scoring_annotations(scoring: Timeline) -> list[edfio.EdfAnnotation]:
    """``scoring`` as EDF+ annotations: one ``Sleep stage N2``-style annotation per scored epoch, then its events."""
    out = [
        edfio.EdfAnnotation(i * scoring.epoch_s, scoring.epoch_s, vocab.stage_text(Stage(int(s))))
        for i, s in enumerate(scoring.stages)
        if s >= 0
    ]
    return out + [edfio.EdfAnnotation(e.onset_s, e.duration_s, vocab.event_text(e)) for e in scoring.events]


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


def plot(rows: list[dict], eeg: Signal, path: Path) -> None:
    """Left: ``eeg``'s mean spectrum as recorded, at 50 Hz, and at 50 Hz with the band extension (at YASA's
    100 Hz); right: pooled real epochs staged right per rate, ours and YASA's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epoch = int(30 * 100)
    native = at_rate(Signal(EEG_C3, eeg.data, eeg.fs, eeg.unit), 100.0).data
    slow = at_rate(Signal(EEG_C3, eeg.data, eeg.fs, eeg.unit), 50.0).data
    upsampled = sps.resample_poly(slow, 2, 1)
    versions = {
        f"recorded at {eeg.fs:g} Hz": native,
        "at 50 Hz": upsampled,
        "at 50 Hz + band extension": extend_band(upsampled, 100.0, 50.0, epoch),
    }
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for label, x in versions.items():
        freqs, psd = sps.welch(x[: x.size // epoch * epoch], fs=100.0, nperseg=500)
        keep = (freqs >= 1) & (freqs <= 45)
        left.loglog(freqs[keep], psd[keep], label=label)
    left.axvspan(16, 30, color="0.9", zorder=0, label="YASA's beta band")
    left.set(xlabel="Hz", ylabel="uV^2/Hz", title="Real awake EEG (Cz-A2): mean spectrum")
    left.legend(fontsize=8)
    labels, ours, theirs = [], [], []
    for rate in dict.fromkeys(r["rate"] for r in rows):
        chosen = [r for r in rows if r["rate"] == rate]
        labels.append(f"{rate:g} Hz" if isinstance(rate, float) else str(rate))
        ours.append(sum(r["model_accuracy"] * r["epochs"] for r in chosen))
        theirs.append(sum((r["yasa_accuracy"] or 0.0) * r["epochs"] for r in chosen))
    total = sum(r["epochs"] for r in rows if r["rate"] == rows[0]["rate"])
    at = np.arange(len(labels))
    right.bar(at - 0.2, ours, 0.4, label="sleeplm stage")
    right.bar(at + 0.2, theirs, 0.4, label="YASA 0.8.1")
    right.set(xticks=at, xticklabels=labels, ylabel=f"epochs right (of {total})", title="Real epochs staged right")
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="shared data dir (default $SLEEPLM_DATA)")
    parser.add_argument("--rates", type=float, nargs="+", default=[0.0, 50.0], help="0 = native rate")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--plot", type=Path, default=None, help="write the figure here (PNG)")
    parser.add_argument("--device-lowpass", type=float, default=None, help="Hz: a device low-pass before resampling")
    args = parser.parse_args()
    root = (args.data or shared_data_dir()) / "real-signals"
    lm = SleepLM.load()
    rows = []
    recordings = snippet_nights(root)
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, _night, recording, truth) in enumerate(recordings):
            for fs in args.rates:
                path = write_clinical_edf(recording, fs or None, Path(tmp) / f"r{k}_{int(fs)}.edf", args.device_lowpass)
                row = {
                    "recording": name,
                    "truth": truth,
                    "rate": fs or "native",
                    "device_lowpass_hz": args.device_lowpass,
                }
                row |= stage_file(lm, path, truth)
                rows.append(row)
                print(json.dumps(row))
    write_rows(rows, args.json)
    awake = [rec for name, _, rec, _ in recordings if name.startswith("yasa awake")]
    if args.plot and awake:
        plot(rows, awake[0].signals[EEG_C3], args.plot)


if __name__ == "__main__":
    main()
