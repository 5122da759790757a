"""The store on a full ward night: insert rate and the API's read latencies (PostgreSQL by default).

Writes ``--beds`` beds x ``--epochs`` epochs (500 x 960 = a full 8-h night of the ward) through
``Store.insert_epochs`` exactly as the sink does: caption records of every bed interleaved in epoch order
(as the captions topic delivers them), in batches of ``--batch`` (the sink's 256), one transaction each,
plus a few alert transitions per bed (``apply_alert_events``, as the alert agent writes them). Records
are sized like the worker's (five captions, ~30 features, quality flags of 8 channels, detector events);
no waveform or embedding (the sink keeps only the newest waveform per bed, and embeddings are optional).

Then, on the filled store, the reads behind the API's routes, each ``--repeats`` times on random beds:
beds list (``/api/beds``), ward (``/api/ward``), hypnogram of a bed (``/api/beds/{bed}/hypnogram``), a page
of 100 epochs (``/api/beds/{bed}/epochs``), active alerts (``/api/alerts``) and one live-feed page
(``feed_since``, 500 items from the head minus 500 epochs). Latencies are wall-clock per call, p50/p95/max.

Runs in a fresh schema of the PostgreSQL database named by ``--url`` (default ``$SLEEPLM_TEST_PG_URL``,
which ``.ci/run`` sets), dropped afterwards unless ``--keep``; ``--url sqlite:///PATH`` runs the same on a
SQLite file for comparison. ``ANALYZE`` runs after the load (autovacuum would have by morning).

Usage::

    python benchmarks/store_pg.py [--url URL] [--beds 500] [--epochs 960] [--out RESULT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tqdm import tqdm

from store import Cursor, Store

STAGES = ("W", "N1", "N2", "N3", "R")
CHANNELS = ("C3", "C4", "O1", "O2", "EOG-L", "EOG-R", "ECG", "SpO2")


def caption_record(bed: str, epoch: int, rng: random.Random) -> dict[str, Any]:
    """A caption record of the size the worker sends (captions of a few sentences, ~30 features)."""
    stage = STAGES[(epoch // 40 + int(bed.rsplit("-", 1)[-1])) % len(STAGES)]
    features = {
        f"{ch}_{band}": round(rng.random(), 4)
        for ch in ("c3", "c4", "o1")
        for band in ("delta", "theta", "alpha", "sigma", "beta", "gamma", "ratio")
    }
    features.update(
        hr_bpm=round(55 + 10 * rng.random(), 1),
        spo2_mean=round(93 + 4 * rng.random(), 1),
        spo2_min=round(90 + 4 * rng.random(), 1),
        resp_rate=round(12 + 4 * rng.random(), 1),
    )
    events = (
        [{"type": "obstructive_apnea", "onset_s": 30.0 * epoch + 4.0, "duration_s": 14.0, "channel": None}]
        if rng.random() < 0.08
        else []
    )
    return {
        "schema": 1,
        "bed_id": bed,
        "recording_id": f"{bed}-night-1",
        "epoch": epoch,
        "start_time": 1_800_000_000.0 + 30.0 * epoch,
        "epoch_s": 30.0,
        "stage": stage,
        "stage_source": "sleeplm",
        "probabilities": [round(rng.random(), 3) for _ in STAGES],
        "captions": {
            "stage_event": f"Stage {stage}; {'one obstructive apnea' if events else 'no respiratory events'}.",
            "brain": "Spindles and K-complexes over a background of mixed-frequency activity, theta dominant.",
            "cardiac": f"Sinus rhythm around {features['hr_bpm']:.0f} bpm with normal beat-to-beat variability.",
            "respiratory": "Regular breathing, no flow limitation, oxygen saturation stable above 93 %.",
            "somatic": "No limb movements; body position supine; no snoring detected.",
        },
        "features": features,
        "quality": {ch: ([] if rng.random() > 0.02 else ["flat"]) for ch in CHANNELS},
        "events": events,
        "advisories": [],
        "runtime": "sleeplm",
        "end_received_at": time.time(),
    }


def alert_events(bed: str, index: int) -> list[dict[str, Any]]:
    """A raised alert, its update and (every other one) its resolution, as the alert agent stores them."""
    raised_at = 1_800_000_000.0 + 600.0 * (index + 1)
    alert = {
        "id": f"{bed}:spo2_low:{raised_at:.0f}",
        "bed_id": bed,
        "recording_id": f"{bed}-night-1",
        "type": "spo2_low",
        "priority": ("high", "medium", "low")[index % 3],
        "state": "raised",
        "raised_at": raised_at,
        "updated_at": raised_at,
        "evidence": {"start": raised_at - 15.0, "end": raised_at, "count": 1, "values": {"min_spo2": 86.0}},
        "escalated": False,
        "escalated_at": None,
        "acknowledged_by": None,
        "acknowledged_at": None,
        "resolved_at": None,
    }
    out = [
        {"kind": "alert", "event": "raised", "alert": dict(alert)},
        {"kind": "alert", "event": "updated", "alert": {**alert, "updated_at": raised_at + 30.0}},
    ]
    if index % 2:
        out.append(
            {
                "kind": "alert",
                "event": "resolved",
                "alert": {
                    **alert,
                    "state": "resolved",
                    "updated_at": raised_at + 90.0,
                    "resolved_at": raised_at + 90.0,
                },
            }
        )
    return out


@contextmanager
def fresh_database(url: str, keep: bool) -> Iterator[str]:
    """PostgreSQL: a new schema of ``url``'s database (dropped afterwards unless ``keep``); SQLite: ``url``."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        yield url
        return
    schema = f"sleeplm_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(parsed, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield parsed.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        if not keep:
            with admin.connect() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def timed(call: Callable[[], Any], repeats: int) -> dict[str, float]:
    """p50/p95/max wall-clock milliseconds of ``repeats`` calls (after one warm-up call)."""
    call()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[min(len(samples) - 1, int(0.95 * len(samples)))], 2),
        "max_ms": round(samples[-1], 2),
        "n": repeats,
    }


