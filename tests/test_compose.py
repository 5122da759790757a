"""The scale-out deployment file is valid compose (checked by Debian's docker-compose when installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_docker_compose_config_is_valid() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for service in ("kafka", "postgres", "topics", "worker", "bridge", "api"):
        assert f"  {service}:" in result.stdout


def test_long_running_services_have_healthchecks_and_state_has_volumes() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("kafka", "postgres", "worker", "bridge", "api", "prometheus", "grafana"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    mounts = {name: [str(v).split(":")[0] for v in services[name].get("volumes", [])] for name in services}
    for name, volume in (
        ("kafka", "kafka-data"),
        ("postgres", "pg-data"),
        ("bridge", "bridge-spool"),
        ("prometheus", "prometheus-data"),
        ("grafana", "grafana-data"),
    ):
        assert volume in mounts[name] and volume in compose["volumes"], f"{name} keeps no state in {volume}"
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert published and all(str(p).startswith("127.0.0.1:") for p in published), "publish on loopback only"
