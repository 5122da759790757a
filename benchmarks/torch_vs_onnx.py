"""Issue 18's equivalence check: staging and query results of the serving path (onnxruntime graphs, ONNX text
tower, ``serving.npz``; no torch) against the torch path (the ``.pt`` on torch, sentence-transformers' MiniLM)
on nights the model never trained on. Needs the train extra (the torch side).

For each night: the stages ``sleeplm stage`` prints (both heads' choice, the smoothed zero-shot labels, the
largest probability difference) and, per watch rule of benchmarks/watch_rules.py, the ranked ``query``
epochs (same epochs in the same order?) and the largest score difference.

    .venv/bin/python benchmarks/torch_vs_onnx.py --json
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from model_runtime.serving.model_api import SleepLM
from model_runtime.serving.night import load_night_input, query_night, stage_night
from psg.formats.edf import write_edf
from psg.paths import shared_data_dir
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline

HERE = Path(__file__).resolve().parent


def rules() -> list[str]:
    tree = ast.parse((HERE / "watch_rules.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "RULES")
    return list(ast.literal_eval(node.value))


def nights(folder: Path) -> dict[str, Path]:
    """A simulated night from a timeline seed no training run used, and the real Sleep-EDF excerpt."""
    out = {}
    path = folder / "simulated-seed-9103.edf"
    write_edf(simulate(synthetic_timeline(hours=2.0, seed=9103, ahi=25), seed=9103), path)
    out["simulated 2 h (seed 9103)"] = path
    real = shared_data_dir() / "real-signals" / "sleep-edf-short" / "short_psg.edf"
    if real.is_file():
        out["real: sleep-edf-short/short_psg.edf"] = real
    return out


def compare(onnx: SleepLM, torch: SleepLM, path: Path) -> dict:
    night = load_night_input(path)
    a, b = stage_night(onnx, night), stage_night(torch, night)
    result = {
        "epochs": night.n_epochs,
        "stages_identical": a["stages"] == b["stages"],
        "stage_head": [a.get("stage_head"), b.get("stage_head")],
        "max_probability_diff": float(np.abs(np.asarray(a["probabilities"]) - np.asarray(b["probabilities"])).max()),
        "queries": {},
    }
    for text in rules():
        qa, qb = query_night(onnx, night, text, top=10), query_night(torch, night, text, top=10)
        ea, eb = [m["epoch"] for m in qa["matches"]], [m["epoch"] for m in qb["matches"]]
        diff = max(
            (abs(x["score"] - y["score"]) for x, y in zip(qa["matches"], qb["matches"], strict=False)), default=0.0
        )
        cosine = float(onnx.embed_text(text) @ torch.embed_text(text))
        result["queries"][text] = {
            "same_epochs_same_order": ea == eb,
            "same_epochs": sorted(ea) == sorted(eb),
            "shared_epochs": len(set(ea) & set(eb)),
            "max_score_diff": diff,
            "query_vector_cosine": cosine,
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    onnx = SleepLM.load(backend="onnx")
    torch = SleepLM.load(backend="torch")
    torch.text_tower = "torch"
    with tempfile.TemporaryDirectory() as folder:
        result = {name: compare(onnx, torch, path) for name, path in nights(Path(folder)).items()}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for name, r in result.items():
        same = sum(q["same_epochs_same_order"] for q in r["queries"].values())
        same_set = sum(q["same_epochs"] for q in r["queries"].values())
        shared = sum(q["shared_epochs"] for q in r["queries"].values())
        print(
            f"{name}: {r['epochs']} epochs; stages identical: {r['stages_identical']} "
            f"(max prob diff {r['max_probability_diff']:.2e}); queries with the same top-10 in the same order: "
            f"{same}/{len(r['queries'])}, the same top-10 epochs: {same_set}/{len(r['queries'])} ({shared} epochs "
            f"shared of {10 * len(r['queries'])}), max score diff "
            f"{max(q['max_score_diff'] for q in r['queries'].values()):.2e}, min query cosine "
            f"{min(q['query_vector_cosine'] for q in r['queries'].values()):.6f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
