"""How much history the live stage head needs: accuracy by history length, and after a worker restart.

The live stage head (``model_runtime.serving.live_stage_head``) stages a real bed's new epoch from the
measurements the runtime kept for that bed, which live in the worker's memory. Two moments see a short
history: the start of a recording, and any epoch after the worker restarted or the bed's partition moved to
another worker (a rebalance), where the history starts again from the epochs the epocher replays. This
measures both on the held-out simulated nights of ``stage_head_eval.py`` (same nights and seed), treated
as recorded beds (the real-prior head, what a real bed gets):

* from the start: accuracy of the lag-0 verdict by the number of epochs of history (bins);
* a restart at epoch R (``--restarts``): the next ``--after`` epochs staged from a history that begins at
  R, against the same epochs staged with the whole history, by epochs since the restart (bins).

Per-epoch measurements are taken once per night (``recording_windows`` + ``epoch_measurements``, as the
epocher takes them); ``--every`` > 1 stages every K-th epoch from the start (the history still holds every
epoch). Results: ``--json``.

    .venv/bin/python benchmarks/live_history_length.py --json benchmarks/results/live_history_length.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from stage_head_eval import held_out_sources, variants
from tqdm import tqdm

from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.model.stage_head import UNCERTAIN, StageHead
from model_runtime.serving.live_stage_head import tie_reason
from model_runtime.serving.model_api import SleepLM
from model_runtime.training.corpus import NightSpec, render
from psg.epoching.analysis import recording_windows
from psg.features.live_stage import MeasurementHistory, epoch_measurements
from psg.recording import RECORDED, Recording

BINS = ((1, 5), (6, 10), (11, 20), (21, 40), (41, 80), (81, 10_000))
VARIANTS = ("full", "eeg_only")


def measured(recording: Recording, desc: str) -> list[dict]:
    return [
        epoch_measurements({k: w.current(k) for k in w.signals}, w.signals, w.epoch - w.first_epoch)
        for w in tqdm(recording_windows(recording), total=recording.n_epochs, desc=desc, leave=False)
    ]


def verdict(head: StageHead, history: MeasurementHistory, epoch: int, m: dict) -> tuple[str, str]:
    """(verdict, best stage) of ``epoch`` from ``history``, as the live runtime gives it for a recorded bed."""
    x, ok, low_passed = history.row(epoch, m)
    flags = np.array([ok])
    staged = head.judge(x[None], flags, head.gate(x[None], flags, RECORDED))
    # the live runtime's device low-pass and coin-toss rules (LiveStageHead.stage)
    unsure = low_passed or tie_reason(staged.probabilities[0])
    return (UNCERTAIN if unsure else staged.verdicts[0]), staged.best[0]


def run(head: StageHead, ms: list[dict], truth: list[str], first: int, last: int) -> list[tuple[int, str, str]]:
    """(history length, verdict, best) of epochs first..last-1 with a history that starts at ``first``."""
    history = MeasurementHistory("bed")
    return [(e - first + 1, *verdict(head, history, e, ms[e])) for e in range(first, last)]


def scores(rows: list[tuple[str, str, str]]) -> dict:
    """Accuracy of the most likely stage, of the stated verdicts, and the share left uncertain."""
    scored = [(t, v, b) for t, v, b in rows if t]
    if not scored:
        return {"epochs": 0}
    stated = [(t, v) for t, v, _ in scored if v != UNCERTAIN]
    return {
        "epochs": len(scored),
        "accuracy": round(float(np.mean([t == b for t, _, b in scored])), 3),
        "stated_accuracy": round(float(np.mean([t == v for t, v in stated])), 3) if stated else None,
        "uncertain": round(1 - len(stated) / len(scored), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nights", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--restarts", type=int, nargs="+", default=[300, 600])
    parser.add_argument("--after", type=int, default=80, help="epochs staged after each restart")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    head = SleepLM.load().stage_head
    assert head is not None, "no stage head beside the checkpoint"
    sources = held_out_sources(args.nights)
    rng = np.random.default_rng(args.seed)
    by_bin: dict[str, dict[str, list]] = {v: {f"{lo}-{hi}": [] for lo, hi in BINS} for v in VARIANTS}
    restart: dict[str, dict[str, list]] = {
        v: {f"{m} {lo}-{hi}": [] for m in ("whole history", "after restart") for lo, hi in BINS if lo <= args.after}
        for v in VARIANTS
    }
    for source in sources:
        recording = render(NightSpec(source, seed=args.seed, artifacts=True))
        assert recording.timeline is not None
        named = variants(recording, rng)
        for name in VARIANTS:
            rec, window = named[name]
            stages = recording.timeline.stages[window]
            truth = [STAGE_LABELS[k] if k >= 0 else "" for k in stages]
            ms = measured(rec, f"{Path(source).name} {name}")
            n = min(len(ms), len(truth))
            whole = run(head, ms, truth, 0, n)
            for (length, v, b), t in zip(whole, truth, strict=False):
                key = next(f"{lo}-{hi}" for lo, hi in BINS if lo <= length <= hi)
                by_bin[name][key].append((t, v, b))
            for r in args.restarts:
                if r + args.after > n:
                    continue
                fresh = run(head, ms, truth, r, r + args.after)
                for since, (_, v, b) in enumerate(fresh, start=1):  # epochs since the restart, the new history
                    key = next(f"{lo}-{hi}" for lo, hi in BINS if lo <= since <= hi)
                    restart[name][f"after restart {key}"].append((truth[r + since - 1], v, b))
                    restart[name][f"whole history {key}"].append((truth[r + since - 1], *whole[r + since - 1][1:]))
            print(f"{Path(source).name} {name}: {n} epochs", flush=True)
    result = {
        "by_history_epochs": {v: {k: scores(rows) for k, rows in bins.items()} for v, bins in by_bin.items()},
        "restart": {v: {k: scores(rows) for k, rows in modes.items()} for v, modes in restart.items()},
        "restarts_at": args.restarts,
        "after": args.after,
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
