"""Heart rate from the caption features vs the real slpdb heartbeats, epoch by epoch.

Each slpdb record's timeline (hypnogram + real R-peak times from the ``.ecg`` beat annotations) is
rendered by the cardio-respiratory simulator, ``psg.features.cardiac.cardiac_epoch_features`` runs on
the simulated ECG (R peaks by NeuroKit2), and its ``hr_bpm`` is compared with 60 / mean RR of the real
beats in the same epoch. Reported per record: the fraction of epochs within ``--tolerance`` bpm, over
epochs where the real beats give a rate (>= 2 beats in the epoch).

    .venv/bin/python benchmarks/heart_rate.py --seed 0 --out /tmp/hr.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from psg.features.cardiac import beat_epoch_features, cardiac_epoch_features
from psg.formats import read_timeline
from psg.paths import shared_data_dir
from psg.recording import Recording
from psg.simulate.cardiorespiratory import render_cardiorespiratory
from psg.simulate.plan import make_plan


def evaluate_record(stem: Path, seed: int, tolerance: float) -> dict[str, object]:
    timeline = read_timeline(stem.with_suffix(".st"))
    rendered = render_cardiorespiratory(make_plan(timeline, seed=seed))
    recording = Recording(timeline.record_id, rendered.signals)
    n = timeline.n_epochs
    truth = [f["hr_bpm"] for f in beat_epoch_features(timeline.beat_times_s, n)]
    found = [f["hr_bpm"] for f in cardiac_epoch_features(recording, n)]
    scored = [(t, f) for t, f in zip(truth, found, strict=True) if t is not None]
    errors = np.array([abs(t - f) if f is not None else np.inf for t, f in scored])
    return {
        "record": timeline.record_id,
        "n_epochs": len(scored),
        "fraction_within": round(float(np.mean(errors <= tolerance)) if errors.size else 1.0, 4),
        "n_missing": int(np.sum(~np.isfinite(errors))),
        "median_abs_error_bpm": round(float(np.median(errors)) if errors.size else 0.0, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir(), help="shared data folder (has slpdb/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=3.0, help="bpm")
    parser.add_argument("--records", nargs="*", help="record names (default: slpdb/RECORDS)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    names = args.records or (args.data / "slpdb" / "RECORDS").read_text().split()
    t0 = time.perf_counter()
    records = [
        evaluate_record(args.data / "slpdb" / name, args.seed, args.tolerance)
        for name in tqdm(names, desc="slpdb records", unit="record")
    ]
    total = sum(r["n_epochs"] for r in records)
    overall = {
        "tolerance_bpm": args.tolerance,
        "fraction_within": round(sum(r["fraction_within"] * r["n_epochs"] for r in records) / max(1, total), 4),
        "min_record_fraction": min((r["fraction_within"] for r in records), default=None),
        "n_epochs": total,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    report = {"seed": args.seed, "overall": overall, "records": records}
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
