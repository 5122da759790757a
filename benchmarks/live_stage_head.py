"""The live stage head on real beds: accuracy on the real recordings, and what it costs per epoch.

Accuracy: every real recording of ``real_signals.snippet_nights`` goes through the live path without the
streaming (``psg.epoching.analysis.recording_windows`` -> ``analyse`` -> the epoch message encoded and
decoded -> ``SleepLMRuntime.infer``, one epoch at a time), once as a recorded bed (the epocher measures the
stage head's inputs, the runtime stages with the stage head on the history so far) and once with no origin
(what every bed got before: the signal encoder), beside the offline ``stage_night`` of the same recording.

Cost, on a simulated full-montage bed (``--hours``): the epocher's analysis per epoch with and without the
measurements (median ms), and the runtime's stage head per epoch by history length (``--history``: the
bed's measurements repeated to that many epochs; median of ``--repeats`` calls); the cost the runtime adds
is the stage head alone (the encoder runs for every bed anyway).

    .venv/bin/python benchmarks/live_stage_head.py --json benchmarks/results/live_stage_head.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
from real_signals import snippet_nights

from model_runtime.serving.model_api import SleepLM
from model_runtime.serving.night import stage_night
from model_runtime.serving.sleeplm_runtime import SleepLMRuntime
from psg.codecs import decode_epoch, encode_epoch
from psg.epoching.analysis import analyse, recording_windows
from psg.features.live_stage import MeasurementHistory
from psg.paths import shared_data_dir
from psg.recording import RECORDED, Recording
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline


def live_stages(lm: SleepLM, recording: Recording, origin: str | None) -> list[str]:
    runtime = SleepLMRuntime.from_model(lm)
    return [
        runtime.infer([decode_epoch(encode_epoch(analyse(w)))])[0].stage
        for w in recording_windows(recording, origin=origin)
    ]


def accuracy(lm: SleepLM, root: Path) -> list[dict]:
    rows = []
    for name, night, recording, truth in snippet_nights(root):
        assert night is not None
        ways = {
            "offline": stage_night(lm, night)["stages"],
            "live_stage_head": live_stages(lm, recording, RECORDED),
            "live_encoder": live_stages(lm, recording, None),
        }
        row = {"recording": name, "truth": truth, "epochs": recording.n_epochs}
        for way, stages in ways.items():
            row[way] = dict(Counter(stages))
            row[f"{way}_right"] = sum(s == truth for s in stages)
        rows.append(row)
        print(json.dumps(row))
    return rows


def cost(lm: SleepLM, hours: float, history: list[int], repeats: int) -> dict:
    night = simulate(synthetic_timeline(hours=hours, seed=11), seed=11)
    timings: dict[str, list[float]] = {"analyse_ms": [], "analyse_with_measurements_ms": []}
    measured = []
    for window in recording_windows(night):
        t0 = time.perf_counter()
        analyse(window)
        t1 = time.perf_counter()
        message = analyse(window.__class__(**{**window.__dict__, "origin": RECORDED}))
        t2 = time.perf_counter()
        timings["analyse_ms"].append((t1 - t0) * 1e3)
        timings["analyse_with_measurements_ms"].append((t2 - t1) * 1e3)
        measured.append(message.stage_measurements)
    head = SleepLMRuntime.from_model(lm).live_head
    assert head is not None
    by_history = {}
    for n in history:
        kept = MeasurementHistory("rec")
        for e in range(n):
            kept.row(e, measured[e % len(measured)])
        calls = []
        for r in range(repeats):
            t0 = time.perf_counter()
            x, ok, _ = kept.row(n + r, measured[(n + r) % len(measured)])  # a new epoch: kept, the history grows
            head.head.judge(x[None], np.array([ok]), head.head.gate(x[None], np.array([ok]), RECORDED))
            calls.append((time.perf_counter() - t0) * 1e3)
        by_history[n] = round(float(np.median(calls)), 2)
        print(f"history {n}: stage head {by_history[n]} ms per epoch")
    return {
        "epochs": night.n_epochs,
        **{k: round(float(np.median(v)), 2) for k, v in timings.items()},
        "runtime_stage_head_ms_by_history": by_history,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="shared data dir (default $SLEEPLM_DATA)")
    parser.add_argument("--hours", type=float, default=0.5, help="simulated bed for the cost (default 0.5)")
    parser.add_argument("--history", type=int, nargs="+", default=[1, 100, 450, 900])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    lm = SleepLM.load()
    result = {
        "real": accuracy(lm, (args.data or shared_data_dir()) / "real-signals"),
        "cost": cost(lm, args.hours, args.history, args.repeats),
    }
    print(json.dumps(result["cost"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
