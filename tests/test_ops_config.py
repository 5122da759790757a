"""Operations config: the Grafana dashboard, its provisioning, the Prometheus scrape config and compose.

The dashboard is only useful if every query names a metric the live path really exports, so the
metric names are taken from ``plumbing.metrics`` itself (the registered families and the sample names
prometheus-client gives each type), never from a hand-kept list.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from plumbing.metrics import metrics
from tests.test_compose import ROOT

GRAFANA = ROOT / "dashboards" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "sleeplm-monitor.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "sleeplm.yml"
PROMETHEUS = ROOT / "dashboards" / "prometheus" / "prometheus.yml"

#: Sample-name suffixes prometheus-client exposes per metric type.
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def exported_names() -> set[str]:
    """Every sample name the live path's metrics expose (``sleeplm_samples_in_total``, ``..._bucket``...)."""
    names: set[str] = set()
    for metric in vars(metrics()).values():
        for family in metric.collect():
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def load_yaml(path: Path) -> Any:
    """PyYAML is only a transitive dependency (huggingface_hub), not a declared one: skip without it."""
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    return yaml.safe_load(path.read_text())


def dashboard_panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def test_exported_names_come_from_the_metrics_module() -> None:
    names = exported_names()
    for expected in ("sleeplm_samples_in_total", "sleeplm_consumer_lag", "sleeplm_epoch_latency_seconds_bucket"):
        assert expected in names


def test_every_dashboard_query_uses_real_metrics() -> None:
    names = exported_names()
    panels = dashboard_panels()
    assert len(panels) >= 8
    used: set[str] = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == "sleeplm-prometheus", panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            referenced = set(re.findall(r"\bsleeplm_\w+", target["expr"]))
            assert referenced, f"panel {panel['title']!r}: query {target['expr']!r} names no sleeplm metric"
            unknown = referenced - names
            assert not unknown, f"panel {panel['title']!r}: {sorted(unknown)} not defined in plumbing/metrics.py"
            used |= referenced
    for core in (
        "sleeplm_samples_in_total",
        "sleeplm_epochs_out_total",
        "sleeplm_epochs_stored_total",
        "sleeplm_dead_letters_total",
        "sleeplm_consumer_lag",
        "sleeplm_epoch_latency_seconds_bucket",
        "sleeplm_inference_batch_size_bucket",
        "sleeplm_alerts_total",
        "sleeplm_active_alerts",
        "sleeplm_beds",
    ):
        assert core in used, f"the dashboard does not show {core}"


def test_latency_panel_shows_p50_p95_p99_from_the_histogram() -> None:
    (panel,) = [p for p in dashboard_panels() if p["title"] == "End-to-end latency"]
    exprs = [t["expr"] for t in panel["targets"]]
    for q in ("0.5", "0.95", "0.99"):
        assert any(
            e.startswith(f"histogram_quantile({q}, ") and "sleeplm_epoch_latency_seconds_bucket" in e for e in exprs
        ), q


def test_dashboard_layout_is_well_formed() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "sleeplm-monitor" and board["schemaVersion"] >= 36
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]


def test_grafana_provisioning_points_at_the_dashboard_and_datasource() -> None:
    (source,) = load_yaml(DATASOURCES)["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == "sleeplm-prometheus"
    assert source["url"] == "http://prometheus:9090"
    (provider,) = load_yaml(PROVIDERS)["providers"]
    # the compose file mounts dashboards/grafana/dashboards at this path
    assert provider["options"]["path"] == "/etc/grafana/dashboards"
    compose = load_yaml(ROOT / "docker-compose.yml")
    mounts = compose["services"]["grafana"]["volumes"]
    assert "./dashboards/grafana/dashboards:/etc/grafana/dashboards:ro" in mounts
    assert "./dashboards/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


def test_prometheus_scrapes_the_api_metrics() -> None:
    config = load_yaml(PROMETHEUS)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api = jobs["sleeplm-api"]
    assert api.get("metrics_path", "/metrics") == "/metrics"
    assert ["api:8000"] == [t for c in api["static_configs"] for t in c["targets"]]
    # the API needs a token: the file the one-shot prometheus-token service writes into the shared volume
    assert api["authorization"] == {"type": "Bearer", "credentials_file": "/etc/prometheus/tokens/prometheus"}
    services = load_yaml(ROOT / "docker-compose.yml")["services"]
    assert "api-tokens:/etc/prometheus/tokens:ro" in services["prometheus"]["volumes"]
    assert "api-tokens:/tokens" in services["prometheus-token"]["volumes"]
    assert "--role viewer --name prometheus" in " ".join(services["prometheus-token"]["entrypoint"])
    workers = jobs["sleeplm-workers"]["dns_sd_configs"][0]
    assert workers["names"] == ["worker"] and workers["port"] == 9464
    assert services["worker"]["environment"]["SLEEPLM_METRICS_PORT"] == "9464"


def test_compose_ops_services_are_pinned_and_local() -> None:
    services = load_yaml(ROOT / "docker-compose.yml")["services"]
    for name, image in (("prometheus", "prom/prometheus:"), ("grafana", "grafana/grafana:")):
        service = services[name]
        assert service["image"].startswith(image) and not service["image"].endswith(":latest")
        assert "healthcheck" in service
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    env = services["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-change-me}"


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_docker_compose_config_includes_ops_services() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--services"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert {"prometheus", "grafana", "api"} <= set(result.stdout.split())
