"""Prometheus and Grafana config: promtool accepts it, the alerts fire when they should, and the
dashboard's queries are valid PromQL against the provisioned datasource that name only metrics
some service really exposes (so renaming a metric breaks this test, not a dashboard in silence)."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common.settings import PlatformSettings
from services.devstack.parts import stack_parts
from services.fraud.settings import FraudSettings
from tests.harness import REPO_ROOT
from tests.support.expositions import APPS, exposition, sample_labels

PROMETHEUS_DIR = REPO_ROOT / "infra" / "prometheus"
GRAFANA_DIR = REPO_ROOT / "infra" / "grafana"
COMPOSE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
LOCAL_CONFIG = PROMETHEUS_DIR / "prometheus.local.yml"
DASHBOARD = GRAFANA_DIR / "dashboards" / "platform.json"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*_test.yml"))

# Every HTTP service of the design and its port (docs/architecture.md).
SERVICE_PORTS = {
    "ingest": 8000, "model-server": 8010, "experiments": 8020, "recommender": 8030, "fraud": 8040,
}
# Each design's endpoint and its p99 budget in seconds (docs/architecture.md).
BUDGETS = {
    "recommender": ("GET", "/v1/recommendations/{user_id}", 0.1),
    "fraud": ("POST", "/v1/score", 0.05),
}
# What the dashboard must show (issue 8), each by a metric its queries name.
DASHBOARD_SHOWS = {
    "recommender stages": "recommender_stage_duration_seconds_bucket",
    "fraud stages": "fraud_stage_duration_seconds_bucket",
    "consumer lag": "_consumer_lag_records",
    "dead letters": "_consumer_events_total",
    "cache hit ratio": "recommender_cache_lookups_total",
    "decisions by action": "_decisions_total",
    "recommender fallbacks": "recommender_fallbacks_total",
    "fraud degradations": "_degraded_decisions_total",
    "A/B exposures": "_exposures_total",
}
# Jobs that run as several processes: locally one port each (`make run`), in compose one
# service scaled to replicas that Prometheus finds by DNS.
LOCAL_PORTS = {"fraud-stream": FraudSettings().fraud_stream_ports()}
# Series Prometheus makes itself, not a service.
PROMETHEUS_SERIES = {"up"}


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
    """job name -> its static targets, or name:port of each DNS name it resolves to targets."""
    return {job["job_name"]: [t for g in job.get("static_configs", []) for t in g["targets"]]
            + [f"{name}:{dns['port']}" for dns in job.get("dns_sd_configs", [])
               for name in dns["names"]]
            for job in config["scrape_configs"]}


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def _query_panels() -> list[dict[str, Any]]:
    """The panels that query Prometheus (rows only group them)."""
    return [panel for panel in _dashboard()["panels"] if panel["type"] != "row"]


def _dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in _query_panels() for target in panel["targets"]]


def _rules() -> list[dict[str, Any]]:
    return [rule for path in RULE_FILES for group in _yaml(path)["groups"]
            for rule in group["rules"]]


# --- which metrics a PromQL expression names: a tokenizer for the PromQL these files use -------

_TOKEN = re.compile(r"""
    "(?:\\.|[^"\\])*" | '(?:\\.|[^'\\])*'       # strings
  | \[[^\]]*\]                                  # range and subquery windows
  | [0-9][0-9.]*(?:[eE][+-]?[0-9]+)?[a-zA-Z]*   # numbers and durations
  | [A-Za-z_:][A-Za-z0-9_:]*                    # identifiers
  | =~ | !~ | != | == | >= | <= | \S            # operators and punctuation
