"""Prometheus and Grafana config: promtool accepts it, the alerts fire when they should, and the
dashboard's queries are valid PromQL against the provisioned datasource."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO_ROOT / "infra" / "prometheus"
GRAFANA_DIR = REPO_ROOT / "infra" / "grafana"
COMPOSE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
LOCAL_CONFIG = PROMETHEUS_DIR / "prometheus.local.yml"
DASHBOARD = GRAFANA_DIR / "dashboards" / "platform.json"

# Every HTTP service of the design and its port (docs/architecture.md).
SERVICE_PORTS = {
    "ingest": 8000, "model-server": 8010, "experiments": 8020, "recommender": 8030, "fraud": 8040,
}


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not on PATH: `make setup` installs it (Debian package `prometheus`).",
            pytrace=False,
        )
    return subprocess.run([path, *map(str, args)], capture_output=True, text=True, timeout=60,
                          check=False)


def _yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def _targets(config: dict[str, Any]) -> dict[str, list[str]]:
    """job name -> its static targets."""
    return {job["job_name"]: [t for group in job["static_configs"] for t in group["targets"]]
            for job in config["scrape_configs"]}


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


@pytest.mark.parametrize("config", [COMPOSE_CONFIG, LOCAL_CONFIG], ids=lambda p: p.name)
def test_promtool_accepts_the_config(config: Path) -> None:
    result = promtool("check", "config", config)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "rule files found" in result.stdout  # the rules load with the config


def test_promtool_accepts_the_rules() -> None:
    rule_files = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
    assert rule_files

    result = promtool("check", "rules", *rule_files)

    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_rule_with_broken_promql(tmp_path: Path) -> None:
    """The control for the checks above: promtool does fail on a bad rule."""
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"alert": "Broken", "expr": "histogram_quantile(0.99, sum by (le) (rate(x[5m]))"}]}]}))

    result = promtool("check", "rules", broken)

    assert result.returncode != 0


def test_alerts_fire_exactly_when_their_unit_tests_say() -> None:
    result = promtool("test", "rules", PROMETHEUS_DIR / "tests" / "platform_test.yml")

    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_itself_and_every_service_every_15_seconds() -> None:
    config = _yaml(COMPOSE_CONFIG)
    targets = _targets(config)

    assert config["global"]["scrape_interval"] == "15s"
    assert "prometheus" in targets
    assert {job: targets[job] for job in SERVICE_PORTS} == {
        job: [f"{job}:{port}"] for job, port in SERVICE_PORTS.items()}


def test_local_config_differs_from_compose_only_in_hosts_and_stack_label() -> None:
    compose, local = _yaml(COMPOSE_CONFIG), _yaml(LOCAL_CONFIG)

    def on_loopback(target: str) -> str:
        return "127.0.0.1:" + target.rsplit(":", 1)[1]

    assert {job: [on_loopback(t) for t in ts] for job, ts in _targets(compose).items()} == (
        _targets(local))
    for config in (compose, local):
        del config["global"]["external_labels"]
        for job in config["scrape_configs"]:
            del job["static_configs"]
    assert compose == local


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each panel query becomes a recording rule, so that promtool parses it."""
    exprs = [target["expr"] for panel in _dashboard()["panels"] for target in panel["targets"]]
    rules = [{"record": f"dashboard:query_{i}", "expr": re.sub(r"\$__\w+", "1m", expr)}
             for i, expr in enumerate(exprs)]
    rule_file = tmp_path / "dashboard.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))

    result = promtool("check", "rules", rule_file)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout


def test_dashboard_shows_latency_against_both_budgets() -> None:
    dashboard = _dashboard()
    latency = next(p for p in dashboard["panels"] if "latency" in p["title"].lower())
    steps = latency["fieldConfig"]["defaults"]["thresholds"]["steps"]

    assert dashboard["title"] == "ML system design — platform"
    assert {step["value"] for step in steps} >= {0.05, 0.1}
    assert latency["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"
    assert any("_consumer_lag_records" in t["expr"]
               for p in dashboard["panels"] for t in p["targets"])


def test_dashboard_uses_the_provisioned_datasource() -> None:
    provisioned = _yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")
    datasource = provisioned["datasources"][0]
    panels = _dashboard()["panels"]
    used = {panel["datasource"]["uid"] for panel in panels} | {
        target["datasource"]["uid"] for panel in panels for target in panel["targets"]}

    assert used == {datasource["uid"]}
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["jsonData"]["timeInterval"] == _yaml(COMPOSE_CONFIG)["global"][
        "scrape_interval"]
