"""Beds vs latency of the live path: runs ``sleeplm bench stream`` once per bed count and plots the curve.

Each run is the real stack (embedded broker, two workers, the default runtime, SQLite) for ``--seconds``
of device time at device rates; the JSON of every run is kept next to the plot so the table in
``benchmarks/RESULTS.md`` can be checked against it.

    .venv/bin/python benchmarks/stream_curve.py --beds 10 25 50 75 100 --seconds 120
    .venv/bin/python benchmarks/stream_curve.py --plot-only      # redraw from the kept JSON

Writes ``benchmarks/results/stream_<beds>.json`` and ``benchmarks/plots/stream_curve.png``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file backend)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PLOT = HERE / "plots" / "stream_curve.png"


def run(beds: int, seconds: float) -> dict:
    """One ``sleeplm bench stream`` run; its JSON result (the CLI's progress goes to stderr, shown live)."""
    command = [
        sys.executable,
        "-m",
        "sleeplm",
        "bench",
        "stream",
        "--beds",
        str(beds),
        "--seconds",
        str(seconds),
        "--json",
    ]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout)


def plot(results: list[dict]) -> None:
    """p50/p95/p99 latency against beds, unsustained runs marked, the issue's 1-s p95 target drawn."""
    results = sorted(results, key=lambda r: r["beds"])
    beds = [r["beds"] for r in results]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, style in (("latency_p50_s", "o-"), ("latency_p95_s", "s-"), ("latency_p99_s", "^--")):
        ax.plot(beds, [r[key] for r in results], style, label=key.removeprefix("latency_").removesuffix("_s"))
    for r in results:
        if not r["sustained"]:
            ax.annotate(
                "not sustained",
                (r["beds"], r["latency_p95_s"]),
                textcoords="offset points",
                xytext=(-40, 8),
                fontsize=8,
                color="tab:red",
            )
    ax.axhline(1.0, color="grey", lw=0.8, ls=":", label="target p95 (1 s)")
    ax.set_yscale("log")
    ax.set_xlabel("beds (device rates, 2 workers, one 2-core machine with broker and generator)")
    ax.set_ylabel("epoch end -> caption stored (s)")
    ax.set_title("sleeplm bench stream")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beds", type=int, nargs="+", default=[10, 25, 50, 75, 100])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--plot-only", action="store_true", help="redraw from benchmarks/results/stream_*.json")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    if not args.plot_only:
        for beds in args.beds:
            print(f"--- {beds} beds ---", file=sys.stderr, flush=True)
            result = run(beds, args.seconds)
            (RESULTS / f"stream_{beds}.json").write_text(json.dumps(result, indent=1))
    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("stream_*.json"))]
    if not results:
        raise SystemExit(f"no results in {RESULTS}: run without --plot-only first")
    plot(results)
    for r in sorted(results, key=lambda r: r["beds"]):
        print(
            f"{r['beds']:5d} beds  sustained={r['sustained']!s:5}  p50 {r['latency_p50_s']:.2f}  "
            f"p95 {r['latency_p95_s']:.2f}  p99 {r['latency_p99_s']:.2f} s  lost {r['lost_epochs']}  "
            f"dup {r['duplicate_epochs']}  cpu {r['cpu_percent']:.0f}%  rss {r['rss_mb']:.0f} MB"
        )
    print(f"plot: {PLOT}")


if __name__ == "__main__":
    main()
