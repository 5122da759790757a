"""Logs a technologist can read at 3 a.m.: one line format for every part, one file per part per run.

* Every line starts with the wall time in ISO 8601 with the UTC offset (``2026-12-06T03:12:45.118+01:00``),
  then the level and the logger: ``... WARNING device_bridges.bridge: bed bed-01 stream exg: stream_lost``.
  A multi-line record (a traceback) repeats that prefix on each of its lines, so ``grep ERROR`` shows all
  of it and no line is without a time.
* ``sleeplm up`` (``LiveStack``) sends each part's stdout and stderr through a ``LogPump`` into
  ``<data-dir>/logs/<part>-<run>.log`` (``<run>``: the run's start, ``20261206T031245``), one file per part
  per run, with ``<part>.log`` a link to the newest. The pump stamps any line that has no time of its own
  (the embedded broker's, a crash's raw traceback), removes terminal escape codes and control characters,
  rolls a file over at ``MAX_LOG_BYTES`` (``BACKUPS`` old pieces) and keeps the last ``KEEP_RUNS`` runs.
* liblsl writes to the process's stderr (file descriptor 2) in its own format; ``route_native_stderr`` turns
  its lines into records of the ``liblsl`` logger (a bridge's "Stream transmission broke off" becomes INFO:
  an outlet closing is what a bed does on every stop and at the end of every night, and the bridge reports a
  stream that really stays away itself, as ``stream_lost``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

#: A line that already starts with an ISO 8601 date and time.
ISO_LINE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
#: Terminal escape sequences (CSI, OSC, two-character) and control characters other than tab.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")
MAX_LOG_BYTES = 20 * 2**20
BACKUPS = 2
KEEP_RUNS = 10
#: Lines of a part's own output kept in memory for the launcher's report when it dies.
TAIL_LINES = 40


def iso_time(timestamp: float | None = None) -> str:
    """``timestamp`` (default: now) as local ISO 8601 with milliseconds and the UTC offset."""
    when = dt.datetime.fromtimestamp(time.time() if timestamp is None else timestamp).astimezone()
    return when.isoformat(timespec="milliseconds")


def device_and_wall(device_s: float, wall_s: float | None = None, tolerance_s: float = 1.0) -> str:
    """``device time <ISO>`` for a log line about device time, when it differs from the wall clock (replays,
    ``--speed``, a device whose clock is off) by more than ``tolerance_s``; ``""`` otherwise (the line's own
    wall time then says it)."""
    wall_s = time.time() if wall_s is None else wall_s
    return "" if abs(device_s - wall_s) <= tolerance_s else f"device time {iso_time(device_s)}"


class IsoFormatter(logging.Formatter):
    """``<ISO time> <LEVEL> <logger>: <message>``; each further line of the record (a traceback) gets the same
    prefix, so every line of a log starts with its time."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"{iso_time(record.created)} {record.levelname} {record.name}: "
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return "\n".join(prefix + _clean(line) for line in text.splitlines() or [""])


def _clean(line: str) -> str:
    """One line as a log file should hold it: what a progress bar overwrote (carriage return) gone, no escape codes."""
    line = line.rstrip("\r")
    return _ESCAPES.sub("", line.rsplit("\r", 1)[-1])


def configure_part_logging(level: int | str = logging.WARNING) -> None:
    """Every record of this process on stderr in the one format (the launcher sends stderr to the part's file).

    kafka-python logs every refused connection at ERROR while a broker is down; the bridge's spool already
    reports the outage (and what it holds) once, so the client's own lines are muted.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(IsoFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)


def dict_config(level: str = "WARNING") -> dict[str, Any]:
    """The same as a ``logging.config.dictConfig`` dictionary (Faust's worker takes one)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"iso": {"()": IsoFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "iso", "stream": "ext://sys.stderr"}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {"kafka": {"level": "CRITICAL"}},
    }


# --- liblsl's lines -----------------------------------------------------------------------------------------

#: ``2026-12-06 11:58:03.685 (  13.066s) [R_sleeplm-bed-  ]      data_receiver.cpp:375    ERR| message``
_LSL_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \(\s*[\d.]+s\) \[[^\]]*\]\s+(\S+)\s+(\w+)\|\s?(.*)$")
_LSL_LEVELS = {"FATL": logging.CRITICAL, "ERR": logging.ERROR, "WARN": logging.WARNING, "INFO": logging.INFO}
#: liblsl messages that are part of normal operation for us: an inlet's outlet went away (a bed stopped or
#: began its next night; a stream that stays away is the bridge's own ``stream_lost`` warning).
LSL_EXPECTED = ("Stream transmission broke off",)


def lsl_record(line: str) -> tuple[int, str] | None:
    """(level, message) of one line liblsl wrote, None for any other line."""
    match = _LSL_LINE.match(line)
    if match is None:
        return None
    where, level, message = match.groups()
    if any(message.startswith(expected) for expected in LSL_EXPECTED):
        return logging.INFO, f"{message} ({where})"
    return _LSL_LEVELS.get(level, logging.DEBUG), f"{message} ({where})"


