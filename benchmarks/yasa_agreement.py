"""How realistic is the simulated EEG/EOG/EMG? Ask YASA, a published automatic stager, to score it.

YASA's ``SleepStaging`` (Vallat & Walker 2021, eLife 10:e70092) is a LightGBM classifier trained on
thousands of real NSRR nights; it never saw our simulator. We render real expert timelines (Dreem
DOD-H/DOD-O, ucddb, Sleep-EDF, slpdb) with ``psg.simulate.neuro.render_neuro``, give YASA the C4-A1,
E1 (EOG-L) and chin EMG channels, and compare its hypnogram with the timeline the signals were drawn
from over the sleep period +- 30 min (first to last sleep epoch, extended by 60 epochs each side;
UNSCORED epochs are left out). High agreement means the stage-specific physiology looks like real sleep
to a model that learned real sleep.

Usage::

    python benchmarks/yasa_agreement.py --data ../shared/data --nights 10 --seed 0 --out yasa.json
    python benchmarks/yasa_agreement.py --data ../shared/data --nights 10 --whole-night --out yasa_whole.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import mne
import numpy as np
import yasa
from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, f1_score
from tqdm import tqdm

from psg.formats import read_timeline
from psg.montage import EEG_C4, EMG_CHIN, EOG_L
from psg.simulate.neuro import render_neuro
from psg.simulate.plan import make_plan
from psg.timeline import Stage, Timeline

LABELS = ["W", "N1", "N2", "N3", "R"]
#: YASA's Hypnogram spells wake and REM out.
_YASA_LABELS = {"WAKE": "W", "REM": "R"}
#: Epochs added on each side of the sleep period (60 x 30 s = 30 min).
MARGIN_EPOCHS = 60


def timeline_files(data: Path) -> list[Path]:
    """Hypnogram files per source, interleaved so that the first N nights span every source."""
    sources = [
        sorted((data / "dreem" / "dodh" / "scorer_1").glob("*.json")),
        sorted((data / "ucddb").glob("*_stage.txt")),
        sorted((data / "sleep-edfx-hypnograms").glob("*.edf.csv")),
        sorted((data / "dreem" / "dodo" / "scorer_1").glob("*.json")),
        sorted(p for p in (data / "slpdb").glob("*.st") if p.with_suffix(".hea").is_file()),
    ]
    out: list[Path] = []
    for i in range(max(len(s) for s in sources)):
        out.extend(s[i] for s in sources if i < len(s))
    return out


def stage_night(timeline: Timeline, seed: int, whole_night: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """Render the night, stage it with YASA; return the scored epoch indices, YASA's labels for them and
    the render time (s).

    By default YASA gets the sleep period +- 30 min, as a lab recording runs from lights-off to
    lights-on (YASA's own validation and most staging papers crop the 20-h Sleep-EDF SC nights the
    same way). With ``whole_night`` it gets the full rendered timeline, long daytime wake included,
    and is scored on the same window. That variant mostly measures YASA's per-recording normalisation,
    not the signals: the ``*_norm`` features are robust-scaled (5-95 % range) over the recording and
    ``time_hour``/``time_norm`` count from its start, so when 60 % of a 20-h recording is wake the
    sleep epochs land at the edge of the scaled range, where YASA's training nights (lights-off to
    lights-on) put wake. Recomputing only those features on the crop restores most of the cropped accuracy.
    """
    idx = scored_window(timeline)
    if idx.size == 0:
        return idx, np.array([], dtype=str), 0.0
    plan = make_plan(timeline, seed=seed)
    t0 = time.perf_counter()
    rendered = render_neuro(plan)
    render_s = time.perf_counter() - t0
    names = [EEG_C4, EOG_L, EMG_CHIN]
    fs = rendered.signals[EEG_C4].fs
    first, last = (0, timeline.n_epochs) if whole_night else (int(idx[0]), int(idx[-1]) + 1)
    span = slice(int(first * timeline.epoch_s * fs), int(last * timeline.epoch_s * fs))
    data = np.vstack([rendered.signals[name].data[span] for name in names]) * 1e-6  # MNE works in volts
    info = mne.create_info(names, fs, ch_types=["eeg", "eog", "emg"], verbose=False)
    raw = mne.io.RawArray(data, info, verbose=False)
    staging = yasa.SleepStaging(raw, eeg_name=EEG_C4, eog_name=EOG_L, emg_name=EMG_CHIN)
    labels = np.array([_YASA_LABELS.get(str(v), str(v)) for v in staging.predict().hypno.to_numpy()])
    return idx, labels[idx - first], render_s


def scored_window(timeline: Timeline) -> np.ndarray:
    """Indices of scored epochs in the sleep period +- ``MARGIN_EPOCHS``."""
    period = timeline.sleep_period()
    if period is None:
        return np.array([], dtype=np.int64)
    lo, hi = max(0, period[0] - MARGIN_EPOCHS), min(timeline.n_epochs, period[1] + MARGIN_EPOCHS + 1)
    idx = np.arange(lo, hi)
    return idx[timeline.stages[idx] != Stage.UNSCORED]


def evaluate(timeline: Timeline, idx: np.ndarray, pred: np.ndarray) -> dict:
    """Agreement of YASA's labels ``pred`` with the timeline on epochs ``idx``."""
    truth = np.array([Stage(int(s)).label for s in timeline.stages[idx]])
    return {
        "record": timeline.record_id,
        "epochs": int(idx.size),
        "accuracy": float(accuracy_score(truth, pred)),
        "kappa": float(cohen_kappa_score(truth, pred, labels=LABELS)),
        "macro_f1": float(f1_score(truth, pred, labels=LABELS, average="macro", zero_division=0)),
        "confusion": confusion_matrix(truth, pred, labels=LABELS).tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="shared data folder (real timelines)")
    parser.add_argument("--nights", type=int, default=10, help="number of nights, spread over the sources")
    parser.add_argument("--seed", type=int, default=0, help="simulator seed of the first night (+1 per night)")
    parser.add_argument(
        "--whole-night",
        action="store_true",
        help="give YASA the whole recording (not the crop); scored on the same window",
    )
    parser.add_argument("--out", type=Path, default=None, help="write per-night and summary results as JSON")
    args = parser.parse_args()
    logging.getLogger("yasa").setLevel(logging.ERROR)
    files = timeline_files(args.data)[: args.nights]
    if not files:
        raise SystemExit(f"no timelines found under {args.data}")
    results = []
    for i, path in enumerate(tqdm(files, desc="nights", unit="night")):
        timeline = read_timeline(path)
        idx, predicted, render_s = stage_night(timeline, seed=args.seed + i, whole_night=args.whole_night)
        if idx.size == 0:
            tqdm.write(f"{path}: no sleep scored, skipped")
            continue
        row = {
            "file": str(path.relative_to(args.data)),
            "seed": args.seed + i,
            "render_s": render_s,
            **evaluate(timeline, idx, predicted),
        }
        results.append(row)
        tqdm.write(
            f"{row['file']:<60} acc {row['accuracy']:.3f}  kappa {row['kappa']:.3f}  "
            f"F1 {row['macro_f1']:.3f}  ({row['epochs']} epochs, render {render_s:.1f} s)"
        )
    total = np.sum([r["confusion"] for r in results], axis=0)
    summary = {
        "nights": len(results),
        "whole_night": args.whole_night,
        "mean_accuracy": float(np.mean([r["accuracy"] for r in results])),
        "min_accuracy": float(np.min([r["accuracy"] for r in results])),
        "mean_kappa": float(np.mean([r["kappa"] for r in results])),
        "mean_macro_f1": float(np.mean([r["macro_f1"] for r in results])),
        "confusion_labels": LABELS,
        "confusion": total.tolist(),
    }
    print(
        f"\nmean accuracy {summary['mean_accuracy']:.3f} (min {summary['min_accuracy']:.3f}), "
        f"kappa {summary['mean_kappa']:.3f}, macro-F1 {summary['mean_macro_f1']:.3f}"
    )
    print("confusion (rows truth, columns YASA; recall per row):")
    print("      " + "".join(f"{lab:>7}" for lab in LABELS) + "  recall")
    for lab, row in zip(LABELS, total, strict=True):
        recall = row[LABELS.index(lab)] / row.sum() if row.sum() else float("nan")
        print(f"{lab:>5} " + "".join(f"{v:>7d}" for v in row) + f"  {recall:6.2f}")
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "nights": results}, indent=2))


if __name__ == "__main__":
    main()
