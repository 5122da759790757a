"""Generated captions of checkpoints side by side on held-out simulated nights (issue 15's decoder retrain).

For each checkpoint, on the first ``--nights`` validation nights (``model_runtime.evaluation.nights``: the
timelines training never saw, rendered with their truth, the AASM detectors' evidence and YASA):

* ``stage_event`` caption facts as ``sleeplm eval`` scores them (``caption_facts``: stated stage = truth,
  apnea/hypopnea mentioned vs held) for the product path (the model's smoothed stage + the detectors'
  evidence as prefix) and the decoder alone (both prefixes '?'), on ``--epochs`` sampled epochs per night;
* every level's generated captions (``--grammar-epochs`` per night) through the grammar and voice check of
  ``tests/psg/test_caption_truth.py`` (scorer wording, articles, plurals, units, spacing): captions with
  a problem, and the problems by kind.

Usage::

    .venv/bin/python benchmarks/decoder_captions.py /tmp/before.pt model_runtime/checkpoints/sleeplm-small.pt \\
        --nights 5 --cache sleeplm-data/eval
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from model_runtime.evaluation.evaluate import caption_facts, zero_shot_stages
from model_runtime.evaluation.nights import EvalNight, prepare_night, validation_specs
from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.model.tokenizer import fill_slots
from model_runtime.serving.model_api import SleepLM
from psg.captions import MODALITIES
from psg.paths import shared_data_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: the tests' grammar check
from tests.psg.test_caption_truth import grammar_problems  # noqa: E402  (one checker for tests and this)


def measure(checkpoint: Path, nights: list[EvalNight], epochs: int, grammar_epochs: int) -> dict:
    """Caption facts and grammar counts of one checkpoint on ``nights`` (seeded samples, same for all)."""
    lm = SleepLM.load(checkpoint, backend="torch")
    rng = np.random.default_rng(0)
    texts: dict[str, list[str]] = {"model_stage": [], "decoder_alone": []}
    truth: list[int] = []
    events: list[list[str]] = []
    levels: dict[str, list[str]] = {m: [] for m in MODALITIES}
    started = time.perf_counter()
    for night in nights:
        scored = np.flatnonzero(night.truth >= 0)
        idx = np.sort(rng.choice(scored, min(epochs, len(scored)), replace=False))
        embeddings, memory = lm.encode(night.x[idx])
        stages = [STAGE_LABELS[s] for s in zero_shot_stages(lm, lm.encode(night.x)[0], smooth=True)[idx]]
        features = [night.features[i] for i in idx]
        evidence = [night.evidence[i] for i in idx]
        texts["model_stage"] += lm.describe(night.x[idx], features, "stage_event", stages, evidence)
        pieces = lm.generate(memory, "stage_event", ["?"] * len(idx))
        texts["decoder_alone"] += [fill_slots(p, f, []) for p, f in zip(pieces, features, strict=True)]
        truth += night.truth[idx].tolist()
        events += [night.events[i] for i in idx]
        few = idx[:grammar_epochs]
        for modality in MODALITIES:
            given = stages[: len(few)] if modality == "stage_event" else None
            levels[modality] += lm.describe(night.x[few], features[: len(few)], modality, given, evidence[: len(few)])
    problems = {m: [p for t in ts for p in grammar_problems(t)] for m, ts in levels.items()}
    bad = {m: sum(1 for t in ts if grammar_problems(t)) for m, ts in levels.items()}
    kinds = Counter(re.sub(r"[ :].*", "", p) for ps in problems.values() for p in ps)
    return {
        "checkpoint": str(checkpoint),
        "seconds": round(time.perf_counter() - started, 1),
        **{variant: caption_facts(t, truth, events) for variant, t in texts.items()},
        "grammar": {
            "captions": {m: len(ts) for m, ts in levels.items()},
            "with_problems": bad,
            "problem_kinds": dict(kinds),
            "examples": sorted({p for ps in problems.values() for p in ps})[:10],
        },
        "examples": {m: ts[:2] for m, ts in levels.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", type=Path, nargs="+", help="checkpoint files to compare")
    parser.add_argument("--nights", type=int, default=5, help="first N validation nights")
    parser.add_argument("--epochs", type=int, default=200, help="stage_event epochs per night (facts)")
    parser.add_argument("--grammar-epochs", type=int, default=40, help="epochs per night captioned at every level")
    parser.add_argument("--cache", type=Path, default=None, help="cache of rendered validation nights")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    nights = [prepare_night(s, args.cache) for s in validation_specs(shared_data_dir(), args.nights)]
    results = [measure(c, nights, args.epochs, args.grammar_epochs) for c in args.checkpoints]
    text = json.dumps({"nights": [n.key for n in nights], "results": results}, indent=1, ensure_ascii=False)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
