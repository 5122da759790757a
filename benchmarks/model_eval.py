"""Evaluate a SleepLM checkpoint on the held-out simulated validation nights (``model_runtime.evaluation.evaluate``).

Zero-shot staging next to YASA on the same signals and next to the Dreem five-scorer agreement,
retrieval R@1/5/10, caption facts, query precision, the few-shot curve and CPU speed. Writes
``model_eval.json`` and PNG plots to ``--out`` and prints a markdown summary for ``benchmarks/RESULTS.md``.

Usage::

    python benchmarks/model_eval.py --checkpoint model_runtime/checkpoints/sleeplm-small.pt \\
        --data ../shared/data --out eval_out --cache ~/.cache/sleeplm/eval [--nights 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from model_runtime.evaluation.evaluate import CAPTION_EPOCHS_PER_NIGHT, RETRIEVAL_EPOCHS, evaluate
from model_runtime.evaluation.report import summary_markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="checkpoint file (default: the shipped one)")
    parser.add_argument("--data", type=Path, default=None, help="shared data folder (default: SLEEPLM_DATA)")
    parser.add_argument("--out", type=Path, required=True, help="folder for model_eval.json and the plots")
    parser.add_argument("--cache", type=Path, default=None, help="cache of rendered validation nights")
    parser.add_argument("--nights", type=int, default=None, help="evaluate only the first N validation nights")
    parser.add_argument("--backend", choices=("torch", "onnx", "auto"), default="torch", help="model backend")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument(
        "--caption-epochs",
        type=int,
        default=CAPTION_EPOCHS_PER_NIGHT,
        help="epochs per night whose captions are generated and scored (0: all)",
    )
    parser.add_argument("--retrieval-epochs", type=int, default=RETRIEVAL_EPOCHS, help="retrieval pool size")
    parser.add_argument("--no-speed", action="store_true", help="skip the CPU speed benchmark")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    result = evaluate(
        checkpoint=args.checkpoint,
        data_dir=args.data,
        cache_dir=args.cache,
        out_dir=args.out,
        progress=not args.quiet,
        nights=args.nights,
        backend=args.backend,
        device=args.device,
        caption_epochs=args.caption_epochs or None,
        retrieval_epochs=args.retrieval_epochs,
        speed=not args.no_speed,
    )
    print(summary_markdown(result))
    print(
        f"\n{args.out / 'model_eval.json'} and {len(result.get('plots', []))} plots written "
        f"in {time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
