"""``sleeplm bench model``: epochs per second of the full per-epoch model work, and the same against a
SleepLM-Base-sized encoder measured in the same run.

The timed work per epoch is what the live path does for every epoch: the embedding (``SleepLM.encode``),
the zero-shot stage (``stage_probabilities``) and the ``stage_event`` caption (greedy, KV-cached
``generate`` with the stage as prefix). Slot filling and the span localisation that ``describe`` runs
for captions naming an event are not included (the first is string work, the second costs extra
encoder passes only for the few epochs with events). The input is real model input: a short simulated
night through ``psg.model_input.recording_model_epochs``, tiled to the batch size.

The reference is a randomly initialised ``SignalEncoder`` at the size of SleepLM-Base's signal encoder:
1-s patches (``patch_samples=64``, 30 per channel, so 300 tokens per epoch), width 768, 8 blocks,
12 heads, MLP ratio 3.5: 54.4 M parameters. It runs in torch float32 on the same machine at batch 8,
encoder only, so ``speedup_vs_reference`` compares our whole per-epoch work with the reference's
embedding alone (conservative: the reference's caption decoding would only add to its time).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from model_runtime.model.config import ModelConfig
from model_runtime.model.prompts import STAGE_LABELS
from psg.errors import PSGError

#: SleepLM-Base-sized signal encoder (see the module docstring).
REFERENCE_CONFIG = ModelConfig(
    name="reference-base-encoder", patch_samples=64, width=768, depth=8, heads=12, mlp_ratio=3.5, decoder_tokens=8
)
REFERENCE_BATCH = 8
#: Simulated input: half an hour of a night with events, tiled to the batch.
_INPUT_HOURS = 0.5


def reference_encoder():  # noqa: ANN201 - returns a torch module; torch is imported lazily
    """The randomly initialised SleepLM-Base-sized ``SignalEncoder`` (float32, eval mode)."""
    import torch

    from model_runtime.model.signal_encoder import SignalEncoder

    torch.manual_seed(0)
    return SignalEncoder(REFERENCE_CONFIG).eval()


def reference_parameters() -> int:
    """Parameter count of the reference encoder (54.4 M)."""
    return sum(p.numel() for p in reference_encoder().parameters())


def simulated_input(batch: int, seed: int = 0) -> np.ndarray:
    """``batch`` epochs of real model input (a simulated half-hour night, tiled): (batch, 10, 1920)."""
    from psg.model_input import recording_model_epochs
    from psg.simulate import simulate
    from psg.synthetic import synthetic_timeline

    if batch < 1:
        raise PSGError(f"batch must be >= 1, got {batch}")
    epochs = recording_model_epochs(simulate(synthetic_timeline(hours=_INPUT_HOURS, seed=seed, ahi=20), seed=seed))
    reps = -(-batch // len(epochs))
    return np.ascontiguousarray(np.tile(epochs, (reps, 1, 1))[:batch])


def _timed(work: Callable[[], object], seconds: float, progress: bool, label: str) -> tuple[int, float]:
    """Run ``work`` once to warm up, then until ``seconds`` have passed (at least once): (runs, elapsed)."""
    from tqdm import tqdm

    work()
    runs, start = 0, time.perf_counter()
    with tqdm(total=round(seconds, 1), unit="s", desc=label, disable=not progress, leave=False) as bar:
        while True:
            work()
            runs += 1
            elapsed = time.perf_counter() - start
            bar.update(round(min(elapsed, seconds), 1) - bar.n)
            if elapsed >= seconds:
                return runs, elapsed


def reference_epochs_per_s(seconds: float = 3.0, progress: bool = False) -> float:
    """Epochs/s of the reference encoder in torch float32 on this machine at batch ``REFERENCE_BATCH``."""
    import torch

    encoder = reference_encoder()
    x = torch.from_numpy(simulated_input(REFERENCE_BATCH))
    with torch.inference_mode():
        runs, elapsed = _timed(lambda: encoder(x), seconds, progress, "reference encoder")
    return runs * REFERENCE_BATCH / elapsed


def _per_epoch_work(lm, x: np.ndarray) -> dict[str, float]:  # noqa: ANN001 - a SleepLM
    """The live path's model work for a batch; seconds spent in each part and caption tokens written."""
    t0 = time.perf_counter()
    embeddings, memory = lm.encode(x)
    t1 = time.perf_counter()
    stages = [STAGE_LABELS[i] for i in lm.stage_probabilities(embeddings).argmax(axis=1)]
    t2 = time.perf_counter()
    captions = lm.generate(memory, "stage_event", stages)
    t3 = time.perf_counter()
    return {
        "encode": t1 - t0,
        "stage": t2 - t1,
        "caption": t3 - t2,
        "tokens": float(np.mean([len(c) for c in captions])),
    }


