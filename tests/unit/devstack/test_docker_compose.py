"""docker-compose.yml: valid against the Compose specification, and the same stack as `make run`.

No Docker engine is needed. tests/compose/ is a small Go program that loads the file with
compose-go, the loader inside `docker compose`, which checks it against the specification's
JSON schema; the other tests read the YAML and compare it with the local run's configuration.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import shutil
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common.bus.topics import platform_topics
from services.common.kafka_access import KafkaAccess
from services.common.settings import PlatformSettings
from services.devstack import cluster as cluster_module
from services.devstack.__main__ import kafka_acls, kafka_secrets
from services.devstack.balancer import balanced_services
from services.devstack.cluster import (
    KAFKA_ADMIN_USERNAME,
    KAFKA_TLS_FOLDER,
    KAFKA_USERS_FOLDER,
    SHARED_KAFKA_USERNAME,
    ClusterSettings,
    make_kafka_user_passwords,
)
from services.devstack.kafka_principals import PRINCIPALS
from services.fraud.settings import FraudSettings
from services.recommender.settings import RecommenderSettings
from tests.harness import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
VALIDATOR_DIR = REPO_ROOT / "tests" / "compose"
KAFKA_DIR = REPO_ROOT / "infra" / "kafka"

# Host ports of the design (docs/architecture.md), and Locust's web UI.
DESIGN_PORTS = {
    "redis": 6379, "postgres": 5433, "kafka": 9092, "prometheus": 9090, "grafana": 3000,
    "ingest": 8000, "model-server": 8010, "experiments": 8020, "recommender": 8030, "fraud": 8040,
    "console": 8060, "locust-master": 8089,
}
INFRA_SERVICES = ("redis", "postgres", "kafka", "prometheus", "grafana")
PROMETHEUS_CONFIG = REPO_ROOT / "infra" / "prometheus" / "prometheus.yml"
DOCKERFILE = REPO_ROOT / "infra" / "docker" / "Dockerfile"

# Template keys that differ on purpose: addresses, paths, and the quorum (see the comments in
# docker-compose.yml and docs/adr/0001-compose-mirrors-the-local-stack.md).
KAFKA_KEYS_THAT_DIFFER = {
    "listeners", "advertised.listeners", "listener.security.protocol.map",
    "controller.quorum.bootstrap.servers", "log.dirs",
}


class ComposeCheck:
    """The Go validator, built on first use so that a missing Go fails the test that needs it."""

    def __init__(self, build_dir: Path) -> None:
        self._binary = build_dir / "composecheck"
        self._built = False

    def _build(self) -> None:
        go = shutil.which("go")
        if go is None:
            pytest.fail(
                "Go is not on PATH. The Compose validator (tests/compose/) is a Go program built "
                "on compose-go; install Go 1.24 or newer (https://go.dev/dl/) and run again.",
                pytrace=False,
            )
        build = subprocess.run(
            [go, "build", "-buildvcs=false", "-o", str(self._binary), "."],
            cwd=VALIDATOR_DIR, capture_output=True, text=True, timeout=280, check=False,
        )
        if build.returncode != 0:
            pytest.fail(f"building tests/compose failed:\n{build.stderr}", pytrace=False)
        self._built = True

    def run(self, compose_file: Path) -> subprocess.CompletedProcess[str]:
        if not self._built:
            self._build()
        return subprocess.run(
            [str(self._binary), str(compose_file)],
            capture_output=True, text=True, timeout=60, check=False,
        )


@pytest.fixture(scope="module")
def composecheck(tmp_path_factory: pytest.TempPathFactory) -> ComposeCheck:
    return ComposeCheck(tmp_path_factory.mktemp("composecheck"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return loaded


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def _published(port: str | int | dict[str, Any],
               variables: dict[str, str] | None = None) -> tuple[str, int]:
    """(host ip, host port) of one `ports` entry, short ("127.0.0.1:9092:9094") or long syntax;
    its variables from `variables` (an --env-file), else their defaults (a fresh clone)."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), int(port["published"])
    parts = _interpolate(str(port), variables or {}).split("/")[0].split(":")
    if len(parts) == 1:
        pytest.fail(f"port {port!r} publishes a random host port; the design fixes each port")
    host_ip = parts[0] if len(parts) == 3 else ""
    return host_ip, int(parts[-2])


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source of each short-syntax volume ("./src:/target:ro")."""
    return {entry.split(":")[1]: entry.split(":")[0] for entry in service.get("volumes", [])}


def _kafka_template() -> dict[str, str]:
    """The local broker's server.properties, with @PARTITIONS@ filled in from env.sh's default."""
    partitions = re.search(r'KAFKA_PARTITIONS="\$\{KAFKA_PARTITIONS:-(\d+)\}"',
                           (KAFKA_DIR / "env.sh").read_text(encoding="utf-8"))
    assert partitions, "infra/kafka/env.sh no longer sets a default KAFKA_PARTITIONS"
    properties = {}
    for line in (KAFKA_DIR / "server.properties.template").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            properties[key.strip()] = value.strip().replace("@PARTITIONS@", partitions.group(1))
    return properties


def _kafka_property(env_name: str) -> str:
    """The apache/kafka image's rule: KAFKA_A_B -> a.b, `__` -> `_`, `___` -> `-`."""
    name = env_name.removeprefix("KAFKA_").lower()
    return name.replace("___", "-").replace("__", "\0").replace("_", ".").replace("\0", "_")


def test_compose_file_is_valid_against_the_compose_specification(
    composecheck: ComposeCheck, compose: dict[str, Any]
) -> None:
    result = composecheck.run(COMPOSE_FILE)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == sorted(_services(compose))


def test_validator_accepts_an_unchanged_copy(composecheck: ComposeCheck, tmp_path: Path,
                                             compose: dict[str, Any]) -> None:
    """The control for the next test: rewriting the file through PyYAML keeps it valid."""
    copy = tmp_path / "docker-compose.yml"
    copy.write_text(yaml.safe_dump(compose, sort_keys=False), encoding="utf-8")

    result = composecheck.run(copy)

    assert result.returncode == 0, result.stderr


