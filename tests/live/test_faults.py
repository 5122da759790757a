"""Fault injection on real parts (Tansu, LSL, worker and bridge processes, SQLite), bounded in time.

Each test ends with the store holding every epoch of every bed exactly once, or, where a device or the
bridge was really gone, the epochs of that time flagged ``gap`` (data that never left the device cannot
be stored): a broker frozen for 30 s, the bridge killed and restarted, a device unplugged for 60 s of
device time, the store locked past its busy timeout, and a second worker joining then the first leaving
(two rebalances). The workers run the rules runtime: delivery does not depend on the model, and it keeps
these tests fast; the model runtime goes through the same agents in ``test_alerts_live``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections import Counter

from device_bridges.bed_nights import night_for
from device_bridges.simulated import SimulatedBed
from store import Store
from tests.live.conftest import wait_until
from tests.live.helpers import (
    assert_each_epoch_once,
    complete,
    gap_channels,
    sqlite_path,
    start_beds,
    stored_epochs,
    stored_rows,
)

HOURS = 0.1  # 6 min of device time: 12 epochs, 36 s of wall time at speed 10
EPOCHS = 12


def _env(stack) -> dict[str, str]:
    env = stack.child_env()
    env["SLEEPLM_RUNTIME"] = "rules"
    return env


def _gap_epochs(stack) -> dict[str, list[int]]:
    """bed -> epochs with a ``gap`` flag."""
    out: dict[str, list[int]] = {}
    for row in stored_rows(stack.settings):
        if gap_channels(row):
            out.setdefault(row["bed_id"], []).append(row["epoch"])
    return out


def test_broker_frozen_30_s_then_resumed_loses_and_duplicates_nothing(stack) -> None:
    env = _env(stack)
    stack.spawn("worker", ["worker", "--loglevel", "info"], env)  # a failure shows the rejoin in the log tail
    start_beds(stack, beds=2, speed=10, hours=HOURS)
    wait_until(lambda: complete(stack.settings, 2, 2), 120, "2 epochs per bed before the freeze", stack)
    os.kill(stack.broker.process.pid, signal.SIGSTOP)
    try:
        time.sleep(30)  # the beds go on; the bridge spools (memory, then disk)
    finally:
        os.kill(stack.broker.process.pid, signal.SIGCONT)
    wait_until(lambda: complete(stack.settings, 2, EPOCHS), 180, f"{EPOCHS} epochs per bed after the freeze", stack)
    time.sleep(3)
    assert_each_epoch_once(stack.settings, 2, EPOCHS)  # ... and no gap: the spool kept every sample


def test_bridge_killed_and_restarted_resumes_by_itself(stack) -> None:
    env = _env(stack)
    stack.spawn("worker", ["worker"], env)
    start_beds(stack, beds=2, speed=10, hours=HOURS)
    wait_until(lambda: complete(stack.settings, 2, 3), 120, "3 epochs per bed before the kill", stack)
    bridge = next(c for c in stack.children if c.name == "bridge")
    bridge.process.send_signal(signal.SIGKILL)
    bridge.process.wait()
    stack.children.remove(bridge)
    time.sleep(3)  # 30 s of device time nobody reads: those samples are gone
    stack.spawn("bridge", ["bridge"], env)
    wait_until(lambda: complete(stack.settings, 2, EPOCHS), 150, f"{EPOCHS} epochs per bed after the restart", stack)
    time.sleep(3)
    assert_each_epoch_once(stack.settings, 2, EPOCHS, gaps_allowed=True)
    gaps = _gap_epochs(stack)
    for bed in ("bed-01", "bed-02"):
        flagged = gaps.get(bed, [])
        # the ~30-80 s of device time without a bridge (3 s + its restart at speed 10): 1-4 adjacent epochs
        assert 1 <= len(flagged) <= 4 and flagged == list(range(flagged[0], flagged[0] + len(flagged))), gaps
        assert flagged[0] >= 2, gaps


def test_device_unplugged_60_s_raises_a_technical_alert_flags_the_gap_and_resumes(stack) -> None:
    """An in-process LSL bed at speed 4 pulls its plug for 60 s of device time (15 s of wall time)."""
    env = _env(stack)
    stack.spawn("worker", ["worker"], env)
    stack.spawn("bridge", ["bridge"], env)
    bed = SimulatedBed("bed-77", night_for("synthetic", 0, 0.06, 3, 1800.0), speed=4.0, wait_for_consumers_s=30)
    bed.start()
    try:
        wait_until(lambda: len(stored_epochs(stack.settings).get("bed-77", [])) >= 2, 150, "2 epochs", stack)
        bed.disconnect()
        unplugged = time.time()
        with Store(stack.settings.database_url) as store:

            def technical() -> dict | None:
                found = [a for a in store.alerts("all", bed_id="bed-77") if a["type"] == "technical:stream"]
                return found[0] if found else None

            wait_until(lambda: technical() is not None, 10, "a technical:stream alert within 10 s", stack)
            raised_after = time.time() - unplugged
            time.sleep(max(0.0, 15.0 - (time.time() - unplugged)))
            bed.reconnect()
            wait_until(lambda: technical()["state"] == "resolved", 30, "the technical alert to resolve", stack)
        bed.join(120)
        assert bed.error is None and not bed.running
        time.sleep(3)
    finally:
        bed.stop()
    indices = stored_epochs(stack.settings)["bed-77"]
    assert sorted(indices) == list(range(len(indices))) and len(indices) == len(set(indices)), indices
    assert len(indices) >= 6, indices  # the night went on after the device came back
    flagged = _gap_epochs(stack).get("bed-77", [])
    assert 2 <= len(flagged) <= 4, f"60 s of device time missing should flag 2-3 epochs, got {flagged}"
    assert raised_after <= 10.0


def test_store_locked_past_its_busy_timeout_loses_nothing(stack) -> None:
    """The worker's store is given a 5-s busy timeout (the URL's ``timeout``; 30 s by default) and the lock is
    held for 12 s: its writes fail past the timeout and are retried until the lock is released."""
    env = _env(stack)
    env["SLEEPLM_DB_URL"] = f"{stack.settings.database_url}?timeout=5"
    stack.spawn("worker", ["worker"], env)
    start_beds(stack, beds=2, speed=10, hours=HOURS)
    wait_until(lambda: complete(stack.settings, 2, 2), 120, "2 epochs per bed before the lock", stack)
    released = threading.Event()

    def hold_the_write_lock() -> None:
        with sqlite3.connect(sqlite_path(stack.settings), timeout=30, isolation_level=None) as db:
            db.execute("BEGIN EXCLUSIVE")
            released.wait(30)  # longer than the worker's 5-s busy timeout: its writes fail, and are retried
            db.execute("ROLLBACK")

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    time.sleep(12)
    released.set()
    holder.join(10)
    wait_until(lambda: complete(stack.settings, 2, EPOCHS), 120, f"{EPOCHS} epochs per bed after the lock", stack)
    time.sleep(3)
    assert_each_epoch_once(stack.settings, 2, EPOCHS)
    log = next(c for c in stack.children if c.name == "worker").log_path.read_text(errors="replace")
    assert "store unavailable" in log and "store answers again" in log


def test_a_second_worker_joins_and_the_first_leaves_without_loss_or_duplicates(stack) -> None:
    env = _env(stack)
    first = stack.spawn("worker-a", ["worker"], env)
    start_beds(stack, beds=4, speed=10, hours=HOURS)
    wait_until(lambda: complete(stack.settings, 4, 3), 120, "3 epochs per bed on one worker", stack)
    stack.spawn("worker-b", ["worker"], env)  # rebalance 1: the partitions are shared
    wait_until(lambda: complete(stack.settings, 4, 6), 120, "6 epochs per bed on two workers", stack)
    first.process.send_signal(signal.SIGTERM)  # rebalance 2: the second takes everything
    first.process.wait(30)
    stack.children.remove(first)
    wait_until(lambda: complete(stack.settings, 4, EPOCHS), 150, f"{EPOCHS} epochs per bed after both", stack)
    time.sleep(3)
    assert_each_epoch_once(stack.settings, 4, EPOCHS)
    with sqlite3.connect(sqlite_path(stack.settings)) as db:
        raised = db.execute("SELECT bed_id, type FROM alerts WHERE state != 'resolved'").fetchall()
    duplicated = [key for key, n in Counter(raised).items() if n > 1]
    assert duplicated == [], f"one active alert per bed and type, got duplicates {duplicated}"