def _measure(lm, x: np.ndarray, seconds: float, progress: bool, label: str) -> dict:  # noqa: ANN001
    parts: list[dict[str, float]] = []
    runs, elapsed = _timed(lambda: parts.append(_per_epoch_work(lm, x)), seconds, progress, label)
    parts = parts[1:]  # the warm-up run
    batch = len(x)
    caption_s = sum(p["caption"] for p in parts)
    return {
        "epochs_per_s": runs * batch / elapsed,
        "captions_per_s": runs * batch / caption_s if caption_s > 0 else float("inf"),
        "seconds_per_batch": {k: sum(p[k] for p in parts) / runs for k in ("encode", "stage", "caption")},
        "caption_tokens_mean": sum(p["tokens"] for p in parts) / runs,
        "runs": runs,
    }


def bench_model(
    checkpoint: str | Path | None = None,
    backend: str = "auto",
    batch: int = 256,
    seconds: float = 10.0,
    reference: bool = True,
    device: str | None = None,
    progress: bool = False,
) -> dict:
    """Throughput of the full per-epoch work (embedding + zero-shot stage + stage_event caption).

    Returns ``epochs_per_s`` (epochs through all three parts per second), ``captions_per_s`` (captions
    per second of caption generation alone), ``batch``, ``device``, ``backend``, ``threads``,
    ``reference_epochs_per_s`` and ``speedup_vs_reference`` (None with ``reference=False``),
    ``parameters`` (of the checkpoint's model), ``checkpoint_mb``, and the breakdown
    ``seconds_per_batch`` and ``caption_tokens_mean``. Caption cost follows the checkpoint: a batch
    steps until its longest caption ends (at most 64 tokens for stage_event), so compare rates of
    different checkpoints together with their mean caption length.
    """
    import torch

    from model_runtime.model.checkpoint import load_checkpoint
    from model_runtime.model.shipped import SHIPPED_CHECKPOINT
    from model_runtime.serving.model_api import SleepLM

    if seconds <= 0:
        raise PSGError(f"seconds must be > 0, got {seconds}")
    lm = SleepLM.load(checkpoint, backend=backend, device=device)
    lm.batch = batch
    x = simulated_input(batch)
    result = _measure(lm, x, seconds, progress, f"{lm.backend.name} batch {batch}")
    ref = reference_epochs_per_s(min(3.0, seconds), progress) if reference else None
    path = Path(checkpoint or SHIPPED_CHECKPOINT)
    threads = getattr(lm.backend, "threads", None) or torch.get_num_threads()
    return {
        "epochs_per_s": result["epochs_per_s"],
        "captions_per_s": result["captions_per_s"],
        "batch": batch,
        "device": lm.backend.device,
        "backend": lm.backend.name,
        "threads": threads,
        "reference_epochs_per_s": ref,
        "speedup_vs_reference": result["epochs_per_s"] / ref if ref else None,
        "parameters": sum(p.numel() for p in load_checkpoint(path).model.parameters()),
        "checkpoint_mb": path.stat().st_size / 1e6,
        "seconds_per_batch": result["seconds_per_batch"],
        "caption_tokens_mean": result["caption_tokens_mean"],
        "runs": result["runs"],
    }


def gpu_bench(
    checkpoint: str | Path | None = None,
    batches: Sequence[int] = (256, 512, 1024),
    seconds: float = 10.0,
    progress: bool = False,
) -> list[dict] | None:
    """The same work with the torch backend on CUDA (bfloat16 autocast) at each batch size; None without
    a GPU. Batches that run out of GPU memory are reported with ``error`` instead of a rate."""
    import torch

    from model_runtime.serving.model_api import SleepLM

    if not torch.cuda.is_available():
        return None
    lm = SleepLM.load(checkpoint, backend="torch", device="cuda")
    out = []
    for batch in batches:
        lm.batch = batch
        try:
            result = _measure(lm, simulated_input(batch), seconds, progress, f"cuda batch {batch}")
        except torch.cuda.OutOfMemoryError as exc:
            out.append({"batch": batch, "device": "cuda", "error": f"out of GPU memory: {exc}"})
            torch.cuda.empty_cache()
            continue
        out.append(
            {
                "epochs_per_s": result["epochs_per_s"],
                "captions_per_s": result["captions_per_s"],
                "batch": batch,
                "device": "cuda",
                "backend": "torch",
                "gpu": torch.cuda.get_device_name(),
                "seconds_per_batch": result["seconds_per_batch"],
                "caption_tokens_mean": result["caption_tokens_mean"],
            }
        )
    return out
