"""`sleeplm up` as a user runs it: one command, beds visible through the API, Ctrl-C leaves nothing."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from benchmarks.up_process import broker_port, processes_of
from psg.captions import MODALITIES
from tests.live.helpers import up_serving

BEDS, EPOCHS = 2, 6


def test_up_serves_every_bed_and_sigint_leaves_no_process(tmp_path: Path) -> None:
    data_dir = (tmp_path / "data").resolve()
    env = {**os.environ, "SLEEPLM_APP_ID": f"up-{tmp_path.name[-10:]}"}
    env.pop("SLEEPLM_KAFKA", None)
    with up_serving(data_dir, env, BEDS, hours=0.05, epochs=EPOCHS) as up:
        api, auth = up.api, up.auth
        assert oct((data_dir / "admin.token").stat().st_mode & 0o777) == "0o600"  # the local admin token: owner only
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
    banner = up.output.splitlines()
    assert up.launcher.returncode == 0, up.output
    assert "stopped" in banner[-1]
    assert processes_of(data_dir, broker_port(banner)) == {}