def _add_unknown_top_level_key(compose: dict[str, Any]) -> None:
    compose["service"] = {"typo": {"image": "redis"}}


def _publish_ports_as_a_mapping(compose: dict[str, Any]) -> None:
    compose["services"]["redis"]["ports"] = {"6379": 6379}


def _wait_for_an_unknown_condition(compose: dict[str, Any]) -> None:
    compose["services"]["grafana"]["depends_on"]["prometheus"]["condition"] = "service_ready"


def _depend_on_a_missing_service(compose: dict[str, Any]) -> None:
    compose["services"]["grafana"]["depends_on"] = {"prometheus-typo": {
        "condition": "service_healthy"}}


def _use_an_undeclared_named_volume(compose: dict[str, Any]) -> None:
    del compose["volumes"]["redis-data"]


@pytest.mark.parametrize(("breakage", "error"), [
    (_add_unknown_top_level_key, "additional properties 'service' not allowed"),
    (_publish_ports_as_a_mapping, "services.redis.ports must be a array"),
    (_wait_for_an_unknown_condition, "condition value must be one of"),
    (_depend_on_a_missing_service, 'depends on undefined service "prometheus-typo"'),
    (_use_an_undeclared_named_volume, "redis-data"),
])
def test_validator_rejects_a_file_that_breaks_the_specification(
    composecheck: ComposeCheck, tmp_path: Path, compose: dict[str, Any],
    breakage: Callable[[dict[str, Any]], None], error: str,
) -> None:
    broken = yaml.safe_load(yaml.safe_dump(compose))
    breakage(broken)
    copy = tmp_path / "docker-compose.yml"
    copy.write_text(yaml.safe_dump(broken, sort_keys=False), encoding="utf-8")

    result = composecheck.run(copy)

    assert result.returncode != 0, f"accepted a broken file:\n{result.stdout}"
    assert error in result.stderr


def test_compose_runs_the_infrastructure_of_the_design(compose: dict[str, Any]) -> None:
    assert set(INFRA_SERVICES) <= set(_services(compose))


def _one_shot(service: dict[str, Any]) -> bool:
    """A job (the trainer) that runs to completion; services depend on it finishing."""
    return str(service.get("restart", "")) == "no"


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        if _one_shot(service):
            continue
        healthcheck = service.get("healthcheck", {})
        assert healthcheck.get("test"), f"{name} has no healthcheck"
        assert not healthcheck.get("disable", False), f"{name} disables its healthcheck"


# The one dependency that waits for a start only: the PostgreSQL standby is healthy once its
# base backup is in, which waits for the checkpoint the formation asks the primary for.
STARTED_ON_PURPOSE = {("postgres-formation", "postgres-2"): "service_started"}


