"""How long does ``sleeplm simulate`` take for an 8-hour night? (target: < 30 s on the 2-core dev box)

Times the three parts separately (simulate, EDF+ write, EDF+ read back) over ``--repeats`` runs on a
generated 8-h night (or ``--timeline PATH``) and prints JSON. Run:

    .venv/bin/python benchmarks/simulate_speed.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from psg.formats import read_edf, read_timeline, write_edf
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeline", type=Path, help="scored night to render (default: generated 8-h night)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--artifacts", action="store_true")
    args = parser.parse_args()
    timeline = read_timeline(args.timeline) if args.timeline else synthetic_timeline(hours=8.0, seed=0, ahi=15.0)
    timings: dict[str, list[float]] = {"simulate_s": [], "write_edf_s": [], "read_edf_s": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "night.edf"
        for seed in range(args.repeats):
            t0 = time.perf_counter()
            recording = simulate(timeline, seed=seed, artifacts=args.artifacts)
            t1 = time.perf_counter()
            write_edf(recording, path)
            t2 = time.perf_counter()
            read_edf(path)
            t3 = time.perf_counter()
            for key, value in zip(timings, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                timings[key].append(value)
        size_mb = path.stat().st_size / 1e6
    result = {
        "night_hours": timeline.duration_s / 3600.0,
        **{k: round(statistics.median(v), 2) for k, v in timings.items()},
        "simulate_plus_write_s": round(
            statistics.median([a + b for a, b in zip(timings["simulate_s"], timings["write_edf_s"], strict=True)]), 2
        ),
        "edf_mb": round(size_mb, 1),
        "repeats": args.repeats,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
