"""Issue 3's acceptance check, run the way a user runs the product: one ``sleeplm up`` and a clock.

Launches ``python -m sleeplm up --beds N --speed X`` (embedded Tansu broker: ``SLEEPLM_KAFKA`` unset) on a
fresh data dir, polls the API every second and reports:

- startup: seconds from launch until ``/api/health`` answers, and until every bed has epoch 0 stored with a
  stage and all five captions (the time a user waits before the ward view is useful);
- at ``--seconds``: per bed, epoch count, whether epochs are exactly 0..n-1 (no gap, no duplicate) and
  whether every one has a stage and five non-empty captions (the "nothing lost" promise);
- latency (epoch end received -> caption stored): the ``/metrics`` histogram (count, mean, p50/p95/p99
  interpolated within buckets, as Prometheus' ``histogram_quantile`` does) and the exact percentiles of
  ``latency_s`` in the SQLite store, so the bucket estimate can be checked against the truth;
- shutdown: seconds from SIGINT to the launcher's exit, and any process left behind (environment naming
  the data dir, or a command line naming the broker's port) - Ctrl-C must leave nothing.

    .venv/bin/python benchmarks/live_up.py --beds 4 --speed 10 --seconds 120 --json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from up_process import broker_port, collect_output, processes_of, signed_in, start_up, stop_up

from plumbing.broker import free_port
from psg.captions import MODALITIES

STAGES = {"W", "N1", "N2", "N3", "R", "?"}


def complete(epoch: dict) -> bool:
    """An epoch as the acceptance check wants it: a stage and all five captions, none empty."""
    captions = epoch.get("captions") or {}
    return epoch.get("stage") in STAGES and set(captions) == set(MODALITIES) and all(captions.values())


def histogram(metrics: str, name: str) -> dict[str, float | None]:
    """Count, mean and bucket-interpolated p50/p95/p99 of a Prometheus histogram in exposition text."""
    buckets: list[tuple[float, float]] = []
    total = count = 0.0
    for line in metrics.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((math.inf if le == "+Inf" else float(le), float(line.split()[-1])))
        elif line.startswith(f"{name}_sum"):
            total = float(line.split()[-1])
        elif line.startswith(f"{name}_count"):
            count = float(line.split()[-1])
    buckets.sort()

    def quantile(q: float) -> float | None:
        if not count:
            return None
        rank, lower, below = q * count, 0.0, 0.0
        for upper, cumulative in buckets:
            if cumulative >= rank:
                if math.isinf(upper):
                    return lower  # beyond the last finite bucket: its bound is all we know
                return lower + (upper - lower) * (rank - below) / max(cumulative - below, 1e-12)
            lower, below = upper, cumulative
        return None

    return {
        "count": count,
        "mean": total / count if count else None,
        "p50": quantile(0.5),
        "p95": quantile(0.95),
        "p99": quantile(0.99),
    }


def store_latency(db: Path) -> dict[str, float | None]:
    """Exact latency percentiles over every stored epoch (read-only, while nothing writes any more)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        values = np.array([r[0] for r in conn.execute("SELECT latency_s FROM epochs WHERE latency_s IS NOT NULL")])
    if not values.size:
        return {"count": 0, "mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "count": int(values.size),
        "mean": float(values.mean()),
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(values.max()),
    }


