"""Respiratory-event detection on simulated ucddb nights vs the expert-scored events.

Each ucddb night's real timeline (hypnogram + scored apneas/hypopneas) is rendered by the
cardio-respiratory simulator, ``psg.detectors.detect_respiratory_events`` runs on the signals only,
and detections are matched to the expert events (overlap, one-to-one, greedy by overlap). F1 is
reported type-agnostic (any respiratory event) and type-aware (obstructive / central / mixed apnea,
hypopnea). Expert events shorter than the AASM 10-s minimum are counted and kept in the truth (the
simulator renders them as scored; a rule-following detector cannot find them, so they count as misses).

    .venv/bin/python benchmarks/respiratory_detection.py --seed 0 --out /tmp/resp.json

``--eeg`` renders the central EEG too, so hypopneas can be confirmed by arousals as well as by
desaturations; ``--no-spo2`` drops the oximeter (arousals are then the only confirmation); ``--rate HZ``
records every channel faster than HZ at HZ (``real_rates.resampled``), as a 50-Hz clinical montage does;
``--flow-scale K`` multiplies the airflow and both belts by K, as a lab writing them in its own units does;
``--breathing-rate HZ`` records the airflow and both belts at HZ (Sleep-EDF's oro-nasal flow is 1 Hz).
``recall_arousal_ended`` is the recall over the scored events the simulator ended with an arousal (the
held-out montage of issue 12 has an arousal after each of its events), ``false_per_10min`` the detections
that match no scored event per 10 min of recording (its limit there: 1).

    .venv/bin/python benchmarks/respiratory_detection.py --eeg --no-spo2 --rate 50 --records ucddb002 ...
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from real_rates import resampled
from tqdm import tqdm

from psg.detectors.agreement import match_events
from psg.detectors.respiratory import MIN_EVENT_S, detect_respiratory_events
from psg.formats import read_timeline
from psg.montage import ABD, AF, EEG_C3, EEG_C4, SPO2, THX
from psg.paths import shared_data_dir
from psg.recording import Recording
from psg.simulate.cardiorespiratory import render_cardiorespiratory
from psg.simulate.neuro import render_neuro
from psg.simulate.plan import make_plan
from psg.timeline import RESPIRATORY_EVENT_TYPES

#: What ``--flow-scale`` multiplies and ``--breathing-rate`` resamples: the airflow sensor and the effort belts.
BREATHING_TRACES = (AF, THX, ABD)


def evaluate_night(
    stage_file: Path,
    seed: int,
    eeg: bool = False,
    spo2: bool = True,
    rate: float | None = None,
    flow_scale: float = 1.0,
    breathing_rate: float | None = None,
) -> dict[str, object]:
    """Render one night, detect, and compare; returns the per-night numbers."""
    timeline = read_timeline(stage_file)
    plan = make_plan(timeline, seed=seed)
    signals = dict(render_cardiorespiratory(plan).signals)
    if eeg:
        signals.update({k: v for k, v in render_neuro(plan).signals.items() if k in (EEG_C3, EEG_C4)})
    if not spo2:
        signals.pop(SPO2, None)
    if rate is not None:
        signals = {label: resampled(sig, rate) if sig.fs > rate else sig for label, sig in signals.items()}
    for label in BREATHING_TRACES:
        if flow_scale != 1.0 and label in signals:
            signals[label] = signals[label].with_data(signals[label].data * flow_scale)
        if breathing_rate is not None and label in signals:
            signals[label] = resampled(signals[label], breathing_rate)
    recording = Recording(timeline.record_id, signals)
    detected = [d.to_event() for d in detect_respiratory_events(recording)]
    truth = timeline.events_of(*RESPIRATORY_EVENT_TYPES)
    any_type = match_events(detected, truth)
    ended = {j for j, ev in enumerate(truth) if any(a.overlaps(ev.end_s - 2.0, ev.end_s + 8.0) for a in plan.arousals)}
    found = {j for _, j in any_type.pairs}
    typed = match_events(detected, truth, typed=True)
    confusion = Counter(f"{truth[j].type}->{detected[i].type}" for i, j in any_type.pairs)
    return {
        "record": timeline.record_id,
        "n_truth": len(truth),
        "n_detected": len(detected),
        "n_truth_under_10s": sum(e.duration_s < MIN_EVENT_S for e in truth),
        "f1_any": round(any_type.f1, 4),
        "precision_any": round(any_type.precision, 4),
        "recall_any": round(any_type.recall, 4),
        "arousal_ended_found": [len(ended & found), len(ended)],
        "false_per_10min": round(any_type.fp / (recording.duration_s / 600), 3),
        "f1_typed": round(typed.f1, 4),
        "counts_any": [any_type.tp, any_type.fp, any_type.fn],
        "counts_typed": [typed.tp, typed.fp, typed.fn],
        "confusion": dict(confusion),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir(), help="shared data folder (has ucddb/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--records", nargs="*", help="record ids to run (default: all ucddb nights)")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--eeg", action="store_true", help="render the central EEG too (arousal confirmation)")
    parser.add_argument("--no-spo2", action="store_true", help="leave the oximeter out")
    parser.add_argument("--rate", type=float, help="record every faster channel at this rate (Hz), e.g. 50")
    parser.add_argument("--flow-scale", type=float, default=1.0, help="multiply the airflow and belts (a lab's units)")
    parser.add_argument("--breathing-rate", type=float, help="record the airflow and belts at this rate (Hz), e.g. 1")
    args = parser.parse_args()
    files = sorted((args.data / "ucddb").glob("ucddb*_stage.txt"))
    if args.records:
        files = [f for f in files if f.name.removesuffix("_stage.txt") in args.records]
    t0 = time.perf_counter()
    nights = [
        evaluate_night(f, args.seed, args.eeg, not args.no_spo2, args.rate, args.flow_scale, args.breathing_rate)
        for f in tqdm(files, desc="ucddb nights", unit="night")
    ]
    totals = {key: [sum(n[key][k] for n in nights) for k in range(3)] for key in ("counts_any", "counts_typed")}

    def f1(counts: list[int]) -> float:
        tp, fp, fn = counts
        return round(2 * tp / max(1, 2 * tp + fp + fn), 4)

    found, ended = (sum(n["arousal_ended_found"][k] for n in nights) for k in range(2))
    confusion: Counter[str] = Counter()
    for n in nights:
        confusion.update(n["confusion"])
    report = {
        "seed": args.seed,
        "rate_hz": args.rate,
        "flow_scale": args.flow_scale,
        "breathing_rate_hz": args.breathing_rate,
        "n_nights": len(nights),
        "overall": {
            "f1_any": f1(totals["counts_any"]),
            "f1_typed": f1(totals["counts_typed"]),
            "counts_any_tp_fp_fn": totals["counts_any"],
            "counts_typed_tp_fp_fn": totals["counts_typed"],
            "min_night_f1_any": min((n["f1_any"] for n in nights), default=None),
            "min_night_f1_typed": min((n["f1_typed"] for n in nights), default=None),
            "n_truth_under_10s": sum(n["n_truth_under_10s"] for n in nights),
            "recall_arousal_ended": round(found / max(1, ended), 4),
            "max_night_false_per_10min": max((n["false_per_10min"] for n in nights), default=None),
            "confusion_truth_to_detected": dict(sorted(confusion.items())),
            "seconds": round(time.perf_counter() - t0, 1),
        },
        "nights": nights,
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text)
    print(json.dumps(report["overall"], indent=2))


if __name__ == "__main__":
    main()
