"""A real recording replayed as a bed goes through the whole live path and is staged by the stage head.

Real parts: the Sleep-EDF excerpt (5 min, scored Wake by its experts) is replayed over LSL by ``sleeplm
beds --source``, announced ``origin=recorded``, carried by the bridge and the broker to the worker, whose
epocher measures the stage head's inputs and whose SleepLM runtime stages it from the bed's history; the
store holds what a nurse sees. The signal encoder called this Wake segment N1 in 8 of 10 epochs live.
"""

from __future__ import annotations

from pathlib import Path

from tests.live.conftest import wait_until
from tests.live.helpers import complete, stored_rows

EPOCHS = 10  # the whole excerpt


def test_a_replayed_real_recording_is_staged_by_the_stage_head(stack, real_signals: Path) -> None:
    env = stack.child_env()
    stack.spawn("worker", ["worker"], env)
    stack.spawn("bridge", ["bridge"], env)
    edf = real_signals / "sleep-edf-short" / "short_psg.edf"
    stack.spawn("beds", ["beds", "--beds", "1", "--speed", "40", "--source", str(edf), "--nights", "1"], env)
    wait_until(lambda: complete(stack.settings, 1, EPOCHS), 150, f"{EPOCHS} epochs of the real bed in the store", stack)
    rows = stored_rows(stack.settings)
    assert [r["epoch"] for r in rows] == list(range(EPOCHS))
    assert {r["stage_source"] for r in rows} == {"stage head (real-prior)"}
    stages = [r["stage"] for r in rows]
    assert stages.count("W") >= 8, stages  # offline: 10/10 W; live at lag 0, with the history so far: 9/10
    assert "N3" not in stages[5:], stages  # the first epochs have little history to be relative to
