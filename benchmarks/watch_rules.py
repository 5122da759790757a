"""How well natural-language watch rules work: calibrated on half of the reference bank's nights, measured
on the other half (``model_runtime.serving.watch_rules``, ``model_runtime.serving.reference_bank``).

Per rule: the concepts the vocabulary reads in it, the bank's epochs of those concepts, the scoring the
model picks and the threshold the shipped calibration gives (whole bank), and, measured honestly, F1 /
precision / recall on nights the threshold was not chosen on: the bank's timelines are split in two halves
(``night_halves``), the threshold is fitted on one half and applied to the other, both ways, the held-out
predictions of both halves are pooled, and this is averaged over ``--splits`` random splits (the range of
F1 over splits is reported too). ROC AUC (no threshold to fit) is over the whole bank. Every rule is
measured with both scorings, plain cosine and cosine minus the similarity to the checkpoint's "no events"
prompts ('contrast'), next to the one ``rule_scores`` picks ('kept').

Usage::

    python benchmarks/watch_rules.py --out watch_rules.json [--checkpoint PT] [--bank NPZ] [--rule TEXT ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from model_runtime.model.shipped import bank_path_for
from model_runtime.model.zero_shot import best_threshold
from model_runtime.serving.model_api import SleepLM
from model_runtime.serving.reference_bank import ReferenceBank, load_bank
from model_runtime.serving.watch_rules import calibrate_rule, rule_concepts, rule_scores, rule_truth

#: Random half splits the held-out numbers are averaged over (one split swings rare events a lot).
SPLITS = 20
RULES: tuple[str, ...] = (
    "REM with oxygen desaturation",
    "central apneas",
    "obstructive apnea",
    "mixed apnea",
    "apneas",
    "hypopnea",
    "hypopnea during N2",
    "oxygen desaturation",
    "arousals",
    "deep sleep",
    "REM sleep",
    "wake",
    "wake after sleep onset",
    "patient looks restless",
)


def night_halves(bank: ReferenceBank, seed: int) -> np.ndarray:
    """(n,) 0/1 per epoch: its half of one random split by timeline. Both renderings of a hypnogram share a
    timeline and stay on one side; timelines are shuffled within each database and dealt alternately, so
    each half holds about half of every database (ucddb's, slpdb's and the synthetic nights' events on both
    sides)."""
    rng = np.random.default_rng(seed)
    by_database: dict[str, list[str]] = {}
    for source in sorted(set(bank.night_sources)):
        by_database.setdefault(source.split("/")[0].split(":")[0], []).append(source)
    dealt = [s for database in sorted(by_database) for s in rng.permutation(by_database[database])]
    half_of_source = {source: i % 2 for i, source in enumerate(dealt)}
    return np.array([half_of_source[s] for s in bank.night_sources])[bank.night]


def held_out(scores: np.ndarray, truth: np.ndarray, halves: np.ndarray) -> tuple[float, float, float]:
    """(F1, precision, recall) of thresholds fitted on one half and applied to the other, both ways, pooled."""
    fired = np.zeros(len(scores), dtype=bool)
    for half in (0, 1):
        fit, test = halves == half, halves != half
        threshold, _ = best_threshold(scores[fit], truth[fit])
        fired[test] = scores[test] >= threshold
    hits = int((fired & truth).sum())
    precision = hits / int(fired.sum()) if fired.any() else 0.0
    recall = hits / int(truth.sum()) if truth.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return f1, precision, recall


def measure(lm: SleepLM, bank: ReferenceBank, text: str, splits: list[np.ndarray]) -> dict:
    """Every number of one rule (see the module docstring); held-out metrics are means over ``splits``."""
    vector = lm.embed_text(text)
    row = {"rule": text, **calibrate_rule(lm, text, bank, vector).to_dict()}
    concepts = rule_concepts(text)
    if not concepts.known:
        return row
    truth = rule_truth(concepts, bank)
    embeddings = bank.embeddings.astype(np.float32)
    scorings = {"kept": rule_scores(lm, vector, embeddings), "cosine": embeddings @ vector}
    if lm.no_event_class is not None:
        scorings["contrast"] = scorings["cosine"] - embeddings @ lm.no_event_class
    for name, scores in scorings.items():
        metrics = np.array([held_out(scores, truth, halves) for halves in splits])
        row[name] = {
            "auc": float(roc_auc_score(truth, scores)) if 0 < truth.sum() < len(truth) else None,
            "f1": float(metrics[:, 0].mean()),
            "f1_range": [float(metrics[:, 0].min()), float(metrics[:, 0].max())],
            "precision": float(metrics[:, 1].mean()),
            "recall": float(metrics[:, 2].mean()),
        }
    return row


def table(rows: list[dict]) -> str:
    """Markdown: the kept scoring's held-out numbers, then both scorings' held-out F1 and AUC side by side."""

    def cell(row: dict, scoring: str, key: str) -> str:
        value = row.get(scoring, {}).get(key)
        return "-" if value is None else f"{value:.2f}"

    lines = [
        "| rule | concepts | positives | scoring | threshold | held-out F1 (range) | P | R | AUC "
        "| cosine F1 / AUC | contrast F1 / AUC |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        concepts = " + ".join(filter(None, ("/".join(r["concepts"]["stages"]), "/".join(r["concepts"]["events"]))))
        f1_range = "-".join(f"{v:.2f}" for v in r["kept"]["f1_range"]) if "kept" in r else "-"
        lines.append(
            f"| {r['rule']} | {concepts or '(none)'} | {r['positives']} | {r['scoring']} "
            f"| {r['threshold']:.3f} ({r['method']}) | {cell(r, 'kept', 'f1')} ({f1_range}) "
            f"| {cell(r, 'kept', 'precision')} | {cell(r, 'kept', 'recall')} | {cell(r, 'kept', 'auc')} "
            f"| {cell(r, 'cosine', 'f1')} / {cell(r, 'cosine', 'auc')} "
            f"| {cell(r, 'contrast', 'f1')} / {cell(r, 'contrast', 'auc')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="checkpoint file (default: the shipped one)")
    parser.add_argument("--bank", type=Path, default=None, help="reference bank (default: beside the checkpoint)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    parser.add_argument("--rule", action="append", default=None, help="a rule to measure (repeatable)")
    parser.add_argument("--splits", type=int, default=SPLITS, help="random half splits by timeline to average")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    lm = SleepLM.load(args.checkpoint, backend="torch")
    bank = load_bank(args.bank or bank_path_for(args.checkpoint))
    splits = [night_halves(bank, seed) for seed in range(args.splits)]
    rows = [measure(lm, bank, text, splits) for text in args.rule or RULES]
    result = {"bank_epochs": len(bank), "timelines": len(set(bank.night_sources)), "splits": args.splits, "rules": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, allow_nan=False))
    print(table(rows))
    print(f"\n{args.out} written in {time.perf_counter() - t0:.0f} s ({len(bank)} bank epochs)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
