"""``run_api`` in its own process (as ``sleeplm api`` runs it): SIGTERM/SIGINT with a live feed open
end it cleanly, exit status 0, within a couple of seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from plumbing.broker import free_port
from store import Store

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_api_returns_cleanly_on_a_signal_with_a_feed_open(tmp_path: Path, sig: signal.Signals, read_sse) -> None:
    port = free_port()
    with Store(f"sqlite:///{tmp_path / 'sleeplm.db'}") as store:
        token = store.create_token("test", "viewer")[0]
    code = (
        "from dashboards.api import run_api; from plumbing.settings import Settings; "
        f"run_api(Settings(_env_file=None, data_dir={str(tmp_path)!r}, api_port={port}, kafka=None)); "
        "print('run_api returned')"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLEEPLM_")}
    process = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
            time.sleep(0.1)
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.stream("GET", f"{url}/api/stream", timeout=10.0, headers=auth) as response:
            events = read_sse(response.iter_lines())
            next(events)
            started = time.monotonic()
            process.send_signal(sig)
            assert list(events) == []
        output, _ = process.communicate(timeout=10)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "run_api returned" in output
    assert took < 3.0
