"""The pieces of the live path's logs (``plumbing.logs``), without processes: the one line format, liblsl's
lines, the pump that stamps and cleans a part's output, and the files it keeps."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from plumbing.logs import IsoFormatter, LogPump, device_and_wall, lsl_record, prune_runs, run_stamp

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2} ")


def test_every_line_of_a_record_with_a_traceback_starts_with_its_time() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "sleeplm.test", logging.ERROR, __file__, 1, "failed\n\x1b[31mred\x1b[0m", None, sys.exc_info()
        )
    lines = IsoFormatter().format(record).splitlines()
    assert len(lines) >= 4 and all(ISO.match(line) for line in lines), lines
    assert all(" ERROR sleeplm.test: " in line for line in lines)
    assert "\x1b" not in "".join(lines) and lines[1].endswith(": red")
    assert lines[-1].endswith("ValueError: boom")


def test_device_time_is_named_only_where_it_differs_from_wall_time() -> None:
    now = time.time()
    assert device_and_wall(now + 0.2, now) == ""
    assert device_and_wall(now + 3600, now).startswith("device time ")


def test_liblsl_lines_and_the_broke_off_line_is_info() -> None:
    broke = (
        "2026-12-06 11:58:03.685 (  13.066s) [R_sleeplm-bed-  ]      data_receiver.cpp:375    ERR| Stream "
        "transmission broke off (Input stream error.); re-connecting..."
    )
    level, message = lsl_record(broke)
    assert level == logging.INFO and message.startswith("Stream transmission broke off")
    other = "2026-12-06 11:58:03.685 (  13.066s) [R_x]  tcp_server.cpp:99    ERR| could not bind"
    assert lsl_record(other)[0] == logging.ERROR
    assert lsl_record("some other line") is None


def _through_pump(path: Path, script: str, **pump_args: int) -> LogPump:
    pump = LogPump(path, **pump_args)
    try:
        process = subprocess.Popen([sys.executable, "-c", script], stdout=pump.write_end, stderr=subprocess.STDOUT)
    finally:
        pump.close_write_end()
    process.wait(timeout=30)
    pump.join(5.0)
    return pump


def test_the_pump_stamps_cleans_and_keeps_a_tail(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "print('plain line')\n"
        "sys.stdout.write('\\x1b[?25l\\x08\\x1b[?25h')\n"  # a spinner: nothing to keep
        "print('progress 10%\\rprogress 100%')\n"
        "print('2026-12-06T03:00:00.000+00:00 INFO x: stamped already')\n"
        "raise SystemExit('fatal: gone')\n"
    )
    pump = _through_pump(tmp_path / "part-20261206T030000.log", script)
    lines = pump.path.read_text().splitlines()
    assert all(ISO.match(line) for line in lines), lines
    assert "\x1b" not in pump.path.read_text()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "plain line",
        "progress 100%",
        "INFO x: stamped already",
        "fatal: gone",
    ]
    assert lines[2] == "2026-12-06T03:00:00.000+00:00 INFO x: stamped already"  # its own time is kept
    assert list(pump.tail)[-1].endswith("fatal: gone")
    assert (tmp_path / "part.log").resolve() == pump.path.resolve()


def test_the_pump_rolls_a_file_over_and_bounds_it(tmp_path: Path) -> None:
    pump = _through_pump(
        tmp_path / "part-20261206T030000.log", "for i in range(400): print('x' * 100)", max_bytes=10_000, backups=2
    )
    pieces = sorted(p.name for p in tmp_path.iterdir() if not p.is_symlink())
    assert pieces == ["part-20261206T030000.log", "part-20261206T030000.log.1", "part-20261206T030000.log.2"]
    assert all(os.path.getsize(tmp_path / name) <= 10_000 for name in pieces)
    assert pump.path.exists()


def test_only_the_last_runs_are_kept_and_run_names_are_unique(tmp_path: Path) -> None:
    for n in range(12):
        (tmp_path / f"worker-202612{n + 1:02d}T030000.log").write_text("x\n")
    (tmp_path / "worker-20261201T030000.log.1").write_text("x\n")
    (tmp_path / "api-20261201T030000.log").write_text("x\n")
    prune_runs(tmp_path, "worker", keep=10)
    left = sorted(p.name for p in tmp_path.glob("worker-*"))
    assert left == [f"worker-202612{n:02d}T030000.log" for n in range(3, 13)]
    assert (tmp_path / "api-20261201T030000.log").exists()  # another part's files are its own
    stamp = run_stamp(tmp_path)
    (tmp_path / f"api-{stamp}.log").write_text("")
    assert run_stamp(tmp_path) in (f"{stamp}-2", run_stamp(tmp_path))  # the same second: a new name
