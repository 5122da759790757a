"""The offline stage head run live on the growing history: the whole recording so far, a verdict read L epochs late.

Why: ``benchmarks/live_window_stage.py`` ran the offline pipeline (``stage_feature_matrix`` +
``StageHead.stage_features``) on each bed's trailing W-epoch window and lost 15-26 points against the
whole-recording run. Its suspects: recording-relative normalisation (our robust z-scores, YASA's robust
scaling) over only W epochs; centred context (our 5- and 15-epoch means, YASA's 15-epoch triangular
window) cut at the present; the domain gate's statistic flipping per window. This measures the design a
live runtime can actually implement: the window is the WHOLE recording so far (epochs 0 .. e + L), and
the verdict for epoch e is read when epoch e + L has arrived, for lags L (``--lags``, default 0 3 7).
L = 7 makes our centred 15-epoch window and YASA's 15-epoch one complete; only the normalisation still
sees less than the whole night (it sees epochs 0 .. e + L). Where e + L is past the recording's last
epoch the verdict is read from the last window (the whole recording: what a runtime gives at the end).

Gate modes: ``own`` stages the window's features as they are (the window is cut with
``stage_head_training.crop``, which, as in the trailing mode, leaves no ``origin``: the gate reads its
novelty statistic); ``fixed`` forces the head the offline whole-recording run chose for that recording
(``origin="recorded"`` for the real-prior head, a copy of the head with ``gate_threshold=inf`` and no
origin for the full head; a window on which YASA staged no epoch, under 1 epoch of usable EEG, still goes
to the full head, as ``StageHead.gate`` says).

Sets: the held-out simulated nights of ``benchmarks/stage_head_eval.py`` (``full`` and ``eeg_only``),
every K-th epoch scored (``--every``, default 8; the same epochs for every lag and gate mode), and the
real recordings of ``benchmarks/real_signals.py``, every epoch scored. The real recordings are at most
12 epochs long, so with a growing history most of their windows are the whole recording or nearly: at
L = 7, 18 of their 24 verdicts are read from the last window (the offline run's, the gate aside); the
others come from windows of 1-11 epochs, where YASA's recording-relative features carry little.

Cost: each call recomputes the whole history, O(e); reported as median and p95 wall ms of one
``stage_feature_matrix`` + ``stage_features`` call (own gate) by history length (bins of +-50 epochs
around ``--cost-at``). A real implementation would be incremental: each epoch's spectral and YASA
features computed once on arrival, only the recording-relative scaling, the context means and the head
redone per epoch, so these numbers are an upper bound on its per-epoch cost.

    .venv/bin/python benchmarks/live_window_stage.py --history growing --json benchmarks/results/live_history_stage.json

The stored results were run with ``--every 16`` (on a shared 2-core machine ``--every 8`` would have taken
~45 min): 135 scored simulated epochs per variant, lag and gate mode.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
from live_window_stage import SIM_VARIANTS, Scores, finish, merge, stage, summarise
from real_signals import snippet_nights
from stage_head_eval import held_out_sources, variants
from tqdm import tqdm

from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.model.stage_head import FULL_HEAD, StagedEpochs, StageHead
from model_runtime.serving.model_api import SleepLM
from model_runtime.training.corpus import NightSpec, render
from model_runtime.training.stage_head_training import crop
from psg.features.stage_spectra import stage_feature_matrix
from psg.paths import shared_data_dir
from psg.recording import RECORDED, Recording

GATES = ("own", "fixed")


def forced(head: StageHead, offline_head: str) -> tuple[StageHead, str | None]:
    """The head and origin that force ``offline_head`` (the whole-recording run's gate) on any window."""
    if offline_head == FULL_HEAD:
        return dataclasses.replace(head, gate_threshold=np.inf), None
    return head, RECORDED


def growing_scores(
    head: StageHead,
    recording: Recording,
    truth: list[str],
    epochs: list[int],
    lags: list[int],
    timings: list[tuple[int, float]],
    desc: str,
) -> dict[tuple[int, str], Scores]:
    """Per (lag, gate mode): each of ``epochs`` (with a label in ``truth``) staged from epochs 0 .. e + L."""
    offline = stage(head, recording)
    fixed_head, fixed_origin = forced(head, offline.head)
    last = recording.n_epochs - 1
    scored = [e for e in epochs if truth[e]]
    wanted: dict[int, list[tuple[int, int]]] = {}  # window end -> (epoch, lag) read from it
    for e in scored:
        for lag in lags:
            wanted.setdefault(min(e + lag, last), []).append((e, lag))
    out = {(lag, gate): Scores() for lag in lags for gate in GATES}
    for end in tqdm(sorted(wanted), desc=desc, unit="window", leave=False, mininterval=10.0):
        window = crop(recording, 0, end + 1)
        t0 = time.perf_counter()
        features = stage_feature_matrix(window)
        staged: dict[str, StagedEpochs] = {"own": head.stage_features(features)}
        timings.append((end + 1, (time.perf_counter() - t0) * 1e3))
        staged["fixed"] = fixed_head.stage_features(dataclasses.replace(features, origin=fixed_origin))
        for e, lag in wanted[end]:
            for gate, s in staged.items():
                out[(lag, gate)].add(truth[e], s, e, offline, e)
    return out


def agreement(scores: Scores) -> float:
    """Share of scored epochs whose live verdict equals the offline verdict."""
    return float(np.mean(np.array(scores.verdict) == np.array(scores.off_verdict))) if scores.truth else 0.0


def summary(parts: list[Scores]) -> dict:
    scores = merge(parts)
    out = summarise(scores)
    if scores.truth:
        out["live"]["agrees_with_offline"] = agreement(scores)
    return out


def key(name: str, lag: int, gate: str) -> str:
    return f"{name} L={lag} gate={gate}"


def history_cost(timings: list[tuple[int, float]], at: list[int], half: int = 50) -> dict:
    """Median and p95 wall ms per call in bins of history length (``at`` +- ``half`` epochs), the first
    (cold) call dropped."""
    warm = timings[1:]
    out = {}
    for centre in at:
        ms = np.array([t for n, t in warm if abs(n - centre) <= half])
        if ms.size:
            out[f"~{centre}"] = {
                "calls": int(ms.size),
                "median_ms": float(np.median(ms)),
                "p95_ms": float(np.percentile(ms, 95)),
                "median_history_epochs": float(np.median([n for n, _ in warm if abs(n - centre) <= half])),
            }
    return out


def simulated(head: StageHead, args: argparse.Namespace) -> tuple[dict, dict]:
    sources = held_out_sources(args.nights)
    rng = np.random.default_rng(args.seed)  # drawn as stage_head_eval draws it, so the nights are its nights
    parts: dict[tuple[str, int, str], list[Scores]] = {}
    timings: dict[str, list[tuple[int, float]]] = {}
    for source in sources:
        recording = render(NightSpec(source, seed=args.seed, artifacts=True))
        assert recording.timeline is not None, "a rendered night carries its timeline"
        truth_idx = np.array(recording.timeline.stages)
        named = variants(recording, rng)
        for name in SIM_VARIANTS:
            rec, window = named[name]
            n = window.stop - window.start
            truth = [STAGE_LABELS[k] if k >= 0 else "" for k in truth_idx[window]]
            desc = f"{Path(source).name} {name}"
            spent = timings.setdefault(name, [])
            scores = growing_scores(head, rec, truth, list(range(0, n, args.every)), args.lags, spent, desc)
            for (lag, gate), sc in scores.items():
                parts.setdefault((name, lag, gate), []).append(sc)
            accs = " ".join(f"L={lag}: {summarise(scores[(lag, 'own')])['live']['accuracy']:.3f}" for lag in args.lags)
            print(f"{desc} ({n} epochs): own gate {accs}", flush=True)
    sim = {key(name, lag, gate): summary(p) for (name, lag, gate), p in parts.items()}
    return sim, {name: history_cost(t, args.cost_at) for name, t in timings.items()}


def real(head: StageHead, args: argparse.Namespace) -> dict:
    out: dict = {"pooled": {}, "recordings": {}}
    pooled: dict[tuple[int, str], list[Scores]] = {}
    for name, _night, recording, expert in snippet_nights(shared_data_dir() / "real-signals"):
        n = recording.n_epochs
        scores = growing_scores(head, recording, [expert] * n, list(range(n)), args.lags, [], name)
        for (lag, gate), sc in scores.items():
            pooled.setdefault((lag, gate), []).append(sc)
            out["recordings"].setdefault(name, {})[f"L={lag} gate={gate}"] = summary([sc])
    out["pooled"] = {f"L={lag} gate={gate}": summary(p) for (lag, gate), p in pooled.items()}
    return out


def table(report: dict) -> str:
    rows = [
        "| set | lag | gate | epochs | live acc | live best acc | live mean p | live ECE | uncertain "
        "| real-prior share | = offline verdict | offline acc | offline best acc | offline mean p | offline ECE "
        "| offline real-prior share | acc - offline |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    sets = list(report["simulated"].items())
    sets += [(f"real pooled {k}", v) for k, v in report["real"]["pooled"].items()]
    sets += [(f"{r} {k}", v) for r, per in report["real"]["recordings"].items() for k, v in per.items()]
    for name, s in sets:
        rest, _, gate = name.rpartition(" gate=")
        rest, _, lag = rest.rpartition(" L=")
        if not s["epochs"]:
            continue
        live, off = s["live"], s["offline"]
        rows.append(
            f"| {rest} | {lag} | {gate} | {s['epochs']} | {live['accuracy']:.3f} | {live['best_accuracy']:.3f} "
            f"| {live['mean_p']:.3f} | {live['ece']:.3f} | {live['uncertain_share']:.3f} "
            f"| {live['prior_head_share']:.3f} | {live['agrees_with_offline']:.3f} | {off['accuracy']:.3f} "
            f"| {off['best_accuracy']:.3f} | {off['mean_p']:.3f} | {off['ece']:.3f} | {off['prior_head_share']:.3f} "
            f"| {live['accuracy'] - off['accuracy']:+.3f} |"
        )
    rows += ["", "| variant | history (epochs) | calls | median ms | p95 ms |", "|---|---|---|---|---|"]
    for name, bins in report["cost"].items():
        for c in bins.values():
            rows.append(
                f"| {name} | {c['median_history_epochs']:.0f} | {c['calls']} | {c['median_ms']:.0f} "
                f"| {c['p95_ms']:.0f} |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--history", choices=("growing",), default="growing", help="this module: growing only")
    parser.add_argument("--lags", type=int, nargs="+", default=[0, 3, 7], help="lags L (epochs)")
    parser.add_argument("--nights", type=int, default=3, help="held-out simulated nights")
    parser.add_argument("--every", type=int, default=8, help="score every K-th epoch of the simulated nights")
    parser.add_argument("--cost-at", type=int, nargs="+", default=[100, 400, 900], help="history lengths for cost")
    parser.add_argument("--seed", type=int, default=7, help="as stage_head_eval's, so the nights are the same")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/live_history_stage.json"))
    args = parser.parse_args(argv)
    lm = SleepLM.load()
    assert lm.stage_head is not None, "no stage head beside the checkpoint"
    started = time.perf_counter()
    sim, sim_cost = simulated(lm.stage_head, args)
    report = {
        "config": {
            "history": "growing: epochs 0 .. e + L, the verdict for epoch e read when epoch e + L arrives",
            "lags": args.lags,
            "gates": {
                "own": "stage_features(features) as is (crop leaves no origin: the gate reads its statistic)",
                "fixed": "the head the offline whole-recording run chose, forced on every window",
            },
            "past_recording_end": "the verdict is read from the last window (the whole recording)",
            "nights": args.nights,
            "seed": args.seed,
            "simulated_scored_every_k_epochs": args.every,
            "real_scored_every_k_epochs": 1,
            "uncertain_counts_as_wrong": True,
            "cost": "wall ms of stage_feature_matrix + stage_features (own gate) per scoring call, first call "
            "dropped, by history length (+-50 epochs); recomputes the whole history (O(e)): an incremental "
            "runtime would compute each epoch's features once, so this is an upper bound",
        },
        "simulated": sim,
        "cost": sim_cost,
        "real": real(lm.stage_head, args),
    }
    finish(report, args, started, table)


if __name__ == "__main__":
    main()
