"""``sleeplm bench stream`` refuses options that cannot make a run before it starts anything (no broker, no
temporary folder), with exit 2 and the option named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--beds", "3", "--night-hours", "1", "--from-hour", "2"], "--from-hour 2: expected less than the 1 h"),
        (["--beds", "1", "--lsl-beds", "2"], "--beds 1: expected >= 1 and >= --lsl-beds 2"),
    ],
)
def test_impossible_runs_exit_2_naming_the_option(options: list[str], message: str, tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("SLEEPLM_DATA_DIR", None)
    done = subprocess.run(
        [sys.executable, "-m", "sleeplm", "bench", "stream", *options],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())  # refused before a data folder (or a broker) was made
