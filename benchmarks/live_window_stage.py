"""The offline stage head run live: each bed's trailing window of the last W epochs, the last epoch's verdict.

Why: ``sleeplm stage`` stages a whole recording with the stage head, whose inputs
(``psg.features.stage_spectra.stage_feature_matrix``: our spectral features with 5- and 15-epoch centred
context and a whole-recording robust z-score, plus YASA's probabilities, themselves recording-relative)
see minutes of context on both sides and the whole night's statistics. A live bed sees neither. This
measures what the same offline pipeline gives when it is run, at every epoch (stride 1), on only the
causal window of the last W epochs (ending at the current epoch; native-rate microvolt signals) and
its verdict for that window's last epoch is kept.

* Held-out simulated nights, rendered exactly as ``benchmarks/stage_head_eval.py`` renders them, in its
  ``full`` (every channel) and ``eeg_only`` (one central EEG) variants.
* The real recordings of ``benchmarks/real_signals.py`` (its loader); recordings shorter than W are one
  window per epoch, growing from the start.

At a recording's start a window holds what exists so far (fewer than W epochs). ``--every K`` scores
every K-th epoch only (each scored epoch still gets its own full W-epoch window). Per variant and W:
accuracy of the verdict (``uncertain`` counts as wrong), accuracy of the most likely stage, mean stated
probability, ECE (``stage_head_training.expected_calibration_error``), share of windows the domain gate
sent to the real-prior head, and the whole-recording offline numbers on the same epochs. Cost: median and
p95 wall ms of one ``stage_feature_matrix`` + ``stage_features`` call (the first call of each is dropped),
in a pass over the first night that calls the widths in turn at each epoch (``cost``: on a shared machine
a neighbour's load then falls on every W alike), and over the scoring calls (``cost_during_scoring``).

    .venv/bin/python benchmarks/live_window_stage.py --json benchmarks/results/live_window_stage.json

``--history growing`` runs ``benchmarks/live_history_stage.py`` instead: the window is the whole recording
so far and the verdict for an epoch is read L epochs late (``--lags``), results in
``benchmarks/results/live_history_stage.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from real_signals import snippet_nights
from stage_head_eval import held_out_sources, variants
from tqdm import tqdm

from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.model.stage_head import PRIOR_HEAD, UNCERTAIN, StagedEpochs, StageHead
from model_runtime.serving.model_api import SleepLM
from model_runtime.training.corpus import NightSpec, render
from model_runtime.training.stage_head_training import crop, expected_calibration_error
from psg.features.stage_spectra import stage_feature_matrix
from psg.paths import shared_data_dir
from psg.recording import Recording

SIM_VARIANTS = ("full", "eeg_only")


@dataclass
class Scores:
    """Per scored epoch: truth, the live window's verdict, best stage, probabilities and head, and the
    whole-recording offline verdict, best stage and probabilities of the same epoch."""

    truth: list[str] = field(default_factory=list)
    verdict: list[str] = field(default_factory=list)
    best: list[str] = field(default_factory=list)
    probs: list[np.ndarray] = field(default_factory=list)
    head: list[str] = field(default_factory=list)
    off_verdict: list[str] = field(default_factory=list)
    off_best: list[str] = field(default_factory=list)
    off_probs: list[np.ndarray] = field(default_factory=list)
    off_head: list[str] = field(default_factory=list)

    def add(self, truth: str, live: StagedEpochs, i: int, offline: StagedEpochs, j: int) -> None:
        """Score one epoch: epoch ``i`` of the live run beside epoch ``j`` of the offline run."""
        self.truth.append(truth)
        self.verdict.append(live.verdicts[i])
        self.best.append(live.best[i])
        self.probs.append(live.probabilities[i])
        self.head.append(live.head)
        self.off_verdict.append(offline.verdicts[j])
        self.off_best.append(offline.best[j])
        self.off_probs.append(offline.probabilities[j])
        self.off_head.append(offline.head)


def stage(head: StageHead, recording: Recording) -> StagedEpochs:
    """The offline pipeline of ``sleeplm stage``: staging features of the recording, then the stage head."""
    return head.stage_features(stage_feature_matrix(recording))


def trailing(recording: Recording, end: int, width: int) -> Recording:
    """Epochs (end - width, end] of ``recording``: the causal window a live bed holds at epoch ``end``."""
    start = max(0, end - width + 1)
    return crop(recording, start, end + 1 - start)


def live_scores(
    head: StageHead,
    recording: Recording,
    truth: list[str],
    epochs: list[int],
    width: int,
    timings: list[float],
    desc: str,
) -> Scores:
    """Stage each of ``epochs`` from its trailing window; ``truth`` holds each epoch's label ('' unscored)."""
    offline = stage(head, recording)
    scores = Scores()
    for end in tqdm(epochs, desc=desc, unit="window", leave=False, mininterval=5.0):
        window = trailing(recording, end, width)
        t0 = time.perf_counter()
        staged = stage(head, window)
        timings.append((time.perf_counter() - t0) * 1e3)
        if not truth[end]:
            continue
        scores.add(truth[end], staged, -1, offline, end)
    return scores


