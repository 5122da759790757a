"""One precedence for every command (issue 14): a flag on the command line, else the environment
(``SLEEPLM_*``), else a ``.env`` file, else the default.

Each command family is run through the real CLI (``sleeplm.cli.app``) with the function that would start the
heavy part (the launcher, the worker, the bridge, uvicorn, the benchmark) replaced by one that records the
settings it was given; the offline ``token`` and ``report --bed`` run for real on a SQLite store. ``up`` is
also run as a process against a port taken by the environment's setting: its pre-flight names that port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sleeplm.cli import app

SETTING_VARS = (
    "SLEEPLM_API_PORT",
    "SLEEPLM_API_HOST",
    "SLEEPLM_DATA_DIR",
    "SLEEPLM_KAFKA",
    "SLEEPLM_RUNTIME",
    "SLEEPLM_PARTITIONS",
    "SLEEPLM_DB_URL",
    "SLEEPLM_METRICS_PORT",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting from the caller's shell or a ``.env`` in the checkout; no umask change in the test process."""
    for name in SETTING_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # pydantic-settings reads .env from the working directory
    monkeypatch.setattr("plumbing.settings.make_private", lambda data_dir: None)


def _run(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


# --- live commands -----------------------------------------------------------------------------------------


@pytest.fixture
def up_settings(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    seen: list[Any] = []

    def fake_run_up(settings: Any, options: Any) -> int:
        seen.append(settings)
        return 0

    monkeypatch.setattr("operations.launcher.run_up", fake_run_up)
    return seen


def test_up_takes_port_and_data_dir_from_the_environment(
    up_settings: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLEEPLM_API_PORT", "8123")
    monkeypatch.setenv("SLEEPLM_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("SLEEPLM_KAFKA", "kafka.example:9092")
    _run("up")
    settings = up_settings[-1]
    assert settings.api_port == 8123 and settings.data_dir == tmp_path / "from-env"
    assert settings.kafka == "kafka.example:9092"


def test_up_flags_win_over_the_environment(
    up_settings: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLEEPLM_API_PORT", "8123")
    monkeypatch.setenv("SLEEPLM_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("SLEEPLM_KAFKA", "kafka.example:9092")
    _run("up", "--api-port", "8200", "--data-dir", str(tmp_path / "from-flag"), "--broker", "other:9092")
    settings = up_settings[-1]
    assert settings.api_port == 8200 and settings.data_dir == tmp_path / "from-flag" and settings.kafka == "other:9092"


def test_up_defaults_and_the_dotenv_file_below_the_environment(
    up_settings: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run("up")
    assert up_settings[-1].api_port == 8000 and up_settings[-1].data_dir == Path("sleeplm-data")
    (tmp_path / ".env").write_text("SLEEPLM_API_PORT=8124\nSLEEPLM_DATA_DIR=dotenv-data\n")
    _run("up")
    assert up_settings[-1].api_port == 8124 and up_settings[-1].data_dir == Path("dotenv-data")
    monkeypatch.setenv("SLEEPLM_API_PORT", "8125")  # the environment over .env
    _run("up")
    assert up_settings[-1].api_port == 8125 and up_settings[-1].data_dir == Path("dotenv-data")
    _run("up", "--api-port", "8126")  # and the flag over both
    assert up_settings[-1].api_port == 8126


def test_worker_runtime_flag_over_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[Any] = []
    monkeypatch.setattr("stream_agents.worker.run_worker", lambda settings, **kw: seen.append(settings))
    monkeypatch.setenv("SLEEPLM_RUNTIME", "rules")
    monkeypatch.setenv("SLEEPLM_DATA_DIR", str(tmp_path / "worker-data"))
    _run("worker")
    assert seen[-1].runtime == "rules" and seen[-1].data_dir == tmp_path / "worker-data"
    _run("worker", "--runtime", "sleeplm")
    assert seen[-1].runtime == "sleeplm"


def test_bridge_reads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[Any] = []
    monkeypatch.setattr("device_bridges.bridge.run_bridge", lambda settings, **kw: seen.append(settings))
    # the bridge's log set-up would take over this process's stderr; LSLAPICFG is restored after the test
    monkeypatch.setattr("plumbing.logs.route_native_stderr", lambda: None)
    monkeypatch.setattr("plumbing.logs.configure_part_logging", lambda level: None)
    monkeypatch.setenv("LSLAPICFG", os.environ.get("LSLAPICFG", "device_bridges/lsl_api.cfg"))
    monkeypatch.setenv("SLEEPLM_KAFKA", "kafka.example:9092")
    monkeypatch.setenv("SLEEPLM_PARTITIONS", "12")
    _run("bridge")
    assert seen[-1].kafka == "kafka.example:9092" and seen[-1].partitions == 12


def test_up_preflight_sees_the_port_the_environment_names(tmp_path: Path) -> None:
    """The real command, no part started: the port from SLEEPLM_API_PORT is the one checked."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "SLEEPLM_API_PORT": str(port), "SLEEPLM_DATA_DIR": str(tmp_path / "data")}
        for name in ("SLEEPLM_KAFKA", "SLEEPLM_API_HOST"):
            env.pop(name, None)
        run = subprocess.run(
            [sys.executable, "-m", "sleeplm", "up"], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path
        )
    assert run.returncode == 2, run.stderr
    assert f"port {port}" in run.stderr and "--api-port" in run.stderr and "SLEEPLM_API_PORT" in run.stderr
    assert (tmp_path / "data").is_dir()  # the data dir of the environment, checked too


# --- API ----------------------------------------------------------------------------------------------------


def test_api_host_and_port_flag_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    monkeypatch.setattr("dashboards.api.run_api", lambda settings=None: seen.append(settings))
    monkeypatch.setenv("SLEEPLM_API_PORT", "8123")
    monkeypatch.setenv("SLEEPLM_API_HOST", "127.0.0.2")
    _run("api")
    assert (seen[-1].api_host, seen[-1].api_port) == ("127.0.0.2", 8123)
    _run("api", "--port", "8200", "--host", "127.0.0.3")
    assert (seen[-1].api_host, seen[-1].api_port) == ("127.0.0.3", 8200)


# --- offline commands ------------------------------------------------------------------------------------------


def test_token_data_dir_flag_over_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLEEPLM_DATA_DIR", str(tmp_path / "env-store"))
    (tmp_path / "env-store").mkdir()
    (tmp_path / "flag-store").mkdir()
    _run("token", "create", "--role", "viewer", "--name", "from-env")
    assert (tmp_path / "env-store" / "sleeplm.db").is_file()
    _run("token", "create", "--role", "viewer", "--name", "from-flag", "--data-dir", str(tmp_path / "flag-store"))
    assert (tmp_path / "flag-store" / "sleeplm.db").is_file()
    assert "from-env" in _run("token", "list").output and "from-flag" not in _run("token", "list").output
    assert "from-flag" in _run("token", "list", "--data-dir", str(tmp_path / "flag-store")).output


def test_report_bed_store_flag_over_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLEEPLM_DATA_DIR", str(tmp_path / "env-store"))
    runner = CliRunner()
    by_env = runner.invoke(app, ["report", "--bed", "bed-01", "--out", str(tmp_path / "out")])
    assert by_env.exit_code != 0 and str(tmp_path / "env-store" / "sleeplm.db") in str(by_env.exception)
    by_flag = runner.invoke(
        app, ["report", "--bed", "bed-01", "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path / "flag-store")]
    )
    assert by_flag.exit_code != 0 and str(tmp_path / "flag-store" / "sleeplm.db") in str(by_flag.exception)


def test_bench_stream_flag_environment_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[Any] = []

    class Result:
        def to_dict(self) -> dict:
            return {}

    def fake_run_bench(options: Any, progress: bool = True) -> Result:
        seen.append(options)
        return Result()

    monkeypatch.setattr("operations.bench_stream.run_bench", fake_run_bench)
    _run("bench", "stream")
    assert (seen[-1].partitions, seen[-1].data_dir, seen[-1].runtime) == (8, None, None)  # its own defaults
    monkeypatch.setenv("SLEEPLM_PARTITIONS", "3")
    monkeypatch.setenv("SLEEPLM_DATA_DIR", str(tmp_path / "bench-env"))
    monkeypatch.setenv("SLEEPLM_RUNTIME", "rules")
    _run("bench", "stream")
    assert (seen[-1].partitions, seen[-1].data_dir, seen[-1].runtime) == (3, tmp_path / "bench-env", "rules")
    _run("bench", "stream", "--partitions", "5", "--data-dir", str(tmp_path / "bench-flag"), "--runtime", "sleeplm")
    assert (seen[-1].partitions, seen[-1].data_dir, seen[-1].runtime) == (5, tmp_path / "bench-flag", "sleeplm")