def run(beds: int, speed: float, seconds: float, api_port: int, data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SLEEPLM_KAFKA"}
    api = f"http://127.0.0.1:{api_port}"
    started = time.monotonic()
    launcher = start_up(sys.executable, beds, speed, api_port, data_dir, env)
    output, reader = collect_output(launcher)
    api_up_s = all_beds_s = None
    ready: set[str] = set()
    client = httpx.Client(base_url=api, timeout=5)
    try:
        while (elapsed := time.monotonic() - started) < seconds:
            if launcher.poll() is not None:
                reader.join(5)
                raise SystemExit(f"sleeplm up exited with {launcher.returncode}:\n{''.join(output)}")
            try:
                if api_up_s is None and signed_in(client, data_dir):
                    api_up_s = time.monotonic() - started
                if api_up_s is not None and all_beds_s is None:
                    for bed in client.get("/api/beds").json():
                        if bed["bed_id"] not in ready:
                            first = client.get(f"/api/beds/{bed['bed_id']}/epochs", params={"limit": 1}).json()
                            if first and first[0]["epoch"] == 0 and complete(first[0]):
                                ready.add(bed["bed_id"])
                    if len(ready) >= beds:
                        all_beds_s = time.monotonic() - started
            except httpx.HTTPError:
                pass
            print(
                f"\r{elapsed:5.0f}/{seconds:.0f} s  api={'up' if api_up_s is not None else 'down'}  "
                f"beds ready={len(ready)}/{beds}",
                end="",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started - elapsed)))
        print(file=sys.stderr)
        per_bed = {}
        for bed in client.get("/api/beds").json():
            epochs = client.get(f"/api/beds/{bed['bed_id']}/epochs", params={"limit": 1000}).json()
            indices = [e["epoch"] for e in epochs]
            per_bed[bed["bed_id"]] = {
                "epochs": len(epochs),
                "contiguous": indices == list(range(len(indices))),
                "complete": sum(complete(e) for e in epochs),
            }
        metrics = histogram(client.get("/metrics").text, "sleeplm_epoch_latency_seconds")
    finally:
        client.close()
        sigint_at = time.monotonic()
        stop_up(launcher)
        stop_s = time.monotonic() - sigint_at
        reader.join(5)
    return {
        "beds": beds,
        "speed": speed,
        "seconds": seconds,
        "cores": os.cpu_count(),
        "api_up_s": api_up_s,
        "all_beds_first_epoch_s": all_beds_s,
        "per_bed": per_bed,
        "all_contiguous": len(per_bed) == beds and all(b["contiguous"] for b in per_bed.values()),
        "all_complete": all(b["epochs"] > 0 and b["complete"] == b["epochs"] for b in per_bed.values()),
        "latency_metrics": metrics,
        "latency_store": store_latency(data_dir / "sleeplm.db"),
        "sigint_to_exit_s": stop_s,
        "exit_code": launcher.returncode,
        "last_line": output[-1].strip() if output else "",
        "leftover_processes": [
            f"{pid}: {command[:120]}" for pid, command in processes_of(data_dir, broker_port(output)).items()
        ],
    }


def fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


def report(r: dict) -> None:
    print(f"sleeplm up --beds {r['beds']} --speed {r['speed']:g}, {r['seconds']:.0f} s, {r['cores']} cores")
    print(f"  API answers after            {fmt(r['api_up_s'], ' s')}")
    print(f"  every bed's epoch 0 complete {fmt(r['all_beds_first_epoch_s'], ' s')}")
    print(f"  {'bed':<12}{'epochs':>8}{'contiguous':>12}{'complete':>10}")
    for bed, b in sorted(r["per_bed"].items()):
        print(f"  {bed:<12}{b['epochs']:>8}{'yes' if b['contiguous'] else 'NO':>12}{b['complete']:>10}")
    print(f"  {'latency':<12}{'count':>8}{'mean':>9}{'p50':>9}{'p95':>9}{'p99':>9}")
    for name in ("metrics", "store"):
        h = r[f"latency_{name}"]
        cells = "".join(f"{fmt(h[k], ' s'):>9}" for k in ("mean", "p50", "p95", "p99"))
        print(f"  {name:<12}{h['count']:>8.0f}{cells}")
    print(
        f"  SIGINT -> exit               {fmt(r['sigint_to_exit_s'], ' s')} (code {r['exit_code']}: {r['last_line']})"
    )
    print(f"  processes left               {len(r['leftover_processes'])}")
    for line in r["leftover_processes"]:
        print(f"    {line}")
    ok = r["all_contiguous"] and r["all_complete"] and r["all_beds_first_epoch_s"] is not None
    ok = ok and r["latency_metrics"]["count"] > 0 and r["exit_code"] == 0 and not r["leftover_processes"]
    print(f"  acceptance                   {'PASS' if ok else 'FAIL'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beds", type=int, default=4)
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=120.0, help="how long to let it run before checking")
    parser.add_argument("--api-port", type=int, default=0, help="0 picks a free loopback port")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (store, logs) afterwards")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="sleeplm-up-bench-")).resolve()
    try:
        result = run(args.beds, args.speed, args.seconds, args.api_port or free_port(), data_dir)
    finally:
        if args.keep:
            print(f"data dir kept: {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    report(result)
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