def merge(parts: list[Scores]) -> Scores:
    out = Scores()
    for part in parts:
        for name in out.__dataclass_fields__:
            getattr(out, name).extend(getattr(part, name))
    return out


def metrics(truth: np.ndarray, verdict: list[str], best: list[str], probs: list[np.ndarray]) -> dict:
    p = np.array(probs).reshape(len(probs), len(STAGE_LABELS))
    correct_best = np.array(best) == truth
    return {
        "accuracy": float((np.array(verdict) == truth).mean()),
        "best_accuracy": float(correct_best.mean()),
        "uncertain_share": float((np.array(verdict) == UNCERTAIN).mean()),
        "mean_p": float(p.max(axis=1).mean()),
        "mean_p_truth": float(p[np.arange(len(truth)), [STAGE_LABELS.index(t) for t in truth]].mean()),
        "ece": expected_calibration_error(p.max(axis=1), correct_best),
    }


def summarise(scores: Scores) -> dict:
    """Live and offline numbers over the scored epochs of ``scores``."""
    if not scores.truth:
        return {"epochs": 0}
    truth = np.array(scores.truth)
    return {
        "epochs": len(truth),
        "live": metrics(truth, scores.verdict, scores.best, scores.probs)
        | {"prior_head_share": float(np.mean([h == PRIOR_HEAD for h in scores.head]))},
        "offline": metrics(truth, scores.off_verdict, scores.off_best, scores.off_probs)
        | {"prior_head_share": float(np.mean([h == PRIOR_HEAD for h in scores.off_head]))},
        "truth_counts": dict(Counter(scores.truth)),
        "live_verdicts": dict(Counter(scores.verdict)),
        "offline_verdicts": dict(Counter(scores.off_verdict)),
    }


def cost(timings: list[float]) -> dict:
    """Median and p95 wall ms, the first (cold) call dropped."""
    warm = np.array(timings[1:])
    if not warm.size:
        return {"calls": 0}
    return {"calls": int(warm.size), "median_ms": float(np.median(warm)), "p95_ms": float(np.percentile(warm, 95))}


def interleaved_cost(head: StageHead, named: dict[str, Recording], widths: list[int], calls: int) -> dict:
    """Per variant and W: the cost of ``calls`` windows ending at epochs spread over the night, the widths
    called in turn at each epoch (so a neighbour's load on the shared machine falls on every W alike)."""
    spent: dict[str, list[float]] = {}
    for name, rec in named.items():
        ends = np.linspace(max(widths), rec.n_epochs - 1, calls + 1).astype(int)
        for i, end in enumerate(tqdm(ends, desc=f"cost {name}", unit="epoch", leave=False)):
            for width in widths[i % len(widths) :] + widths[: i % len(widths)]:
                t0 = time.perf_counter()
                stage(head, trailing(rec, int(end), width))
                spent.setdefault(f"{name} W={width}", []).append((time.perf_counter() - t0) * 1e3)
    return {key: cost(t) for key, t in spent.items()}


def simulated(lm_head: StageHead, args: argparse.Namespace) -> tuple[dict, dict, dict]:
    """Per variant and W: the summary of the held-out nights, the per-call cost during the scoring, and the
    interleaved per-call cost on the first night."""
    sources = held_out_sources(args.nights)
    rng = np.random.default_rng(args.seed)  # drawn as stage_head_eval draws it, so the nights are its nights
    parts: dict[tuple[str, int], list[Scores]] = {}
    interleaved: dict = {}
    timings: dict[tuple[str, int], list[float]] = {}
    for source in sources:
        recording = render(NightSpec(source, seed=args.seed, artifacts=True))
        assert recording.timeline is not None, "a rendered night carries its timeline"
        truth_idx = np.array(recording.timeline.stages)
        named = variants(recording, rng)
        if not interleaved:
            chosen = {name: named[name][0] for name in SIM_VARIANTS}
            interleaved = interleaved_cost(lm_head, chosen, args.windows, args.cost_calls)
        for name in SIM_VARIANTS:
            rec, window = named[name]
            n = window.stop - window.start
            truth = [STAGE_LABELS[k] if k >= 0 else "" for k in truth_idx[window]]
            for width in args.windows:
                desc = f"{Path(source).name} {name} W={width}"
                spent = timings.setdefault((name, width), [])
                scores = live_scores(lm_head, rec, truth, list(range(0, n, args.every)), width, spent, desc)
                parts.setdefault((name, width), []).append(scores)
                print(f"{desc}: live {summarise(scores)['live']['accuracy']:.3f}", flush=True)
    summary = {f"{name} W={w}": summarise(merge(p)) for (name, w), p in parts.items()}
    return summary, {f"{name} W={w}": cost(t) for (name, w), t in timings.items()}, interleaved


