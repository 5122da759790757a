"""Precision of `sleeplm query`'s returned matches on held-out simulated nights with artifacts (issue 15).

Nights: validation-split timelines of the shared data (never trained on: ``corpus.split_of``), one per
database where there is one, plus validation-split synthetic apnea nights and one synthetic night with
no respiratory events, each rendered by ``psg.simulate`` with artifacts and a seed the corpus never used.
Each query runs as ``sleeplm query`` does (``model_runtime.serving.night.query_night``: calibrated threshold,
at most ``--top`` matches); a returned epoch is correct when the simulator's truth has the query's
concept in it (``watch_rules.rule_concepts``: an event of the type overlapping the epoch, or the stage).
Also reported: nights without the concept and whether their answer was empty.

    .venv/bin/python benchmarks/night_search.py [--top 10] [--hours 3] [--ranked]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_runtime.model.shipped import bank_path_for  # noqa: E402
from model_runtime.serving.model_api import SleepLM  # noqa: E402
from model_runtime.serving.night import NightInput, query_night  # noqa: E402
from model_runtime.serving.reference_bank import load_bank
from model_runtime.serving.watch_rules import rule_concepts  # noqa: E402
from model_runtime.training.corpus import NightSpec, render, split_of, timeline_sources  # noqa: E402
from psg.model_input import recording_model_epochs  # noqa: E402
from psg.paths import shared_data_dir  # noqa: E402
from psg.timeline import EPOCH_S, Stage  # noqa: E402

QUERIES = ("oxygen desaturation", "hypopnea", "REM sleep", "wake")
SEED = 7  # the corpus renders seeds 0 and 1


def held_out_sources(data_dir: Path) -> list[str]:
    """One validation timeline per database, validation synthetic apnea nights, and an event-free night."""
    picked: dict[str, str] = {}
    for source in timeline_sources(data_dir):
        base = Path(source).parent.name if "dreem" not in source else Path(source).parts[-3]
        if split_of(source) == "validation" and base not in picked:
            picked[base] = source
    synthetic = [
        s
        for s in (f"synthetic:{2000 + i}:{ahi}" for i, ahi in enumerate((15, 30, 45, 60) * 4))
        if split_of(s) == "validation"
    ][:2]
    return [*picked.values(), *synthetic, "synthetic:3001:0"]


def truth_of(recording, n: int, concept_text: str) -> np.ndarray:
    """(n,) bool: epochs whose simulator truth shows the concepts of ``concept_text``."""
    concepts = rule_concepts(concept_text)
    timeline = recording.timeline
    out = np.ones(n, dtype=bool)
    if concepts.stages:
        stages = np.full(n, int(Stage.UNSCORED))
        k = min(n, timeline.n_epochs)
        stages[:k] = timeline.stages[:k]
        wanted = [int(Stage[s]) for s in concepts.stages]
        out &= np.isin(stages, wanted)
    if concepts.events:
        has = np.zeros(n, dtype=bool)
        for event in timeline.events:
            if event.type in concepts.events:
                first, last = int(event.onset_s // EPOCH_S), int(max(event.end_s - 1e-6, event.onset_s) // EPOCH_S)
                has[max(first, 0) : min(last, n - 1) + 1] = True
        out &= has
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--hours", type=float, default=3.0, help="search at most this much of each night")
    parser.add_argument("--ranked", action="store_true", help="the old behaviour: the top matches, no threshold")
    args = parser.parse_args()
    lm = SleepLM.load(None)
    bank = load_bank(bank_path_for(None))
    totals = {q: {"returned": 0, "correct": 0, "empty_on_none": 0, "nights_without": 0} for q in QUERIES}
    nights = []
    started = time.perf_counter()
    for source in held_out_sources(shared_data_dir()):
        recording = render(NightSpec(source, seed=SEED, artifacts=True))
        x = recording_model_epochs(recording)[: int(args.hours * 3600 / EPOCH_S)]
        night = NightInput(Path(source), recording, x, [], None)
        row = {"night": Path(source).name if not source.startswith("synthetic") else source, "epochs": night.n_epochs}
        for query in QUERIES:
            truth = truth_of(recording, night.n_epochs, query)
            result = query_night(lm, night, query, top=args.top, bank=None if args.ranked else bank)
            got = [m["epoch"] for m in result["matches"]]
            correct = int(sum(truth[e] for e in got))
            t = totals[query]
            t["returned"] += len(got)
            t["correct"] += correct
            if not truth.any():
                t["nights_without"] += 1
                t["empty_on_none"] += int(not got)
            row[query] = f"{correct}/{len(got)} (truth {int(truth.sum())})"
        nights.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{len(nights)} nights in {time.perf_counter() - started:.0f} s, top {args.top}")
    print("| query | returned | correct | precision | nights without it: empty answer |")
    print("|---|---|---|---|---|")
    for query, t in totals.items():
        precision = t["correct"] / t["returned"] if t["returned"] else float("nan")
        print(
            f"| {query} | {t['returned']} | {t['correct']} | {precision:.3f} | "
            f"{t['empty_on_none']}/{t['nights_without']} |"
        )


if __name__ == "__main__":
    main()
