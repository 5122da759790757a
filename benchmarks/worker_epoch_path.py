"""CPU time per epoch of the epocher agent's work for many beds, minus the broker: decode, place, analyse, encode.

What the live epocher agent does with each ``psg.samples`` record (``stream_agents.app``), measured without
Faust and the broker: ``decode_samples_message`` of a ``ChunkBundle`` (one per bed and second, what the load
generator and the bridge send), ``Epocher.add_bundle`` (``analyse=None``: place samples, hand out completed
windows), the analysis of the completed windows (``stream_agents.app._analyse_windows``) and
``encode_epoch`` of the results; with ``--runtime``, also the inference agent's per-epoch work:
``decode_epoch`` and ``inference_records`` in batches of ``--batch`` (the runtime call and the caption
records), and ``encode_json`` of the records. The records are made up front exactly as ``operations.loadgen`` makes them
(``--beds`` beds on ``--nights`` simulated nights, staggered starts), for ``--seconds`` of device time, and
fed in send order; nothing of that is timed.

CPU time is ``time.process_time`` (every thread of this process), so the numbers hold on a busy machine
where wall time does not; the wall time is printed beside it for reference only. The budget: 1000 beds
complete ~33 epochs/s, so each ms of CPU per epoch is ~3 % of one core, and each us per record ~0.1 %.

    .venv/bin/python benchmarks/worker_epoch_path.py --beds 100 --seconds 240
    .venv/bin/python benchmarks/worker_epoch_path.py --beds 100 --seconds 240 --profile /tmp/worker.prof
    .venv/bin/python benchmarks/worker_epoch_path.py --beds 100 --seconds 240 --runtime sleeplm
"""

from __future__ import annotations

import argparse
import cProfile
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, when run as a script

from model_runtime.serving.caption_records import inference_records  # noqa: E402
from model_runtime.serving.runtimes import InferenceRuntime, load_runtime  # noqa: E402
from operations.loadgen import LoadGenerator, plan_beds, render_nights  # noqa: E402
from psg.codecs import ChunkBundle, decode_epoch, decode_samples_message, encode_epoch  # noqa: E402
from psg.epoching.epocher import Epocher  # noqa: E402
from psg.json_codec import encode_json  # noqa: E402
from psg.model_input import SERVING_WINDOW_EPOCHS  # noqa: E402
from stream_agents.app import _analyse_windows  # noqa: E402

START = 1_700_000_000.0


def records(beds: int, seconds: int, nights: int) -> list[bytes]:
    """The load generator's records for ``beds`` beds over ``seconds`` of device time, in send order."""
    out: list[bytes] = []
    plan = plan_beds(beds, START, nights)
    generator = LoadGenerator(plan, render_nights(nights, seconds), lambda key, value: out.append(value))
    for t in range(1, seconds + 2):
        generator.step(START + t)  # a second of device time at a time, as the live generator's ticks
    return out


def run(raw: list[bytes], runtime: InferenceRuntime | None = None, batch: int = 16) -> dict[str, Any]:
    """One pass of ``raw`` through a fresh epocher (and ``runtime``), timed by stage (CPU seconds)."""
    epocher = Epocher(norm_epochs=SERVING_WINDOW_EPOCHS, analyse=None)
    cpu = dict.fromkeys(("decode", "place", "analyse", "encode"), 0.0)
    if runtime is not None:
        cpu |= dict.fromkeys(("inference", "records"), 0.0)
    encoded: list[bytes] = []
    epochs = 0
    clock = time.process_time
    wall0 = time.perf_counter()
    for i, value in enumerate(raw):
        t0 = clock()
        message = decode_samples_message(value)
        t1 = clock()
        assert isinstance(message, ChunkBundle)
        output = epocher.add_bundle(message, i)
        t2 = clock()
        cpu["decode"] += t1 - t0
        cpu["place"] += t2 - t1
        if output.windows:
            analysed = _analyse_windows(output.windows)
            t3 = clock()
            encoded += [encode_epoch(epoch) for epoch in analysed]
            cpu["analyse"] += t3 - t2
            cpu["encode"] += clock() - t3
            epochs += len(analysed)
        if runtime is not None and (len(encoded) >= batch or (i == len(raw) - 1 and encoded)):
            t4 = clock()
            records = inference_records(runtime, [decode_epoch(value) for value in encoded])
            t5 = clock()
            for record in (*records.captions, *records.embeddings):
                encode_json(record)
            cpu["inference"] += t5 - t4
            cpu["records"] += clock() - t5
            encoded.clear()
    wall = time.perf_counter() - wall0
    total = sum(cpu.values())
    return {
        "records": len(raw),
        "epochs": epochs,
        "cpu_s": total,
        "wall_s": wall,
        "cpu_ms_per_epoch": 1000 * total / epochs,
        "stages_ms_per_epoch": {k: 1000 * v / epochs for k, v in cpu.items()},
        "us_per_record": {k: 1e6 * cpu[k] / len(raw) for k in ("decode", "place")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beds", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=240, help="device seconds per bed")
    parser.add_argument("--nights", type=int, default=4, help="distinct simulated nights the beds share")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--runtime", help="also run the inference agent's work with this runtime (sleeplm, rules)")
    parser.add_argument("--batch", type=int, default=16, help="epochs per inference batch")
    parser.add_argument("--profile", type=Path, help="write a cProfile of one more run here")
    parser.add_argument("--json", type=Path, help="write the runs here")
    args = parser.parse_args()
    raw = records(args.beds, args.seconds, args.nights)
    runtime = load_runtime(args.runtime) if args.runtime else None
    run(raw[: len(raw) // 4], runtime, args.batch)  # warm-up: imports, caches, the model session
    runs = [run(raw, runtime, args.batch) for _ in range(args.runs)]
    best = min(runs, key=lambda r: r["cpu_s"])
    print(f"{best['records']} records, {best['epochs']} epochs; best of {args.runs} runs (CPU ms per epoch)")
    print(f"  total {best['cpu_ms_per_epoch']:7.2f}   (wall {1000 * best['wall_s'] / best['epochs']:7.2f})")
    for stage, ms in best["stages_ms_per_epoch"].items():
        print(f"    {stage:<8} {ms:7.2f}")
    print("  per record (us): " + ", ".join(f"{k} {v:.0f}" for k, v in best["us_per_record"].items()))
    print("  runs (CPU ms/epoch): " + ", ".join(f"{r['cpu_ms_per_epoch']:.2f}" for r in runs))
    if args.profile:
        cProfile.runctx(
            "run(raw, runtime, batch)",
            globals(),
            {"raw": raw, "runtime": runtime, "batch": args.batch, "run": run},
            str(args.profile),
        )
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json), "profile": None}, "runs": runs}))


if __name__ == "__main__":
    main()