def route_native_stderr() -> None:
    """Read what native libraries (liblsl) write on file descriptor 2 and log it as ``liblsl`` records;
    Python's own ``sys.stderr`` keeps the original descriptor, so logging and a crash's traceback never wait
    on this. Call it before ``configure_part_logging`` and before liblsl loads."""
    if getattr(route_native_stderr, "done", False):
        return
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = open(original, "w", buffering=1, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
    route_native_stderr.done = True  # type: ignore[attr-defined]
    logger = logging.getLogger("liblsl")

    def pump() -> None:
        with open(read_end, "rb") as pipe:
            for raw in pipe:
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                record = lsl_record(line)
                if record is not None:
                    logger.log(*record)
                elif line.strip():
                    logger.warning("%s", line)

    threading.Thread(target=pump, name="native-stderr", daemon=True).start()


# --- one file per part per run --------------------------------------------------------------------------------


def run_stamp(logs: Path) -> str:
    """A name for this run's files, unique in ``logs``: the wall time to the second (``20261206T031245``),
    with ``-2``, ``-3`` ... when another run began in the same second."""
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    taken = {path.name for path in logs.glob(f"*-{stamp}*.log")} if logs.is_dir() else set()
    candidate, n = stamp, 1
    while any(name.endswith(f"-{candidate}.log") for name in taken):
        n += 1
        candidate = f"{stamp}-{n}"
    return candidate


def part_log_path(logs: Path, part: str, run: str) -> Path:
    return logs / f"{part}-{run}.log"


def prune_runs(logs: Path, part: str, keep: int = KEEP_RUNS) -> None:
    """Remove ``<part>-<run>.log`` files (and their rolled pieces) of all but the newest ``keep`` runs."""
    pattern = re.compile(rf"^{re.escape(part)}-(\d{{8}}T\d{{6}}(?:-\d+)?)\.log(?:\.\d+)?$")
    runs = sorted({m.group(1) for path in logs.iterdir() if (m := pattern.match(path.name))}, key=_run_key)
    for old in runs[:-keep] if keep > 0 else runs:
        for path in logs.glob(f"{part}-{old}.log*"):
            path.unlink(missing_ok=True)


def _run_key(run: str) -> tuple[str, int]:
    stamp, _, n = run.partition("-")
    return stamp, int(n or 1)


class LogPump:
    """A pipe whose write end a child process gets as stdout and stderr, and a thread that writes what comes
    through to ``path``: each line stamped (unless it has an ISO time of its own), stripped of escape codes,
    the file rolled over at ``max_bytes`` with ``backups`` pieces. ``tail`` keeps the last lines for the
    launcher's report of a part that died; ``<part>.log`` beside it links to the newest file."""

    def __init__(self, path: Path, max_bytes: int = MAX_LOG_BYTES, backups: int = BACKUPS) -> None:
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")  # noqa: SIM115 - closed by the thread at end of input
        self._read_end, self.write_end = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"log-{path.stem}", daemon=True)
        self._thread.start()
        _link_latest(path)

    def close_write_end(self) -> None:
        """Close this process's copy of the write end (after the child has it): end of input when it exits."""
        if self.write_end >= 0:
            os.close(self.write_end)
            self.write_end = -1

    def join(self, timeout_s: float = 2.0) -> None:
        self._thread.join(timeout_s)

    def _run(self) -> None:
        pending = b""
        try:
            with open(self._read_end, "rb", buffering=0) as pipe:
                while chunk := pipe.read(65536):
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    self._write(lines)
                if pending:
                    self._write([pending])
        finally:
            self._file.close()

    def _write(self, lines: list[bytes]) -> None:
        for raw in lines:
            line = _clean(raw.decode("utf-8", errors="replace"))
            if not line.strip():
                continue
            if not ISO_LINE.match(line):
                line = f"{iso_time()} {line}"
            self.tail.append(line)
            encoded = (line + "\n").encode()
            if self._file.tell() and self._file.tell() + len(encoded) > self.max_bytes:
                self._roll()
            self._file.write(encoded)
        self._file.flush()

    def _roll(self) -> None:
        self._file.close()
        for n in range(self.backups, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            newer = self.path.with_name(f"{self.path.name}.{n - 1}") if n > 1 else self.path
            if newer.exists():
                os.replace(newer, older)
        self._file = open(self.path, "ab")  # noqa: SIM115


def _link_latest(path: Path) -> None:
    """``<part>.log`` -> ``<part>-<run>.log`` (for ``tail -f logs/worker.log``); a regular file of that name
    (the one growing log of versions before per-run files) is kept as ``<part>.log.old``."""
    link = path.parent / (_part_of(path.name) + ".log")
    try:
        if link.is_symlink():
            link.unlink()
        elif link.exists():
            os.replace(link, link.with_name(link.name + ".old"))
        link.symlink_to(path.name)
    except OSError:
        pass


def _part_of(name: str) -> str:
    match = re.match(r"^(.*)-\d{8}T\d{6}(?:-\d+)?\.log$", name)
    return match.group(1) if match else name.removesuffix(".log")