""", re.VERBOSE)
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_NOT_METRICS = _LABEL_LISTS | {
    "offset", "bool", "and", "or", "unless", "inf", "nan",
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
    "topk", "quantile", "limitk", "limit_ratio",
}


@dataclass(frozen=True)
class Selector:
    """One vector selector: its metric name (None for `{__name__=~...}`) and label matchers."""

    name: str | None
    matchers: tuple[tuple[str, str, str], ...]  # (label, operator, value)


def _matchers(tokens: list[str], i: int) -> tuple[tuple[tuple[str, str, str], ...], int]:
    """The matchers of the `{...}` opening at tokens[i], and the index after its `}`."""
    found, i = [], i + 1
    while tokens[i] != "}":
        label, operator, value = tokens[i:i + 3]
        found.append((label, operator, ast.literal_eval(value)))
        i += 4 if tokens[i + 3] == "," else 3
    return tuple(found), i + 1


def selectors(expr: str) -> list[Selector]:
    """Every vector selector in `expr`; functions, aggregations and label lists are skipped."""
    tokens = _TOKEN.findall(re.sub(r"\$__\w+", "1m", expr))
    found, i = [], 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in _LABEL_LISTS and following == "(":
            i = tokens.index(")", i) + 1  # by (job, le): label names, not metrics
        elif token == "{":
            matchers, i = _matchers(tokens, i)
            found.append(Selector(None, matchers))
        elif _IDENTIFIER.fullmatch(token) and token not in _NOT_METRICS and following != "(":
            matchers, i = _matchers(tokens, i + 1) if following == "{" else ((), i + 1)
            found.append(Selector(token, matchers))
        else:
            i += 1
    return found


def unknown_references(expr: str, exposed: dict[str, set[str]], recorded: set[str]) -> list[str]:
    """What `expr` names that no service exposes: metric names, `__name__` patterns that match
    no exposed name, and label names the selected metrics do not carry."""
    problems = []
    for selector in selectors(expr):
        names = {selector.name} if selector.name else set(exposed)
        for label, operator, value in selector.matchers:
            if label == "__name__" and operator in ("=", "=~"):
                names &= {n for n in exposed if re.fullmatch(value, n)}
        if not names:
            problems.append(f"no exposed metric matches {selector}")
            continue
        if names & (recorded | PROMETHEUS_SERIES):
            continue
        if not names <= set(exposed):
            problems.append(f"{sorted(names - set(exposed))} is exposed by no service")
            continue
        carried = set().union(*(exposed[n] for n in names)) | {"__name__", "job", "instance"}
        problems += [f"{selector.name or 'a selector'} has no label {label!r}"
                     for label, _, _ in selector.matchers if label not in carried]
    return problems


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Every sample name any process of the design exposes -> its label names."""
    models = tmp_path_factory.mktemp("models")
    names: dict[str, set[str]] = {}
    for job in APPS:
        for name, labels in sample_labels(exposition(job, models)[1]).items():
            names.setdefault(name, set()).update(labels)
    return names


@pytest.mark.parametrize("config", [COMPOSE_CONFIG, LOCAL_CONFIG], ids=lambda p: p.name)
def test_promtool_accepts_the_config(config: Path) -> None:
    result = promtool("check", "config", config)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "rule files found" in result.stdout  # the rules load with the config


def test_promtool_accepts_the_rules() -> None:
    assert RULE_FILES

    result = promtool("check", "rules", *RULE_FILES)

    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_rule_with_broken_promql(tmp_path: Path) -> None:
    """The control for the checks above: promtool does fail on a bad rule."""
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"alert": "Broken", "expr": "histogram_quantile(0.99, sum by (le) (rate(x[5m]))"}]}]}))

    result = promtool("check", "rules", broken)

    assert result.returncode != 0


@pytest.mark.parametrize("rule_test", RULE_TESTS, ids=lambda p: p.name)
def test_alerts_fire_exactly_when_their_unit_tests_say(rule_test: Path) -> None:
    result = promtool("test", "rules", rule_test)

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_that_makes_it_fire() -> None:
    alerts = {rule["alert"] for rule in _rules() if "alert" in rule}
    fired = {case["alertname"] for path in RULE_TESTS for test in _yaml(path)["tests"]
             for case in test.get("alert_rule_test", []) if case["exp_alerts"]}

    assert alerts - fired == set()
    assert {path.name for path in RULE_TESTS} == {f"{p.stem}_test.yml" for p in RULE_FILES}


def _route_selector(job: str) -> str:
    method, route, _ = BUDGETS[job]
    return f'method="{method}", route="{route}"'


@pytest.mark.parametrize("job", sorted(BUDGETS))
def test_each_designs_budget_alert_watches_its_real_route_at_its_budget(
        job: str, tmp_path: Path) -> None:
    method, route, budget = BUDGETS[job]
    exprs = [" ".join(rule["expr"].split()) for rule in _rules() if "alert" in rule]
    paths = APPS[job](tmp_path).openapi()["paths"]

    assert method.lower() in paths.get(route, {})  # the route label is the service's template
    assert any(f'job="{job}", {_route_selector(job)}' in e and e.endswith(f"> {budget}")
               for e in exprs)


def test_prometheus_scrapes_itself_and_every_service_every_15_seconds() -> None:
    config = _yaml(COMPOSE_CONFIG)
    targets = _targets(config)

    assert config["global"]["scrape_interval"] == "15s"
    assert "prometheus" in targets
    assert {job: targets[job] for job in SERVICE_PORTS} == {
        job: [f"{job}:{port}"] for job, port in SERVICE_PORTS.items()}