def real(lm_head: StageHead, args: argparse.Namespace) -> dict:
    """Per real recording and W (every epoch scored), and pooled over the recordings per W."""
    out: dict = {"pooled": {}, "recordings": {}}
    nights = snippet_nights(shared_data_dir() / "real-signals")
    for width in args.windows:
        pooled = []
        for name, _night, recording, expert in nights:
            n = recording.n_epochs
            scores = live_scores(lm_head, recording, [expert] * n, list(range(n)), width, [], f"{name} W={width}")
            pooled.append(scores)
            out["recordings"].setdefault(name, {})[f"W={width}"] = summarise(scores)
        out["pooled"][f"W={width}"] = summarise(merge(pooled))
    return out


def table(report: dict) -> str:
    head = (
        "| set | W | epochs | live acc | live best acc | live mean p | live ECE | uncertain | real-prior share "
        "| offline acc | offline best acc | offline mean p | offline ECE | offline real-prior share "
        "| median ms | p95 ms | in-run median ms | in-run p95 ms |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    costs = (report["cost"], report["cost_during_scoring"])
    sets = [(k, v, [c.get(k, {}) for c in costs]) for k, v in report["simulated"].items()]
    sets += [(f"real pooled {k}", v, [{}, {}]) for k, v in report["real"]["pooled"].items()]
    sets += [(f"{r} {k}", v, [{}, {}]) for r, per in report["real"]["recordings"].items() for k, v in per.items()]
    for key, s, (c, in_run) in sets:
        name, _, w = key.rpartition(" W=")
        live, off = s["live"], s["offline"]
        rows.append(
            f"| {name} | {w} | {s['epochs']} | {live['accuracy']:.3f} | {live['best_accuracy']:.3f} "
            f"| {live['mean_p']:.3f} | {live['ece']:.3f} | {live['uncertain_share']:.3f} "
            f"| {live['prior_head_share']:.3f} | {off['accuracy']:.3f} | {off['best_accuracy']:.3f} "
            f"| {off['mean_p']:.3f} | {off['ece']:.3f} | {off['prior_head_share']:.3f} "
            f"| {_ms(c, 'median_ms')} | {_ms(c, 'p95_ms')} | {_ms(in_run, 'median_ms')} | {_ms(in_run, 'p95_ms')} |"
        )
    return "\n".join(rows)


def _ms(c: dict, key: str) -> str:
    return f"{c[key]:.0f}" if key in c else "-"


def main() -> None:
    mode = argparse.ArgumentParser(add_help=False)
    mode.add_argument(
        "--history",
        choices=("trailing", "growing"),
        default="trailing",
        help="trailing: the last W epochs; growing: the whole recording so far (live_history_stage.py)",
    )
    known, rest = mode.parse_known_args()
    if known.history == "growing":  # the whole recording so far, a verdict L epochs late: live_history_stage
        from live_history_stage import main as growing

        growing(rest)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], parents=[mode])
    parser.add_argument("--windows", type=int, nargs="+", default=[10, 20, 40], help="window widths W (epochs)")
    parser.add_argument("--nights", type=int, default=3, help="held-out simulated nights")
    parser.add_argument("--every", type=int, default=4, help="score every K-th epoch of the simulated nights")
    parser.add_argument("--cost-calls", type=int, default=40, help="interleaved cost calls per variant and W")
    parser.add_argument("--seed", type=int, default=7, help="as stage_head_eval's, so the nights are the same")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/live_window_stage.json"))
    args = parser.parse_args()
    lm = SleepLM.load()
    assert lm.stage_head is not None, "no stage head beside the checkpoint"
    started = time.perf_counter()
    sim, sim_cost, interleaved = simulated(lm.stage_head, args)
    report = {
        "config": {
            "windows": args.windows,
            "stride_epochs": 1,
            "nights": args.nights,
            "seed": args.seed,
            "simulated_scored_every_k_epochs": args.every,
            "real_scored_every_k_epochs": 1,
            "window_at_start": "epochs so far (shorter than W)",
            "uncertain_counts_as_wrong": True,
            "cost": "interleaved pass on the first night, --cost-calls windows per variant and W, widths in turn",
            "cost_during_scoring": "every scoring call, windows of one W in a row (a neighbour's load falls unevenly)",
        },
        "simulated": sim,
        "cost": interleaved,
        "cost_during_scoring": sim_cost,
        "real": real(lm.stage_head, args),
    }
    finish(report, args, started, table)


def finish(report: dict, args: argparse.Namespace, started: float, render_table: Callable[[dict], str]) -> None:
    """Stamp the run time, write ``report`` to ``--json`` and print its table (both modes end so)."""
    report["config"]["run_s"] = round(time.perf_counter() - started, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(render_table(report))
    print(f"every {args.every}-th epoch of {args.nights} simulated nights scored; run {report['config']['run_s']} s")


if __name__ == "__main__":
    main()
