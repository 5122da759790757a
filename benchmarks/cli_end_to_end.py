"""The foundation's acceptance checks, run exactly as an outside check would: through the ``sleeplm`` CLI.

For each ucddb night: ``sleeplm simulate`` (timed) -> ``sleeplm detect --json`` -> respiratory events
matched to the expert events (overlap, one-to-one; type-agnostic and type-aware F1). For each slpdb
record: ``sleeplm simulate`` -> ``sleeplm caption`` -> each epoch's ``hr_bpm`` against 60 / mean RR of
the record's real annotated beats in that epoch (within 3 bpm?). Everything crosses the EDF+ file, so
quantisation and the file round trip are part of what is measured.

    .venv/bin/python benchmarks/cli_end_to_end.py --ucddb 20 --slpdb 14 --out /tmp/e2e.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from psg.detectors.agreement import match_events
from psg.features.cardiac import beat_epoch_features
from psg.formats import read_timeline
from psg.paths import shared_data_dir
from psg.timeline import RESPIRATORY_EVENT_TYPES, Event

HR_TOLERANCE_BPM = 3.0


def sleeplm(*args: str) -> str:
    """Run the CLI; a failure stops the benchmark with the command's own error."""
    done = subprocess.run([sys.executable, "-m", "sleeplm", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"sleeplm {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def simulate(timeline: Path, edf: Path, seed: int) -> float:
    started = time.perf_counter()
    sleeplm("simulate", str(timeline), "--out", str(edf), "--seed", str(seed))
    return time.perf_counter() - started


def ucddb_night(stage_file: Path, folder: Path, seed: int) -> dict[str, object]:
    edf = folder / f"{stage_file.stem}.edf"
    seconds = simulate(stage_file, edf, seed)
    detected = [
        Event(e["type"], e["onset_s"], e["duration_s"])
        for e in json.loads(sleeplm("detect", str(edf), "--json"))["events"]
        if e["type"] in RESPIRATORY_EVENT_TYPES
    ]
    truth = read_timeline(stage_file).events_of(*RESPIRATORY_EVENT_TYPES)
    any_type, typed = match_events(detected, truth), match_events(detected, truth, typed=True)
    return {
        "record": stage_file.stem,
        "simulate_s": round(seconds, 2),
        "n_truth": len(truth),
        "n_detected": len(detected),
        "f1_any": round(any_type.f1, 4),
        "f1_typed": round(typed.f1, 4),
        "tp_fp_fn": [any_type.tp, any_type.fp, any_type.fn],
    }


def slpdb_record(st_file: Path, folder: Path, seed: int) -> dict[str, object]:
    edf, captions = folder / f"{st_file.stem}.edf", folder / f"{st_file.stem}.jsonl"
    seconds = simulate(st_file, edf, seed)
    sleeplm("caption", str(edf), "--out", str(captions))
    lines = [json.loads(line) for line in captions.read_text().splitlines()]
    measured = {line["epoch"]: line["features"]["hr_bpm"] for line in lines if "epoch" in line}
    timeline = read_timeline(st_file)
    truth = beat_epoch_features(timeline.beat_times_s, timeline.n_epochs)
    errors = np.array(
        [
            abs(t["hr_bpm"] - measured[i]) if measured.get(i) is not None else np.inf
            for i, t in enumerate(truth)
            if t["hr_bpm"] is not None
        ]
    )
    return {
        "record": st_file.stem,
        "simulate_s": round(seconds, 2),
        "n_epochs": int(errors.size),
        "fraction_within_3bpm": round(float(np.mean(errors <= HR_TOLERANCE_BPM)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir())
    parser.add_argument("--ucddb", type=int, default=20, help="how many ucddb nights")
    parser.add_argument("--slpdb", type=int, default=14, help="how many slpdb records")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    nights = sorted((args.data / "ucddb").glob("ucddb*_stage.txt"))[: args.ucddb]
    listed = (args.data / "slpdb" / "RECORDS").read_text().split()  # the database's own record list
    records = [args.data / "slpdb" / f"{name}.st" for name in listed][: args.slpdb]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        resp = [ucddb_night(p, folder, args.seed) for p in tqdm(nights, desc="ucddb simulate+detect")]
        hr = [slpdb_record(p, folder, args.seed) for p in tqdm(records, desc="slpdb simulate+caption")]
    tp, fp, fn = (sum(int(r["tp_fp_fn"][k]) for r in resp) for k in range(3))
    within = sum(r["fraction_within_3bpm"] * r["n_epochs"] for r in hr)
    hr_epochs = max(1, sum(int(r["n_epochs"]) for r in hr))
    result = {
        "respiratory": {
            "nights": len(resp),
            "f1_any_pooled": round(2 * tp / max(1, 2 * tp + fp + fn), 4),
            "f1_any_mean": round(float(np.mean([r["f1_any"] for r in resp])), 4) if resp else None,
            "f1_typed_mean": round(float(np.mean([r["f1_typed"] for r in resp])), 4) if resp else None,
            "f1_any_min": min((r["f1_any"] for r in resp), default=None),
            "per_night": resp,
        },
        "heart_rate": {
            "records": len(hr),
            "fraction_within_3bpm": round(within / hr_epochs, 4),
            "min_record": min((r["fraction_within_3bpm"] for r in hr), default=None),
            "per_record": hr,
        },
        "simulate_s_max": max((r["simulate_s"] for r in resp + hr), default=None),
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(
        json.dumps(
            {
                k: ({kk: vv for kk, vv in v.items() if not kk.startswith("per_")} if isinstance(v, dict) else v)
                for k, v in result.items()
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