def test_local_config_differs_from_compose_only_in_hosts_and_stack_label() -> None:
    """A compose service scaled to replicas (found by DNS) is, locally, one process per port."""
    compose, local = _yaml(COMPOSE_CONFIG), _yaml(LOCAL_CONFIG)
    scaled = {job["job_name"] for job in compose["scrape_configs"] if "dns_sd_configs" in job}

    def on_loopback(job: str, target: str) -> list[str]:
        if job in scaled:
            return [f"127.0.0.1:{port}" for port in LOCAL_PORTS[job]]
        return ["127.0.0.1:" + target.rsplit(":", 1)[1]]

    assert scaled == set(LOCAL_PORTS)
    assert {job: [t for target in ts for t in on_loopback(job, target)]
            for job, ts in _targets(compose).items()} == _targets(local)
    for config in (compose, local):
        del config["global"]["external_labels"]
        for job in config["scrape_configs"]:
            job.pop("static_configs", None)
            job.pop("dns_sd_configs", None)
    assert compose == local


def test_prometheus_scrapes_every_fraud_scorer_that_make_run_starts() -> None:
    parts = {part.address for part in stack_parts(PlatformSettings())
             if part.name.startswith("fraud-stream")}

    assert {f"http://{target}" for target in _targets(_yaml(LOCAL_CONFIG))["fraud-stream"]} == (
        parts)
    assert len(parts) == FraudSettings().fraud_stream_processes > 1


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each panel query becomes a recording rule, so that promtool parses it."""
    exprs = _dashboard_exprs()
    rules = [{"record": f"dashboard:query_{i}", "expr": re.sub(r"\$__\w+", "1m", expr)}
             for i, expr in enumerate(exprs)]
    rule_file = tmp_path / "dashboard.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))

    result = promtool("check", "rules", rule_file)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout


@pytest.mark.parametrize("job", sorted(BUDGETS))
def test_dashboard_shows_each_designs_percentiles_against_its_budget_line(job: str) -> None:
    budget = BUDGETS[job][2]
    [panel] = [p for p in _query_panels() if "latency" in p["title"].lower()
               and any(_route_selector(job) in t["expr"] for t in p["targets"])]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    quantiles = {re.match(r"histogram_quantile\(([\d.]+),", t["expr"]).group(1)  # type: ignore[union-attr]
                 for t in panel["targets"]}

    assert quantiles == {"0.5", "0.95", "0.99"}
    assert [step["value"] for step in steps[1:]] == [budget]
    assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"
    assert panel["fieldConfig"]["defaults"]["unit"] == "s"


@pytest.mark.parametrize("what", sorted(DASHBOARD_SHOWS))
def test_dashboard_shows_what_the_design_needs_watched(what: str) -> None:
    assert any(DASHBOARD_SHOWS[what] in expr for expr in _dashboard_exprs()), what


def test_every_metric_the_dashboard_and_rules_query_is_exposed_by_a_service(
        exposed: dict[str, set[str]]) -> None:
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    exprs = _dashboard_exprs() + [rule["expr"] for rule in _rules()]

    problems = {expr: found for expr in exprs
                if (found := unknown_references(expr, exposed, recorded))}

    assert problems == {}
    assert len([s for expr in exprs for s in selectors(expr)]) > len(exprs)  # it did look


@pytest.mark.parametrize(("expr", "problem"), [
    ("rate(recommender_stage_seconds_bucket[5m])", "exposed by no service"),
    ('sum({__name__=~"fraud_stages_.+"})', "no exposed metric matches"),
    ('rate(recommender_fallbacks_total{dep="model"}[5m])', "has no label 'dep'"),
    ('sum by (job) (rate({__name__=~".+_decisions_total", verdict="x"}[5m]))', "no label"),
])
def test_a_renamed_metric_or_label_is_caught(
        exposed: dict[str, set[str]], expr: str, problem: str) -> None:
    """The control for the test above: the checker does see what no service exposes."""
    assert unknown_references(
        "rate(recommender_fallbacks_total[5m]) / " + expr, exposed, set()) != []
    assert problem in " ".join(unknown_references(expr, exposed, set()))


def test_dashboard_uses_the_provisioned_datasource() -> None:
    provisioned = _yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")
    datasource = provisioned["datasources"][0]
    panels = _query_panels()
    used = {panel["datasource"]["uid"] for panel in panels} | {
        target["datasource"]["uid"] for panel in panels for target in panel["targets"]}

    assert used == {datasource["uid"]}
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["jsonData"]["timeInterval"] == _yaml(COMPOSE_CONFIG)["global"][
        "scrape_interval"]