def test_dependencies_wait_until_healthy(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        # The list form means `service_started`: the dependency may not answer yet.
        assert isinstance(depends_on, dict), f"{name}: depends_on needs the long form"
        for dependency, how in depends_on.items():
            expected = ("service_completed_successfully" if _one_shot(services[dependency])
                        else STARTED_ON_PURPOSE.get((name, dependency), "service_healthy"))
            assert how.get("condition") == expected, f"{name} -> {dependency}"
    assert "prometheus" in services["grafana"]["depends_on"]


def test_published_ports_are_the_design_ports(compose: dict[str, Any]) -> None:
    balanced = {f"{s.name}-2" for s in balanced_services()} | {"balancer"}
    for name, service in _services(compose).items():
        ports = service.get("ports", [])
        if not ports or name in balanced:
            continue  # workers publish nothing; the cluster profile's balancer: the next test
        assert name in DESIGN_PORTS, f"{name} publishes {ports} but has no design port"
        assert [_published(port)[1] for port in ports] == [DESIGN_PORTS[name]], name
    for name in INFRA_SERVICES:
        assert _services(compose)[name].get("ports"), f"{name} publishes no port"


def _unplaced(service: dict[str, Any]) -> dict[str, Any]:
    """A service's definition without where it is published, in which profile and on which
    volumes (an instance's state is its own: ingest's spool)."""
    return {k: v for k, v in service.items() if k not in ("ports", "profiles", "volumes")}


def test_the_cluster_profile_balances_on_the_host_ports_of_make_run_cluster(
        compose: dict[str, Any]) -> None:
    """With cluster.env the balancer takes the public ports and each balanced service's two
    instances sit on the instance ports `make run-cluster` gives them, behind the committed
    HAProxy configuration (tests/unit/test_balancer.py holds it to the generator)."""
    services, variables = _services(compose), _cluster_env()
    balancer = services["balancer"]
    assert balancer["profiles"] == ["cluster"]
    assert sorted(_published(p)[1] for p in balancer["ports"]) == sorted(
        s.public_port for s in balanced_services())
    assert "./infra/compose/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in \
        balancer["volumes"]
    for service in balanced_services():
        first, second = services[service.name], services[f"{service.name}-2"]
        assert second["profiles"] == ["cluster"] and "profiles" not in first
        assert [_published(p, variables)[1] for p in first["ports"]] == \
            [service.instance_ports[0]]
        assert [_published(p, variables)[1] for p in second["ports"]] == \
            [service.instance_ports[1]]
        assert [_published(p)[1] for p in first["ports"]] == [service.public_port]
        # the second instance is the first one's definition (a YAML merge), not a copy to drift
        assert _unplaced(second) == _unplaced(first)
        assert set(_mounts(first)) == set(_mounts(second))  # the same mounts, own volumes
        assert balancer["depends_on"][service.name] == \
            balancer["depends_on"][f"{service.name}-2"] == {"condition": "service_healthy"}
    # each ingest keeps its spool on a volume of its own: two would forward each other's events
    spools = [_mounts(services[n])["/data/ingest"] for n in ("ingest", "ingest-2")]
    assert spools[0] != spools[1] and set(spools) <= set(compose["volumes"])
    console_urls = _interpolate(services["console"]["environment"]["MLSD_CONSOLE_URLS"],
                                variables)
    for service in balanced_services():
        assert f'"{service.name}": "http://balancer:{service.public_port}"' in console_urls


def test_ports_are_published_on_the_host_loopback_only(compose: dict[str, Any]) -> None:
    """Redis and Kafka have no authentication here: nothing listens on the host's network."""
    for name, service in _services(compose).items():
        for port in service.get("ports", []):
            assert _published(port)[0] == "127.0.0.1", f"{name}: {port}"


def test_images_are_pinned_to_a_full_version(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        if "image" in service:
            # PostgreSQL numbers its releases major.minor (15.18): that is its full version
            assert (re.search(r":v?\d+\.\d+\.\d+", service["image"])
                    or re.fullmatch(r"postgres:\d+\.\d+-\w+", service["image"])), \
                f"{name}: {service['image']}"


def test_every_variable_has_a_default_so_a_fresh_clone_starts() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8").replace("$$", "")
    for variable in re.findall(r"\$\{([^}]*)\}", text):
        assert re.fullmatch(r"\w+:?-.*", variable), f"${{{variable}}} has no default"
    assert not re.findall(r"\$\w", text), "use ${VAR:-default}, not $VAR"


def test_kafka_mirrors_the_local_broker_config(compose: dict[str, Any]) -> None:
    environment = _services(compose)["kafka"]["environment"]
    compose_properties = {_kafka_property(name): str(value) for name, value in environment.items()
                          if name.startswith("KAFKA_") and name != "KAFKA_HEAP_OPTS"}
    local = {key: value for key, value in _kafka_template().items()
             if key not in KAFKA_KEYS_THAT_DIFFER}

    assert {key: compose_properties.get(key) for key in local} == local
    assert compose_properties["auto.create.topics.enable"] == "false"


def test_kafka_has_the_local_heap(compose: dict[str, Any]) -> None:
    heap = re.search(r'KAFKA_HEAP="\$\{KAFKA_HEAP:-(\w+)\}"',
                     (KAFKA_DIR / "env.sh").read_text(encoding="utf-8"))
    assert heap, "infra/kafka/env.sh no longer sets a default KAFKA_HEAP"

    opts = _services(compose)["kafka"]["environment"]["KAFKA_HEAP_OPTS"].split()

    assert opts == [f"-Xms{heap.group(1)}", f"-Xmx{heap.group(1)}"]


def test_kafka_answers_containers_and_the_host_on_9092(compose: dict[str, Any]) -> None:
    environment = _services(compose)["kafka"]["environment"]
    advertised = dict(listener.split("://") for listener in
                      environment["KAFKA_ADVERTISED_LISTENERS"].split(","))
    bound = dict(listener.split("://") for listener in environment["KAFKA_LISTENERS"].split(","))

    assert advertised["PLAINTEXT"] == "kafka:9092"
    assert advertised["HOST"] == "localhost:9092"
    assert _services(compose)["kafka"]["ports"] == [f"127.0.0.1:9092:{bound['HOST'][1:]}"]
    assert environment["KAFKA_INTER_BROKER_LISTENER_NAME"] == "PLAINTEXT"


def test_redis_runs_the_local_redis_conf(compose: dict[str, Any]) -> None:
    redis = _services(compose)["redis"]
    config_path = redis["command"][1]

    assert redis["command"][0] == "redis-server"
    assert (REPO_ROOT / _mounts(redis)[config_path]).resolve() == (
        REPO_ROOT / "infra" / "redis" / "redis.conf")


def test_monitoring_configs_are_mounted_where_the_services_read_them(
    compose: dict[str, Any],
) -> None:
    prometheus, grafana = _services(compose)["prometheus"], _services(compose)["grafana"]
    prometheus_mounts, grafana_mounts = _mounts(prometheus), _mounts(grafana)
    config = "/etc/prometheus/prometheus.yml"
    provider = yaml.safe_load((REPO_ROOT / "infra/grafana/provisioning/dashboards/platform.yml")
                              .read_text(encoding="utf-8"))["providers"][0]

    assert f"--config.file={config}" in prometheus["command"]
    assert prometheus_mounts[config] == "./infra/prometheus/prometheus.yml"
    # prometheus.yml loads rules/*.yml relative to itself.
    assert prometheus_mounts["/etc/prometheus/rules"] == "./infra/prometheus/rules"
    assert grafana_mounts["/etc/grafana/provisioning"] == "./infra/grafana/provisioning"
    assert grafana_mounts[provider["options"]["path"]] == "./infra/grafana/dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (REPO_ROOT / "infra/grafana/dashboards" / Path(home).name).is_file()


def test_data_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    volumes = set(compose["volumes"])
    for name in INFRA_SERVICES:
        sources = set(_mounts(_services(compose)[name]).values())
        assert sources & volumes, f"{name} keeps its data in no named volume"


def _programs(*configs: str) -> set[str]:
    text = "".join((REPO_ROOT / "infra" / c).read_text(encoding="utf-8") for c in configs)
    return set(re.findall(r"^\[program:([a-z0-9-]+)\]", text, re.MULTILINE))


def test_every_part_of_the_local_stack_runs_in_compose(compose: dict[str, Any]) -> None:
    local_parts = _programs("supervisord.conf", "supervisor/services.conf")
    assert {"redis", "kafka", "fraud", "recommender"} <= local_parts
    assert local_parts <= set(_services(compose)), local_parts - set(_services(compose))


def _cluster_template() -> dict[str, str]:
    lines = (KAFKA_DIR / "server.cluster.properties.template").read_text(encoding="utf-8")
    return dict(line.partition("=")[::2] for line in lines.splitlines()
                if line.strip() and not line.startswith("#"))


def test_the_cluster_profile_runs_the_nodes_of_make_run_cluster(
        compose: dict[str, Any]) -> None:
    services = _services(compose)
    cluster = {name for name, s in services.items() if s.get("profiles") == ["cluster"]}
    assert cluster == {"kafka-1", "kafka-2", "kafka-3", "kafka-secrets", "kafka-acls",
                       "redis-cluster",
                       *(f"redis-{n}" for n in range(1, 7)), "balancer",
                       "postgres-monitor", "postgres-1", "postgres-2", "postgres-formation",
                       *(f"{service.name}-2" for service in balanced_services())}
    # make run-cluster runs the same parts: the nodes, HAProxy and a second instance of each
    # balanced service
    assert _programs("supervisord.cluster.conf") == {
        "redis-node", "kafka-node", "postgres-monitor", "postgres-node", "balancer",
        *(f"{service.name}-2" for service in balanced_services())}
    for n in (1, 2, 3):
        environment = services[f"kafka-{n}"]["environment"]
        properties = {_kafka_property(k): str(v) for k, v in environment.items()
                      if k.startswith("KAFKA_") and k != "KAFKA_HEAP_OPTS"}
        template = {k: v for k, v in _cluster_template().items()
                    if "@" not in v and k not in KAFKA_KEYS_THAT_DIFFER}
        assert {k: properties.get(k) for k in template} == template, f"kafka-{n}"
        assert properties["node.id"] == str(n)
        assert properties["controller.quorum.voters"] == \
            "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
    assert _cluster_template()["min.insync.replicas"] == "2"


def test_the_cluster_profiles_kafka_nodes_compile_as_cluster_node_sh_does(
        compose: dict[str, Any]) -> None:
    """C1 only (ADR 0011): the image's launcher takes KAFKA_OPTS, never as a broker property."""
    level = re.search(r'KAFKA_NODE_TIERED_STOP_AT_LEVEL-(\w*)\}',
                      (KAFKA_DIR / "cluster-node.sh").read_text(encoding="utf-8"))
    assert level, "infra/kafka/cluster-node.sh no longer sets a default TieredStopAtLevel"
    for n in (1, 2, 3):
        environment = _services(compose)[f"kafka-{n}"]["environment"]
        assert environment["KAFKA_OPTS"].split() == [f"-XX:TieredStopAtLevel={level.group(1)}"]


def test_in_the_cluster_profile_the_services_wait_for_the_formed_cluster(
        compose: dict[str, Any]) -> None:
    services = _services(compose)
    for name, service in services.items():
        environment = service.get("environment", {})
        depends_on = service.get("depends_on", {})
        if "MLSD_REDIS_URL" in environment:
            assert environment["MLSD_REDIS_CLUSTER"] == "${MLSD_REDIS_CLUSTER:-false}", name
            assert environment["MLSD_REDIS_PASSWORD"] == "${MLSD_REDIS_PASSWORD:-}", name
        if "redis" in depends_on:
            assert depends_on["redis-cluster"] == {
                "condition": "service_completed_successfully", "required": False}, name
        if "kafka" in depends_on:
            assert {depends_on[f"kafka-{n}"]["required"] for n in (1, 2, 3)} == {False}, name
            # the authorizer refuses the services' user until the one-shot granted its ACLs
            assert depends_on["kafka-acls"] == {
                "condition": "service_completed_successfully", "required": False}, name
        if "MLSD_POSTGRES_HOST" in environment:
            # both PostgreSQL nodes in the cluster profile, the one taking writes used
            assert environment["MLSD_POSTGRES_HOSTS"] == "${MLSD_POSTGRES_HOSTS:-}", name
        if "postgres" in depends_on:
            assert depends_on["postgres-formation"] == {
                "condition": "service_completed_successfully", "required": False}, name
    settings = _cluster_env()
    assert settings["MLSD_KAFKA_BOOTSTRAP_SERVERS"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    assert settings["MLSD_POSTGRES_HOSTS"] == \
        services["postgres-formation"]["environment"]["MLSD_POSTGRES_HOSTS"] == \
        "postgres-1:5432,postgres-2:5432"
    assert settings["MLSD_REDIS_CLUSTER"] == "true"
    assert "MLSD_REDIS_PASSWORD" not in settings, "the password never lives in the repository"


def test_the_cluster_profile_runs_postgres_as_make_run_cluster_does(
        compose: dict[str, Any]) -> None:
    """The same node script, a monitor and two data nodes, no port published (they trust their
    network), and the image's pg_auto_failover pinned as `make setup` installs it."""
    services = _services(compose)
    for name, role in (("postgres-monitor", "monitor"), ("postgres-1", "node"),
                       ("postgres-2", "node")):
        node = services[name]
        assert node["command"] == ["/bin/bash", "/opt/mlsd/ha-node.sh"], name
        assert node["environment"]["PG_HA_ROLE"] == role, name
        assert node["environment"]["PG_HA_HOSTNAME"] == name, name
        assert "ports" not in node, name
        assert any(str(v).startswith("./infra/postgres/ha-node.sh:") for v in node["volumes"])
    dockerfile = (REPO_ROOT / "infra/docker/postgres-ha.Dockerfile").read_text(encoding="utf-8")
    assert f"FROM {services['postgres']['image']}" in dockerfile
    assert "postgresql-15-auto-failover=" in dockerfile


def test_in_the_cluster_profile_every_kafka_client_authenticates(
        compose: dict[str, Any]) -> None:
    services = _services(compose)
    for n in (1, 2, 3):
        node = services[f"kafka-{n}"]
        properties = {_kafka_property(k): str(v) for k, v in node["environment"].items()
                      if k.startswith("KAFKA_")}
        assert properties["listener.security.protocol.map"] == \
            "CONTROLLER:SASL_PLAINTEXT,BROKER:SASL_PLAINTEXT"
        assert "ScramLoginModule" in properties[
            "listener.name.broker.scram-sha-512.sasl.jaas.config"]
        assert "${KAFKA_BROKER_PASSWORD:-}" in properties[
            "listener.name.controller.plain.sasl.jaas.config"]
        assert node["command"] == ["/bin/bash", "/opt/mlsd/kafka-node.sh"]
        assert "--command-config" in node["healthcheck"]["test"][1]
    for name in _kafka_clients(compose):
        environment = services[name]["environment"]
        # the default profile: PLAINTEXT, no users; cluster.env turns both on
        assert environment["MLSD_KAFKA_SECURITY_PROTOCOL"] == \
            "${MLSD_KAFKA_SECURITY_PROTOCOL:-PLAINTEXT}", name
        assert environment["MLSD_KAFKA_USERS_DIR"] == "${MLSD_KAFKA_USERS_DIR:-}", name
        assert environment["MLSD_KAFKA_SSL_CAFILE"] == "${MLSD_KAFKA_SSL_CAFILE:-}", name
    acls = services["kafka-acls"]
    assert acls["command"] == ["python", "-m", "services.devstack", "kafka-acls"]
    # it logs in as the nodes' user, the super user
    assert acls["environment"]["KAFKA_BROKER_PASSWORD"] == "${KAFKA_BROKER_PASSWORD:-}"
    assert acls["environment"]["MLSD_KAFKA_BOOTSTRAP_SERVERS"] == \
        "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    assert {acls["depends_on"][f"kafka-{n}"]["condition"] for n in (1, 2, 3)} == \
        {"service_healthy"}
    settings = _cluster_env()
    assert settings["MLSD_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert "MLSD_KAFKA_PASSWORD" not in settings, "the password never lives in the repository"


# ---- a Kafka user per service in the cluster profile, as in make run-cluster ----

SECRETS_VOLUME = "kafka-secrets"
# the Python one-shots that set the users up: not clients of their own user
KAFKA_SET_UP = ("kafka-secrets", "kafka-acls")


def _kafka_clients(compose: dict[str, Any]) -> list[str]:
    """The Python containers that reach Kafka as a service (the one-shots that set it up
    excepted): each has the brokers' addresses in its settings."""
    image = _services(compose)["trainer"]["image"]
    return sorted(name for name, s in _services(compose).items()
                  if s.get("image") == image and name not in KAFKA_SET_UP
                  and "MLSD_KAFKA_BOOTSTRAP_SERVERS" in s.get("environment", {}))


def _env_file(name: str) -> dict[str, str]:
    text = (REPO_ROOT / "infra/compose" / name).read_text(encoding="utf-8")
    return dict(line.split("=", 1) for line in text.splitlines()
                if line and not line.startswith("#"))


def _secrets_folder(compose: dict[str, Any]) -> str:
    """Where the kafka-secrets one-shot writes (its --folder) and every reader mounts it."""
    command = _services(compose)["kafka-secrets"]["command"]
    folder = command[command.index("--folder") + 1]
    assert _mounts(_services(compose)["kafka-secrets"])[folder] == SECRETS_VOLUME
    return str(folder)


def _process_settings(command: list[str]) -> tuple[type[PlatformSettings], dict[str, Any]]:
    """The settings class and arguments a container's `python -m services.X` builds first in
    its main() (`settings = XSettings(service_name=...)`): read from the code, not restated."""
    assert command[:2] == ["python", "-m"], command
    module_name = command[2]
    try:
        module = importlib.import_module(f"{module_name}.__main__")
    except ModuleNotFoundError:
        module = importlib.import_module(module_name)
    tree = ast.parse(textwrap.dedent(inspect.getsource(module.main)))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name)
                and [getattr(t, "id", None) for t in node.targets] == ["settings"]):
            cls = getattr(module, node.value.func.id)
            assert issubclass(cls, PlatformSettings), cls
            return cls, {k.arg: ast.literal_eval(k.value) for k in node.value.keywords
                         if k.arg is not None}
    raise AssertionError(f"{module_name}.main() builds no `settings = ...Settings(...)`")


def _set_environment(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> None:
    for name in [n for n in os.environ if n.startswith("MLSD_")]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("env_files", [("cluster.env",), ("cluster.env", "cluster-tls.env")])
def test_in_the_cluster_profile_each_kafka_client_logs_in_as_its_own_user(
        compose: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        env_files: tuple[str, ...]) -> None:
    """Each container's process, its settings built as its main() builds them from the
    container's environment with the profile's env files, logs in as its service_name, a user
    of kafka_principals, with that user's file from the kafka-secrets volume (the password
    kafka-acls gives the user): the login of `make run-cluster`, by the same settings code."""
    services, folder = _services(compose), _secrets_folder(compose)
    variables = {k: v for f in env_files for k, v in _env_file(f).items()}
    local = tmp_path / "cluster"  # the volume, here: made by the code that fills it
    users = make_kafka_user_passwords(local / KAFKA_USERS_FOLDER)
    clients = _kafka_clients(compose)
    assert {"ingest", "ingest-2", "stream", "fraud", "fraud-2", "fraud-stream", "records",
            "lake", "recommender", "recommender-2", "experiments", "experiments-2"} <= set(clients)
    logins = {}
    for name in clients:
        service = services[name]
        assert _mounts(service)[folder] == SECRETS_VOLUME, name
        assert f"{SECRETS_VOLUME}:{folder}:ro" in service["volumes"], name
        environment = {k: _interpolate(str(v), variables).replace(folder, str(local))
                       for k, v in service["environment"].items() if k.startswith("MLSD_")}
        _set_environment(monkeypatch, environment)
        cls, arguments = _process_settings(service["command"])
        settings = cls(**arguments)
        access = settings.kafka_access()
        assert access.username == settings.service_name, name
        assert access.username in PRINCIPALS, f"{name}: no user {access.username!r}"
        assert access.password is not None
        assert access.password.get_secret_value() == (users / access.username).read_text().strip()
        tls = "cluster-tls.env" in env_files
        assert access.security_protocol == ("SASL_SSL" if tls else "SASL_PLAINTEXT"), name
        assert access.ssl_cafile == (str(local / KAFKA_TLS_FOLDER / "ca.pem") if tls else None)
        logins[name] = access.username
    # the balanced services' second instances log in as their first's user
    assert logins["fraud-stream"] == "fraud_stream"
    assert {logins[s.name] for s in balanced_services() if s.name in logins} == \
        {logins[f"{s.name}-2"] for s in balanced_services() if s.name in logins}


def test_the_cluster_profile_has_no_shared_kafka_user(compose: dict[str, Any]) -> None:
    """No container, env file or node script names a services' user (the shared `mlsd` of
    session 16) or its password: a process's user is its service_name."""
    for name, service in _services(compose).items():
        environment = service.get("environment", {})
        assert not {"MLSD_KAFKA_USERNAME", "MLSD_KAFKA_PASSWORD"} & set(environment), name
    for env_file in ("cluster.env", "cluster-tls.env"):
        assert not {"MLSD_KAFKA_USERNAME", "MLSD_KAFKA_PASSWORD"} & set(_env_file(env_file))
    node_script = (REPO_ROOT / "infra/compose/kafka-node.sh").read_text(encoding="utf-8")
    assert re.findall(r"--add-scram \"SCRAM-SHA-512=\[name=(\w+)", node_script) == ["broker"]
    assert "MLSD_KAFKA_USERNAME" not in node_script


def test_the_kafka_secrets_one_shot_makes_what_the_nodes_and_the_services_read(
        compose: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-shot runs `make run-cluster`'s code into the volume: a password file for every
    user of kafka_principals where cluster.env's MLSD_KAFKA_USERS_DIR points, and with TLS the
    CA and a certificate naming the nodes as the clients dial them, where cluster-tls.env's
    KAFKA_TLS_DIR and MLSD_KAFKA_SSL_CAFILE point. Each file is handed to its reader."""
    services, folder = _services(compose), _secrets_folder(compose)
    one_shot = services["kafka-secrets"]
    assert one_shot["command"][:4] == ["python", "-m", "services.devstack", "kafka-secrets"]
    cluster, tls = _env_file("cluster.env"), _env_file("cluster-tls.env")
    assert cluster["MLSD_KAFKA_USERS_DIR"] == f"{folder}/{KAFKA_USERS_FOLDER}"
    assert tls["KAFKA_TLS_DIR"] == f"{folder}/{KAFKA_TLS_FOLDER}"
    assert tls["MLSD_KAFKA_SSL_CAFILE"] == f"{folder}/{KAFKA_TLS_FOLDER}/ca.pem"
    assert (tls["MLSD_CLUSTER_KAFKA_TLS"], tls["MLSD_KAFKA_SECURITY_PROTOCOL"]) == \
        ("true", "SASL_SSL")
    assert services["kafka-acls"]["environment"]["MLSD_KAFKA_USERS_DIR"] == \
        cluster["MLSD_KAFKA_USERS_DIR"]
    # the users' files to the services' image's user (experiments runs as it), the keystore
    # to the nodes' (the apache/kafka image's appuser)
    environment = {k: _interpolate(str(v), tls) for k, v in one_shot["environment"].items()}
    assert "USER nobody" in DOCKERFILE.read_text(encoding="utf-8")
    assert (environment["KAFKA_USERS_OWNER"], environment["KAFKA_TLS_OWNER"]) == \
        ("65534", "1000")
    assert "user" not in services["experiments"]  # the image's user, which must read its file
    environment |= {"KAFKA_USERS_OWNER": str(os.getuid()), "KAFKA_TLS_OWNER": str(os.getuid())}
    _set_environment(monkeypatch, environment)

    assert kafka_secrets(ClusterSettings(), PlatformSettings(), tmp_path) == 0

    assert sorted(p.name for p in (tmp_path / KAFKA_USERS_FOLDER).iterdir()) == sorted(PRINCIPALS)
    certificate = tmp_path / KAFKA_TLS_FOLDER / "broker.pem"
    names = subprocess.run(["openssl", "x509", "-in", str(certificate), "-noout", "-ext",
                            "subjectAltName"], capture_output=True, text=True, check=True).stdout
    nodes = [a.split(":")[0] for a in environment["MLSD_KAFKA_BOOTSTRAP_SERVERS"].split(",")]
    assert nodes == ["kafka-1", "kafka-2", "kafka-3"]
    assert {f"DNS:{n}" for n in [*nodes, "localhost"]} <= set(re.findall(r"DNS:[\w.-]+", names))
    assert (tmp_path / KAFKA_TLS_FOLDER).stat().st_mode & 0o777 == 0o755
    assert (tmp_path / KAFKA_TLS_FOLDER / "keystore-password").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / KAFKA_TLS_FOLDER / "ca.pem").stat().st_mode & 0o777 == 0o644


def test_the_kafka_acls_one_shot_sets_up_every_user_of_kafka_principals(
        compose: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-shot runs what `make run-cluster` runs once the quorum answers (set_up_kafka),
    with its environment: every user of the table added with its file's password, granted
    exactly the table's ACLs, the shared user revoked, each user's login awaited, then the
    platform's topics created with replication factor 3; all as the nodes' user. The admin
    calls are recorded here instead of sent."""
    services, folder = _services(compose), _secrets_folder(compose)
    users = make_kafka_user_passwords(tmp_path / KAFKA_USERS_FOLDER)
    environment = {k: _interpolate(str(v), {"KAFKA_BROKER_PASSWORD": "b" * 24}).replace(
        folder, str(tmp_path)) for k, v in services["kafka-acls"]["environment"].items()}
    _set_environment(monkeypatch, environment)
    monkeypatch.setenv("KAFKA_BROKER_PASSWORD", environment["KAFKA_BROKER_PASSWORD"])
    calls: dict[str, Any] = {"logins": set()}

    def record(key: str, result: Any) -> Callable[..., Any]:
        def call(access: KafkaAccess, argument: Any, *_: Any, **__: Any) -> Any:
            assert (access.username, access.bootstrap_servers) == \
                (KAFKA_ADMIN_USERNAME, "kafka-1:9092,kafka-2:9092,kafka-3:9092")
            calls[key] = argument
            return result
        return call

    def login(access: KafkaAccess, timeout_s: float) -> bool:
        calls["logins"].add(access.username)
        return True

    monkeypatch.setattr(cluster_module, "revoke_user", record("revoked", 0))
    monkeypatch.setattr(cluster_module, "add_users", record("users", None))
    monkeypatch.setattr(cluster_module, "grant_exactly", record("acls", 0))
    monkeypatch.setattr(cluster_module, "ensure_topics", record("topics", []))
    monkeypatch.setattr(cluster_module, "kafka_ready", login)

    assert kafka_acls(PlatformSettings()) == 0

    assert calls["revoked"] == SHARED_KAFKA_USERNAME
    assert calls["users"] == {u: (users / u).read_text().strip() for u in PRINCIPALS}
    granted = [(a.principal, a.operation, a.resource_pattern.resource_type,
                a.resource_pattern.resource_name) for a in calls["acls"]]
    table = [(a.principal, a.operation, a.resource_pattern.resource_type,
              a.resource_pattern.resource_name) for p in PRINCIPALS.values() for a in p.acls()]
    assert granted == table and {g[0] for g in granted} == {f"User:{u}" for u in PRINCIPALS}
    assert calls["logins"] == set(PRINCIPALS)
    assert {(t.name, t.replication_factor) for t in calls["topics"]} == \
        {(t.name, 3) for t in platform_topics(1)}
    assert {services["kafka-acls"]["depends_on"][n]["condition"] for n in KAFKA_SET_UP[:1]} == \
        {"service_completed_successfully"}


def _run_kafka_node(compose: dict[str, Any], tmp_path: Path,
                    variables: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """infra/compose/kafka-node.sh as kafka-1 runs it, on a formatted storage, the image's
    start-up replaced by a script that writes down its environment: the KAFKA_* variables it
    hands the image (as properties) and the health check's client settings."""
    folder, tls = _secrets_folder(compose), tmp_path / KAFKA_TLS_FOLDER
    tls.mkdir(parents=True)
    (tls / "keystore-password").write_text("the-keystore-password\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "meta.properties").write_text("")
    start, seen, health = tmp_path / "run", tmp_path / "environment", tmp_path / "health"
    start.write_text(f'#!/bin/sh\nenv -0 > "{seen}"\n')
    start.chmod(0o755)
    script = tmp_path / "kafka-node.sh"
    script.write_text((REPO_ROOT / "infra/compose/kafka-node.sh").read_text(encoding="utf-8")
                      .replace("/etc/kafka/docker/run", str(start))
                      .replace("/tmp/health.properties", str(health)))
    environment = {k: _interpolate(str(v), {"KAFKA_BROKER_PASSWORD": "b" * 24, **variables})
                   .replace(folder, str(tmp_path))
                   for k, v in _services(compose)["kafka-1"]["environment"].items()}
    subprocess.run(["bash", str(script)], check=True, timeout=30,
                   env={**environment, "KAFKA_LOG_DIRS": str(data), "PATH": os.environ["PATH"]})
    exported = dict(v.split("=", 1) for v in seen.read_text().split("\0") if "=" in v)
    properties = {_kafka_property(k): v for k, v in exported.items() if k.startswith("KAFKA_")}
    client = dict(line.split("=", 1) for line in health.read_text().splitlines())
    return properties, client


def test_the_cluster_profiles_kafka_nodes_turn_tls_on_as_cluster_node_sh_does(
        compose: dict[str, Any], tmp_path: Path) -> None:
    """With cluster-tls.env the node script makes the BROKER listener SASL_SSL with the same
    keystore and truststore settings infra/kafka/cluster-node.sh appends for `make
    run-cluster` (its lines rendered by bash with the same folder); without it, no TLS."""
    local = (KAFKA_DIR / "cluster-node.sh").read_text(encoding="utf-8")
    block = re.search(r'if \[\[ -n "\$\{KAFKA_TLS_DIR:-\}" \]\]; then\n(.*?)\nfi\n', local,
                      re.DOTALL)
    assert block, "cluster-node.sh no longer turns TLS on with KAFKA_TLS_DIR"
    assert 's|BROKER:SASL_PLAINTEXT|BROKER:SASL_SSL|' in block.group(1)
    lines = re.search(r'<<EOF\n(.*?)\nEOF', block.group(1), re.DOTALL)
    assert lines

    properties, client = _run_kafka_node(compose, tmp_path / "tls-run",
                                         _env_file("cluster-tls.env"))

    tls_dir = tmp_path / "tls-run" / KAFKA_TLS_FOLDER  # the keystore's password written there
    rendered = subprocess.run(["bash", "-c", f"cat <<EOF\n{lines.group(1)}\nEOF"],
                              capture_output=True, text=True, check=True,
                              env={"KAFKA_TLS_DIR": str(tls_dir), "PATH": os.environ["PATH"]})
    expected = dict(line.split("=", 1) for line in rendered.stdout.splitlines())
    assert len(expected) >= 5 and expected[
        "listener.name.broker.ssl.keystore.password"] == "the-keystore-password"
    assert {k: properties.get(k) for k in expected} == expected
    assert properties["listener.security.protocol.map"] == \
        "CONTROLLER:SASL_PLAINTEXT,BROKER:SASL_SSL"
    assert client["security.protocol"] == "SASL_SSL"
    assert client["ssl.truststore.location"] == f"{tls_dir}/ca.pem"

    plain, client = _run_kafka_node(compose, tmp_path / "plain", {})

    assert not [k for k in plain if ".ssl." in k]
    assert plain["listener.security.protocol.map"] == \
        "CONTROLLER:SASL_PLAINTEXT,BROKER:SASL_PLAINTEXT"
    assert client["security.protocol"] == "SASL_PLAINTEXT"
    assert 'username="broker"' in client["sasl.jaas.config"]


def test_python_parts_share_one_image_built_from_infra_docker(compose: dict[str, Any]) -> None:
    services = _services(compose)
    # and the cluster profile's PostgreSQL nodes one of their own (pg_auto_failover added)
    builders = [s for s in services.values()
                if "build" in s and s["build"]["dockerfile"] == "infra/docker/Dockerfile"]
    assert sorted(s["build"]["dockerfile"] for s in services.values() if "build" in s) == [
        "infra/docker/Dockerfile", "infra/docker/postgres-ha.Dockerfile"]
    assert (REPO_ROOT / "infra" / "docker" / "Dockerfile").exists()
    image = builders[0]["image"]
    python_parts = [n for n, s in services.items() if s.get("image") == image]
    assert {"trainer", "model-server"} <= set(python_parts)
    repositories = {services[n]["environment"]["MLSD_MODEL_REPOSITORY"] for n in python_parts
                    if "MLSD_MODEL_REPOSITORY" in services[n].get("environment", {})}
    assert len(repositories) == 1, "the trainer and the model server must share the repository"


def _default(value: str) -> str:
    """A value with every ${VAR:-default} replaced by its default, as on a fresh clone."""
    return _interpolate(value, {})


def _interpolate(value: str, variables: dict[str, str]) -> str:
    """Every ${VAR:-default} replaced by VAR from `variables`, else by its default."""
    return re.sub(r"\$\{(\w+):?-([^}]*)\}",
                  lambda m: variables.get(m.group(1), m.group(2)), value)


def _cluster_env() -> dict[str, str]:
    """infra/compose/cluster.env, the --env-file of the cluster profile."""
    text = (REPO_ROOT / "infra/compose/cluster.env").read_text(encoding="utf-8")
    return dict(line.split("=", 1) for line in text.splitlines()
                if line and not line.startswith("#"))


def test_every_job_prometheus_scrapes_is_a_service_on_its_port(compose: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    targets = [target for job in config["scrape_configs"] if job["job_name"] != "prometheus"
               for group in job.get("static_configs", []) for target in group["targets"]]
    targets += [f"{name}:{dns['port']}" for job in config["scrape_configs"]
                for dns in job.get("dns_sd_configs", []) for name in dns["names"]]
    services = _services(compose)

    for target in targets:
        name, port = target.rsplit(":", 1)
        assert name in services, f"Prometheus scrapes {target}, which compose does not run"
        probe = " ".join(map(str, services[name]["healthcheck"]["test"]))
        assert f"127.0.0.1:{port}/readyz" in probe, f"{name} is probed on another port"


def test_experiments_listens_on_its_port_with_an_admin_token_from_the_environment(
    compose: dict[str, Any],
) -> None:
    experiments = _services(compose)["experiments"]
    environment = experiments["environment"]

    assert experiments["command"] == ["python", "-m", "services.experiments"]
    assert environment["MLSD_EXPERIMENTS_HOST"] == "0.0.0.0"
    assert environment["MLSD_EXPERIMENTS_PORT"] == DESIGN_PORTS["experiments"]
    assert re.fullmatch(r"\$\{EXPERIMENTS_ADMIN_TOKEN:-.+\}",
                        environment["MLSD_EXPERIMENTS_ADMIN_TOKEN"])
    assert {"kafka", "redis"} <= set(experiments["depends_on"])


def test_locust_workers_report_to_the_master_and_stay_out_of_make_up(
    compose: dict[str, Any],
) -> None:
    master, worker = _services(compose)["locust-master"], _services(compose)["locust-worker"]
    master_args, worker_args = [_default(str(a)) for a in master["command"]], [
        _default(str(a)) for a in worker["command"]]

    assert master["profiles"] == worker["profiles"] == ["load"]
    assert "--master" in master_args
    assert worker_args[worker_args.index("--master-host") + 1] == "locust-master"
    assert worker["deploy"]["replicas"] == 2
    assert worker["depends_on"] == {"locust-master": {"condition": "service_healthy"}}
    locustfile = master_args[master_args.index("-f") + 1]
    assert worker_args[worker_args.index("-f") + 1] == locustfile
    assert (REPO_ROOT / locustfile).is_file()
    assert master_args[master_args.index("--host") + 1] == "http://recommender:8030"
    # The locustfiles read .state/worlds/ (relative to /app); the trainer writes /data/worlds.
    assert "/app/.state" in _mounts(master) and "/app/.state" in _mounts(worker)


def test_the_image_runs_the_locustfiles_with_the_projects_locust() -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    pyproject = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    pin = re.search(r'"(locust==[\d.]+)"', pyproject)
    assert pin, "pyproject.toml no longer pins locust"

    assert "COPY load-tests ./load-tests" in dockerfile
    assert f"'{pin.group(1)}'" in dockerfile


def test_fraud_runs_as_many_processes_as_make_run_by_default(compose: dict[str, Any]) -> None:
    """HTTP workers behind 8040 and scorer replicas, as many as FraudSettings' defaults."""
    fraud, scorers = _services(compose)["fraud"], _services(compose)["fraud-stream"]
    defaults = FraudSettings()

    assert int(_default(str(fraud["environment"]["MLSD_FRAUD_WORKERS"]))) == (
        defaults.fraud_workers)
    assert int(_default(str(scorers["deploy"]["replicas"]))) == defaults.fraud_stream_processes
    assert "ports" not in scorers  # replicas share the service's container port, not the host's


def test_the_recommender_runs_as_many_workers_as_make_run_by_default(
        compose: dict[str, Any]) -> None:
    recommender = _services(compose)["recommender"]
    assert int(_default(str(recommender["environment"]["MLSD_RECOMMENDER_WORKERS"]))) == (
        RecommenderSettings().recommender_workers)
