"""`sleeplm up` as a user runs it: one command, beds visible through the API, Ctrl-C leaves nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from plumbing.broker import free_port
from psg.captions import MODALITIES
from tests.live.conftest import wait_until
from tests.live.helpers import beds_of_up

BEDS, EPOCHS = 2, 6


def _processes_of(data_dir: Path, broker_port: str | None) -> list[int]:
    """PIDs whose environment names ``data_dir`` (the parts) or whose command line is our broker."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if f"SLEEPLM_DATA_DIR={data_dir}".encode() in environ or (
            broker_port and b"tansu" in cmdline and f":{broker_port}".encode() in cmdline
        ):
            pids.append(int(entry.name))
    return pids


def test_up_serves_every_bed_and_sigint_leaves_no_process(tmp_path: Path) -> None:
    data_dir = (tmp_path / "data").resolve()
    port = free_port()
    env = {**os.environ, "SLEEPLM_APP_ID": f"up-{tmp_path.name[-10:]}"}
    env.pop("SLEEPLM_KAFKA", None)
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sleeplm",
            "up",
            "--beds",
            str(BEDS),
            "--speed",
            "20",
            "--hours",
            "0.05",
            "--nights",
            "1",
            "--api-port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}"
    banner: list[str] = []
    token_file = data_dir / "admin.token"
    auth: dict[str, str] = {}
    try:

        def ready() -> bool:
            beds = beds_of_up(launcher, api, token_file, auth)
            if beds is None or len(beds) < BEDS:
                return False
            counts = [
                len(httpx.get(f"{api}/api/beds/{b['bed_id']}/epochs", timeout=2, headers=auth).json()) for b in beds
            ]
            return all(c >= EPOCHS for c in counts)

        wait_until(ready, 120, f"{BEDS} beds with {EPOCHS} epochs through the API")
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"  # the local admin token: owner only
        assert httpx.get(f"{api}/api/beds", timeout=2).status_code == 401
        for bed in httpx.get(f"{api}/api/beds", timeout=2, headers=auth).json():
            epochs = httpx.get(
                f"{api}/api/beds/{bed['bed_id']}/epochs", params={"since": 0, "limit": 100}, headers=auth
            ).json()
            assert [e["epoch"] for e in epochs] == list(range(EPOCHS))
            for epoch in epochs:
                assert epoch["stage"] in {"W", "N1", "N2", "N3", "R", "?"}
                assert set(epoch["captions"]) == set(MODALITIES) and all(epoch["captions"].values())
        metrics = httpx.get(f"{api}/metrics", timeout=5, headers=auth).text
        assert "sleeplm_epoch_latency_seconds_bucket" in metrics
        count = [line for line in metrics.splitlines() if line.startswith("sleeplm_epoch_latency_seconds_count")]
        assert count and float(count[0].split()[-1]) >= BEDS * EPOCHS
    finally:
        launcher.send_signal(signal.SIGINT)
        out, _ = launcher.communicate(timeout=60)
        banner = out.splitlines()
    broker_line = next((line for line in banner if "broker" in line and "127.0.0.1:" in line), "")
    broker_port = broker_line.rsplit(":", 1)[-1].strip() if broker_line else None
    assert launcher.returncode == 0, "\n".join(banner)
    assert "stopped" in banner[-1]
    assert _processes_of(data_dir, broker_port) == []
