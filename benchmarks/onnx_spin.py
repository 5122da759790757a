"""CPU that onnxruntime's idle worker threads burn between the inference agent's batches, and what
``session.intra_op.allow_spinning = 0`` saves, with the same outputs.

onnxruntime's intra-op thread pool spins on the CPU after each ``run`` waiting for the next one (its
default). The live worker runs the SleepLM encoder once per inference batch (every ``batch_within_s``,
0.2 s), so the spinning fills much of the gap between batches on a box whose two cores are already
shared by two workers, the broker and the generator. This script loads the shipped export's
``encoder.onnx`` twice with the options ``model_runtime.model.onnx_backend.OnnxBackend`` uses (intra-op
threads = the usable CPUs, sequential, all graph optimisations), once as is and once with spinning off,
runs the same batches with ``--gap-ms`` of idle between them, and reports the process CPU time
(``time.process_time``: all threads) per batch, inside the calls and in all; it fails if the two give
different embeddings or memories.

    .venv/bin/python benchmarks/onnx_spin.py --batches 20 --batch 8 --gap-ms 200
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ENCODER = Path(__file__).resolve().parents[1] / "model_runtime" / "checkpoints" / "sleeplm-small.onnx" / "encoder.onnx"


def session(spinning: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(ENCODER), options, providers=["CPUExecutionProvider"])


def measure(sess: ort.InferenceSession, inputs: list[dict[str, np.ndarray]], gap_s: float) -> tuple[float, float, list]:
    """(CPU ms per batch in all, CPU ms per batch inside ``run``, the outputs)."""
    sess.run(None, inputs[0])  # warm-up
    time.sleep(1.0)  # let the warm-up's spinning end
    outputs, inside = [], 0.0
    start = time.process_time()
    for feed in inputs:
        t0 = time.process_time()
        outputs.append(sess.run(None, feed))
        inside += time.process_time() - t0
        time.sleep(gap_s)
    total = time.process_time() - start
    return 1000 * total / len(inputs), 1000 * inside / len(inputs), outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8, help="epochs per batch")
    parser.add_argument("--gap-ms", type=float, default=200.0, help="idle between batches (the agent's take window)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    probe = session(True)
    patches = probe.get_inputs()[1].shape[1]
    inputs = [
        {
            "x": rng.standard_normal((args.batch, 10, 1920)).astype(np.float32),
            "keep": np.ones((args.batch, patches), dtype=bool),
        }
        for _ in range(args.batches)
    ]
    print(f"{ENCODER.name}: {args.batches} batches of {args.batch} epochs, {args.gap_ms:g} ms idle between batches")
    results = {}
    for spinning in (True, False):
        total, inside, outputs = measure(session(spinning), inputs, args.gap_ms / 1000)
        results[spinning] = outputs
        label = "spinning (default)" if spinning else "allow_spinning=0 "
        print(f"  {label}  CPU per batch {total:7.1f} ms  (inside run {inside:6.1f} ms)")
    same = all(
        all(np.array_equal(a, b) for a, b in zip(x, y, strict=True))
        for x, y in zip(results[True], results[False], strict=True)
    )
    print(f"  outputs identical: {same}")
    if not same:
        raise SystemExit("the two sessions gave different outputs")


if __name__ == "__main__":
    main()