def run(url: str, beds: int, epochs: int, batch: int, repeats: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    names = [f"bed-{i:03d}" for i in range(beds)]
    with Store(url) as store:
        total = beds * epochs
        stored, insert_s = 0, 0.0
        pending: list[dict[str, Any]] = []
        with tqdm(total=total, unit="epoch", desc="insert", smoothing=0.05) as progress:
            for epoch in range(epochs):
                for bed in names:
                    pending.append(caption_record(bed, epoch, rng))
                    if len(pending) == batch or (epoch == epochs - 1 and bed == names[-1]):
                        started = time.perf_counter()  # only the store's call counts, not making records
                        stored += len(store.insert_epochs(pending))
                        insert_s += time.perf_counter() - started
                        progress.update(len(pending))
                        pending = []
        alerts = [item for i, bed in enumerate(names) for n in range(2) for item in alert_events(bed, 2 * i + n)]
        started = time.perf_counter()
        for start in range(0, len(alerts), 64):
            store.apply_alert_events(alerts[start : start + 64])
        alert_s = time.perf_counter() - started
        assert stored == total, f"stored {stored} of {total}"
        with store.engine.connect() as connection:
            if store.engine.dialect.name == "postgresql":
                connection.execute(text("ANALYZE"))
                size = connection.scalar(
                    text(
                        "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON "
                        "n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'"
                    )
                )
                server = connection.scalar(text("SHOW server_version"))
            else:
                connection.exec_driver_sql("ANALYZE")
                size = Path(make_url(url).database).stat().st_size
                server = "sqlite " + connection.exec_driver_sql("SELECT sqlite_version()").scalar()
        head = store.feed_head()
        back = Cursor(max(0, head.epoch_id - 500), head.event_id, head.alert_id)
        queries = {}
        for name, call, n in tqdm(
            [
                ("beds list", lambda: store.beds(stale_after_s=90.0), max(5, repeats // 5)),
                ("ward", lambda: store.ward(stale_after_s=90.0), max(5, repeats // 5)),
                ("hypnogram", lambda: store.hypnogram(rng.choice(names)), repeats),
                (
                    "epochs page (100)",
                    lambda: store.epochs(rng.choice(names), since=rng.randrange(epochs), limit=100),
                    repeats,
                ),
                ("alerts (active)", lambda: store.alerts("active"), repeats),
                ("alerts of a bed", lambda: store.alerts("all", rng.choice(names)), repeats),
                ("feed page (500)", lambda: store.feed_since(back, limit=500), repeats),
            ],
            desc="queries",
            unit="query",
        ):
            queries[name] = timed(call, n)
    return {
        "backend": server,
        "beds": beds,
        "epochs_per_bed": epochs,
        "epochs": total,
        "batch": batch,
        "insert_s": round(insert_s, 1),
        "insert_epochs_per_s": round(total / insert_s),
        "batch_ms_mean": round(1000 * insert_s / -(-total // batch), 1),
        "alert_transitions": len(alerts),
        "alert_transitions_per_s": round(len(alerts) / alert_s),
        "database_mb": round(int(size) / 2**20, 1),
        "queries": queries,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("SLEEPLM_TEST_PG_URL"),
        help="PostgreSQL URL (default $SLEEPLM_TEST_PG_URL) or sqlite:///PATH",
    )
    parser.add_argument("--beds", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=960, help="epochs per bed (960 = 8 h)")
    parser.add_argument("--batch", type=int, default=256, help="records per insert (the sink's batch)")
    parser.add_argument("--repeats", type=int, default=50, help="calls per query (beds list and ward: a fifth)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's schema")
    parser.add_argument("--out", type=Path, help="JSON file for the results")
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("no database: pass --url or set SLEEPLM_TEST_PG_URL")
    with fresh_database(args.url, args.keep) as url:
        result = run(url, args.beds, args.epochs, args.batch, args.repeats, args.seed)
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    text_out = json.dumps(result, indent=2)
    print(text_out)
    if args.out:
        args.out.write_text(text_out + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
