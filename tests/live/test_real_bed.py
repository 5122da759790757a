"""A real recording replayed as a bed goes through the whole live path and is staged by the stage head,
also across a worker killed mid-night.

Real parts: the Sleep-EDF excerpt (5 min, scored Wake by its experts) is replayed over LSL by ``sleeplm
beds --source``, announced ``origin=recorded``, carried by the bridge and the broker to the worker, whose
epocher measures the stage head's inputs and whose SleepLM runtime stages it from the bed's history; the
store holds what a nurse sees. The worker is SIGKILLed mid-recording: the new one resumes the bed's stage
history from the store (``store.stage_history_store``), so no epoch is "taken over" uncertain. The signal
encoder called this Wake segment N1 in 8 of 10 epochs live.
"""

from __future__ import annotations

import signal
from pathlib import Path

from tests.live.conftest import wait_until
from tests.live.helpers import assert_each_epoch_once, complete, stored_rows

EPOCHS = 10  # the whole excerpt


def test_a_replayed_real_recording_is_staged_by_the_stage_head_across_a_worker_kill(stack, real_signals: Path) -> None:
    env = stack.child_env()
    worker = stack.spawn("worker", ["worker"], env)
    stack.spawn("bridge", ["bridge"], env)
    edf = real_signals / "sleep-edf-short" / "short_psg.edf"
    stack.spawn("beds", ["beds", "--beds", "1", "--speed", "15", "--source", str(edf), "--nights", "1"], env)
    wait_until(lambda: complete(stack.settings, 1, 5), 120, "5 epochs of the real bed before the kill", stack)
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait()
    stack.children.remove(worker)
    taker = stack.spawn("worker", ["worker", "--loglevel", "info"], env)
    wait_until(lambda: complete(stack.settings, 1, EPOCHS), 150, f"{EPOCHS} epochs in the store after the kill", stack)
    assert_each_epoch_once(stack.settings, 1, EPOCHS)
    rows = stored_rows(stack.settings)
    assert {r["stage_source"] for r in rows} == {"stage head (real-prior)"}
    stages = [r["stage"] for r in rows]
    # offline 10/10 W; live at lag 0 10/10 without the restart (tests/model/test_live_stage_head.py); the
    # resumed history may tip an early epoch to a W/N3 tie, shown as '?'
    assert stages.count("W") >= 8 and "N3" not in stages, stages
    assert not any("took this bed over" in r["captions"]["stage_event"] for r in rows)
    resumed = taker.log_path.read_text(errors="replace")
    assert "stage history resumed" in resumed, resumed[-2000:]
