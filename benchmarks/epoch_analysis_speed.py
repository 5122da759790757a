"""CPU and wall time per epoch of the live epoch analysis (``Epocher.add`` -> ``epoch_analysis.analyse``).

A simulated night (default: the stream-agent tests' 0.5-h night, timeline seed 3, AHI 20, simulator
seed 1) is cut into bridge-sized chunks up front (not timed) and fed in order through a fresh
``Epocher`` ``--runs`` times. Reported, as the median over runs: process CPU time
(``time.process_time``: all threads of this process, so BLAS/FFT threads cannot hide work) and wall
time per emitted epoch for the whole ``Epocher.add`` path, the median over epochs of the per-epoch CPU
time of ``analyse``, and the CPU time per epoch of each stage. Stages are timed by wrapping the
functions ``analyse`` calls, looked up by name, so the same script measures the code before and after
a change: quality flags, feature-window fill, ECG R peaks (inside features and detectors before they
were shared), features, detectors, aux (SpO2/HR per second, ECG HR),
model signals (resampling + running normaliser). "other" is everything else in ``Epocher.add``
(chunk placement, window assembly, the message).

    .venv/bin/python benchmarks/epoch_analysis_speed.py --runs 3
    .venv/bin/python benchmarks/epoch_analysis_speed.py --artifacts --sim-seed 28 --json /tmp/speed.json

The live path's budget: 500 beds, one epoch per bed every 30 s, is ~17 epochs/s, i.e. <= ~60 ms of
CPU per epoch on 2 cores with nothing else running; the target is 15 ms (stretch 8 ms).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psg.epoching.analysis as ea
from psg.codecs import SampleChunk
from psg.epoching.epocher import Epocher
from psg.model_input import RunningNormaliser
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.stream_agents.chunking
from tests.stream_agents.chunking import chunk_recording  # noqa: E402  (the bridge's chunking, as the tests use it)

#: (stage, owner, attribute): what ``analyse`` calls, timed where it exists in this version of the code.
STAGES: tuple[tuple[str, Any, str], ...] = (
    ("quality", ea, "epoch_quality"),
    ("fill", ea, "feature_recording"),
    ("r_peaks", ea, "window_r_peaks"),
    ("features", ea, "epoch_features"),
    ("features", ea, "window_features"),
    ("detectors", ea, "detect_events"),
    ("detectors", ea, "window_events"),
    ("aux", ea, "aux_channels"),
    ("model_signals", RunningNormaliser, "model_signals"),
)
STAGE_NAMES = ("quality", "fill", "r_peaks", "features", "detectors", "aux", "model_signals")


@contextmanager
def timed_stages(totals: dict[str, float]) -> Iterator[None]:
    """Wrap every existing ``STAGES`` function to add its CPU time to ``totals[stage]`` (outermost call only)."""
    saved: list[tuple[Any, str, Callable[..., Any]]] = []
    depth = defaultdict(int)

    def wrap(stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            depth[stage] += 1
            t0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                depth[stage] -= 1
                if depth[stage] == 0:
                    totals[stage] += time.process_time() - t0

        return timed

    for stage, owner, name in STAGES:
        fn = owner.__dict__.get(name)
        if fn is None:
            continue
        saved.append((owner, name, fn))
        setattr(owner, name, wrap(stage, fn))
    try:
        yield
    finally:
        for owner, name, fn in reversed(saved):
            setattr(owner, name, fn)


def run_once(chunks: list[SampleChunk]) -> dict[str, Any]:
    """One in-order pass of ``chunks`` through a fresh ``Epocher``: totals and per-epoch analyse times."""
    per_epoch: list[float] = []
    inner = ea.analyse

    def analyse(window: ea.EpochWindow) -> Any:
        t0 = time.process_time()
        try:
            return inner(window)
        finally:
            per_epoch.append(time.process_time() - t0)

    epocher = Epocher(analyse=analyse)
    stages: dict[str, float] = defaultdict(float)
    n = 0
    with timed_stages(stages):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i, chunk in enumerate(chunks):
            n += len(epocher.add(chunk, i).epochs)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    stages["other"] = cpu - sum(stages.values())
    return {
        "epochs": n,
        "cpu_ms": 1000 * cpu / n,
        "wall_ms": 1000 * wall / n,
        "analyse_median_ms": 1000 * statistics.median(per_epoch),
        "stages_ms": {k: 1000 * v / n for k, v in stages.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=3, help="timeline seed")
    parser.add_argument("--sim-seed", type=int, default=1, help="simulator seed")
    parser.add_argument("--ahi", type=float, default=20.0)
    parser.add_argument("--artifacts", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the runs and medians here")
    args = parser.parse_args()
    night = simulate(
        synthetic_timeline(hours=args.hours, seed=args.seed, ahi=args.ahi), seed=args.sim_seed, artifacts=args.artifacts
    )
    chunks = chunk_recording(night)
    run_once(chunks[: len(chunks) // 10])  # warm-up: imports, caches
    runs = [run_once(chunks) for _ in range(args.runs)]
    med = {key: statistics.median(r[key] for r in runs) for key in ("cpu_ms", "wall_ms", "analyse_median_ms")}
    stages = {s: statistics.median(r["stages_ms"].get(s, 0.0) for r in runs) for s in (*STAGE_NAMES, "other")}
    print(f"{runs[0]['epochs']} epochs, {len(chunks)} chunks, median of {args.runs} runs (ms per epoch)")
    print(f"  Epocher.add total     CPU {med['cpu_ms']:8.2f}   wall {med['wall_ms']:8.2f}")
    print(f"  analyse, median epoch CPU {med['analyse_median_ms']:8.2f}")
    for stage, ms in stages.items():
        print(f"    {stage:<14} CPU {ms:8.2f}")
    print("  runs (CPU ms/epoch): " + ", ".join(f"{r['cpu_ms']:.2f}" for r in runs))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"args": vars(args) | {"json": str(args.json)}, "runs": runs, "median": med, "stages_median": stages},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
