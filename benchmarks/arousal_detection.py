"""Arousal detection on simulated ucddb nights vs the arousals the simulator rendered.

Each ucddb night's real timeline (hypnogram + scored respiratory events) is planned by the simulator,
which adds the arousals that end many respiratory events (``psg.simulate.plan``) and renders them in
the EEG; ``psg.detectors.arousal.detect_arousals`` runs on the rendered central EEG only (optionally
resampled to ``--eeg-fs``, e.g. 50 Hz as home montages store it), and detections are matched to the
rendered arousals (overlap, one-to-one). Also reported: detections per hour in wake epochs (the AASM
scores no arousal from wake).

    .venv/bin/python benchmarks/arousal_detection.py --nights 5 --eeg-fs 50 --out /tmp/arousal.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import signal as sps

from psg.detectors.agreement import match_events
from psg.detectors.arousal import detect_arousals
from psg.formats import read_timeline
from psg.montage import EEG_C3, EEG_C4
from psg.paths import shared_data_dir
from psg.recording import Recording, Signal
from psg.simulate.neuro import render_neuro
from psg.simulate.plan import make_plan
from psg.timeline import Stage


def evaluate_night(stage_file: Path, seed: int, eeg_fs: float | None) -> dict[str, object]:
    """Render one night's EEG, detect arousals, and compare with the rendered ones."""
    timeline = read_timeline(stage_file)
    plan = make_plan(timeline, seed=seed)
    signals = {k: v for k, v in render_neuro(plan).signals.items() if k in (EEG_C3, EEG_C4)}
    if eeg_fs is not None:
        signals = {
            k: Signal(k, sps.resample_poly(v.data, int(eeg_fs), int(v.fs)), eeg_fs, v.unit) for k, v in signals.items()
        }
    detected = [d.to_event() for d in detect_arousals(Recording(timeline.record_id, signals))]
    truth = plan.arousals
    agreement = match_events(detected, truth)
    stage_at = (
        timeline.stages[np.clip([int(d.onset_s // timeline.epoch_s) for d in detected], 0, timeline.stages.size - 1)]
        if detected
        else np.empty(0)
    )
    wake_h = float(np.sum(timeline.stages == Stage.W)) * timeline.epoch_s / 3600.0
    return {
        "record": timeline.record_id,
        "n_truth": len(truth),
        "n_detected": len(detected),
        "counts": [agreement.tp, agreement.fp, agreement.fn],
        "f1": round(agreement.f1, 4),
        "in_wake": int(np.sum(stage_at == Stage.W)),
        "wake_h": round(wake_h, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir(), help="shared data folder (has ucddb/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nights", type=int, default=5, help="the first N ucddb nights")
    parser.add_argument("--eeg-fs", type=float, default=None, help="resample the EEG to this rate first")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    args = parser.parse_args()
    files = sorted((args.data / "ucddb").glob("ucddb*_stage.txt"))[: args.nights]
    t0 = time.perf_counter()
    nights = [evaluate_night(f, args.seed, args.eeg_fs) for f in files]
    tp, fp, fn = (sum(n["counts"][k] for n in nights) for k in range(3))
    report = {
        "nights": len(nights),
        "eeg_fs": args.eeg_fs or "native (256 Hz)",
        "counts": [tp, fp, fn],
        "precision": round(tp / max(1, tp + fp), 4),
        "recall": round(tp / max(1, tp + fn), 4),
        "f1": round(2 * tp / max(1, 2 * tp + fp + fn), 4),
        "detections_in_wake_per_h": round(
            sum(n["in_wake"] for n in nights) / max(1e-9, sum(n["wake_h"] for n in nights)), 2
        ),
        "seconds": round(time.perf_counter() - t0, 1),
        "per_night": nights,
    }
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text)
    print(json.dumps({k: v for k, v in report.items() if k != "per_night"}))


if __name__ == "__main__":
    main()
