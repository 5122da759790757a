"""`sleeplm up` before and after (issue 14): its pre-flight refuses a taken port and a data dir it cannot write
in one line with exit 2 before anything starts, and a short real run leaves logs a technologist can read:
every line stamped with an ISO time, no terminal escape codes, no error after a clean stop, one file per part
per run (a second run writes new files and leaves the first run's alone)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from plumbing.broker import free_port
from tests.live.helpers import up_serving

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2} ")
RUN_FILE = re.compile(r"^(api|worker|bridge|beds|broker)-\d{8}T\d{6}(-\d+)?\.log$")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "SLEEPLM_APP_ID": f"logs-{tmp_path.name[-10:]}",
        "SLEEPLM_SEARCH_PRELOAD": "false",
        "SLEEPLM_RUNTIME": "rules",
    }  # what is logged does not depend on the model
    for name in ("SLEEPLM_KAFKA", "SLEEPLM_API_PORT", "SLEEPLM_DATA_DIR", "SLEEPLM_API_HOST"):
        env.pop(name, None)
    return env


def _up(*args: str, env: dict[str, str], timeout_s: float = 30) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "sleeplm", "up", *args], capture_output=True, text=True, env=env, timeout=timeout_s
    )
    return run, time.monotonic() - started


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_a_taken_api_port_is_one_line_and_exit_2_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run, took = _up("--api-port", str(port), "--data-dir", str(tmp_path / "data"), env=_env(tmp_path))
    assert run.returncode == 2, run.stdout + run.stderr
    assert took < 15, took
    line = _one_line(run.stderr)
    assert f"port {port}" in line and "already in use" in line and "--api-port" in line, line
    assert "sleeplm up:" not in run.stdout  # no banner
    assert not list((tmp_path / "data" / "logs").glob("*.log"))  # no part (and no broker) was started


def _read_only_dir(tmp_path: Path, kind: str) -> Path:
    if kind == "file":
        path = tmp_path / "not-a-dir"
        path.write_text("")
        return path
    if os.geteuid() != 0:
        path = tmp_path / "read-only"
        path.mkdir()
        path.chmod(0o500)
        return path
    # root writes through permission bits: a folder on a read-only file system instead
    path = Path("/sys/fs") / f"sleeplm-{uuid.uuid4().hex[:8]}"
    try:
        path.mkdir()
    except OSError:
        return path
    path.rmdir()
    pytest.skip("no read-only place to test with on this machine")


@pytest.mark.parametrize("kind", ["read-only", "file"])
def test_a_data_dir_that_cannot_be_written_is_one_line_and_exit_2(tmp_path: Path, kind: str) -> None:
    data_dir = _read_only_dir(tmp_path, kind)
    try:
        run, took = _up("--api-port", str(free_port()), "--data-dir", str(data_dir), env=_env(tmp_path))
    finally:
        if data_dir.is_dir() and kind != "file":
            data_dir.chmod(0o700)
    assert run.returncode == 2, run.stdout + run.stderr
    assert took < 15, took
    line = _one_line(run.stderr)
    assert f"data dir {data_dir}" in line and "--data-dir" in line and "SLEEPLM_DATA_DIR" in line, line


def _run_up_until(data_dir: Path, tmp_path: Path, epochs: int) -> str:
    """One short `sleeplm up` (1 bed at 20x): wait until the bed has ``epochs`` epochs through the API (or just
    the API answering, for 0), then Ctrl-C; its output. Fails unless it stopped cleanly (exit 0)."""
    with up_serving(data_dir, _env(tmp_path), 1, hours=0.05, epochs=epochs, listed=1 if epochs else 0) as up:
        pass
    assert up.launcher.returncode == 0, up.output
    return up.output


def _run_files(logs: Path) -> dict[str, str]:
    return {
        path.name: path.read_text(errors="replace")
        for path in logs.iterdir()
        if RUN_FILE.match(path.name) and not path.is_symlink()
    }


def test_logs_are_stamped_clean_and_one_file_per_part_per_run(tmp_path: Path) -> None:
    data_dir = (tmp_path / "data").resolve()
    logs = data_dir / "logs"
    _run_up_until(data_dir, tmp_path, epochs=3)
    first = _run_files(logs)
    assert {name.split("-")[0] for name in first} == {"api", "worker", "bridge", "beds", "broker"}, sorted(first)
    for name, text in first.items():
        assert "\x1b" not in text, f"escape code in {name}: {text[:300]!r}"
        for line in text.splitlines():
            assert ISO.match(line), f"{name}: line without an ISO time: {line!r}"
            assert not re.search(r" (ERROR|CRITICAL) |Traceback|\bERR\|", line), f"{name}: {line}"
        assert "Stream transmission broke off" not in text, name
    assert "Application shutdown complete" in first[next(n for n in first if n.startswith("api-"))]
    for part in ("api", "worker", "bridge", "beds", "broker"):  # <part>.log names this run's file
        assert (logs / f"{part}.log").resolve().name in first

    _run_up_until(data_dir, tmp_path, epochs=0)
    second = _run_files(logs)
    new = set(second) - set(first)
    assert {name.split("-")[0] for name in new} == {"api", "worker", "bridge", "beds", "broker"}, sorted(second)
    for name, text in first.items():
        assert second[name] == text, f"{name} was written to again by the second run"
    for part in ("api", "worker", "bridge", "beds", "broker"):
        assert (logs / f"{part}.log").resolve().name in new
    for name in new:
        assert all(ISO.match(line) for line in second[name].splitlines()), name
