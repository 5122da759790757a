"""Two sink workers writing the same beds at once (a consumer-group rebalance, a replay after a crash while the
other worker already took over): every epoch is stored exactly once, each is reported new to exactly one
writer, and a live-feed client tailing the store meanwhile gets each once, on SQLite and on PostgreSQL."""

from __future__ import annotations

import multiprocessing
import random
import time
from typing import Any

from store import Cursor, Store
from tests.records import make_record

BEDS = [f"bed-{i}" for i in range(4)]
EPOCHS = 160
BATCH = 20  # a sink batch (up to 256 records, 0.5 s)


def _batches(epochs: range, seed: int) -> list[list[dict[str, Any]]]:
    """Caption records of every bed for ``epochs``, interleaved across beds as a topic's partitions deliver
    them, in sink-sized batches; ``seed`` shuffles the batch order (each writer sees its own order)."""
    records = [make_record(e, bed=bed) for e in epochs for bed in BEDS]
    batches = [records[i : i + BATCH] for i in range(0, len(records), BATCH)]
    random.Random(seed).shuffle(batches)
    return batches


def _sink_worker(url: str, epochs: tuple[int, int], seed: int, start: Any, out: Any) -> None:
    """One sink process: open the store (migrating a fresh database, racing the other), then insert."""
    try:
        with Store(url) as store:
            start.wait(timeout=60)
            new = []
            for batch in _batches(range(*epochs), seed):
                new += [(row["bed_id"], row["epoch"], row["id"]) for row in store.insert_epochs(batch)]
        out.put(("ok", new))
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        out.put(("error", repr(exc)))


def test_two_sink_workers_with_overlapping_epochs_store_each_once(db_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(2), context.Queue()
    ranges = [(0, 120), (40, EPOCHS)]  # epochs 40-119 of every bed are written by both
    workers = [context.Process(target=_sink_worker, args=(db_url, ranges[i], i, start, out)) for i in range(2)]
    for worker in workers:
        worker.start()
    fed: list[tuple[str, int]] = []  # a live-feed client tailing the store while they write
    with Store(db_url) as reader:
        cursor = reader.feed_head()
        while True:
            running = any(worker.is_alive() for worker in workers)
            items, cursor = reader.feed_since(cursor, limit=100)
            fed += [(item["data"]["bed_id"], item["data"]["epoch"]) for item in items if item["kind"] == "epoch"]
            if not running and not items:
                break
            if not items:
                time.sleep(0.02)
    results = [out.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    errors = [detail for status, detail in results if status != "ok"]
    assert errors == []
    reported = [item for _, new in results for item in new]
    keys = [(bed, epoch) for bed, epoch, _ in reported]
    assert len(keys) == len(set(keys)) == len(BEDS) * EPOCHS  # none doubled, none lost
    assert all(new for _, new in results)  # both wrote (which one stores an overlapping epoch is a race)
    ids = [row_id for *_, row_id in reported]
    assert len(set(ids)) == len(ids)

    with Store(db_url) as store:
        assert store.count_epochs() == len(BEDS) * EPOCHS
        for bed in BEDS:
            assert store.count_epochs(bed) == EPOCHS
            assert store.hypnogram(bed)["stages"] == ["N2"] * EPOCHS
        # the live feed delivered each epoch once, none skipped by a late commit; paging afresh agrees
        assert sorted(fed) == sorted(keys)
        seen: list[tuple[str, int]] = []
        cursor = Cursor()
        while True:
            items, cursor = store.feed_since(cursor, limit=100)
            if not items:
                break
            seen += [(item["data"]["bed_id"], item["data"]["epoch"]) for item in items if item["kind"] == "epoch"]
        assert sorted(seen) == sorted(keys)
        stored_ids = {(row["bed_id"], row["epoch"]): row for row in store.epochs(BEDS[0], limit=EPOCHS)}
        assert sorted(stored_ids) == sorted(k for k in keys if k[0] == BEDS[0])
