"""make run-cluster's balancer: a configuration HAProxy accepts, supervisord starting the
second instance of every balanced service on the port the configuration sends it to, and the
compose profile's committed copy of the same configuration."""

from __future__ import annotations

import configparser
import subprocess
from pathlib import Path

import yaml

from services.devstack.balancer import (
    COMPOSE_STATS_SOCKET,
    balanced_services,
    compose_haproxy_config,
    haproxy_config,
    instance_environment,
)
from services.devstack.cluster import ClusterSettings
from tests.harness import REPO_ROOT


def test_haproxy_accepts_the_generated_configuration(tmp_path: Path) -> None:
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config(balanced_services(), tmp_path / "haproxy.sock"))
    checked = subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True,
                             text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_balanced_service_has_two_health_checked_instances_on_ports_of_their_own() -> None:
    services = balanced_services()
    text = haproxy_config(services, Path("/x.sock"))
    ports = [p for s in services for p in s.instance_ports]
    cluster = ClusterSettings()
    others = {s.public_port for s in services} | {
        int(a.rsplit(":", 1)[1]) for a in cluster.kafka_addresses() + cluster.redis_addresses()}
    assert len(set(ports)) == len(ports) and not set(ports) & others
    for service in services:
        assert f"bind 127.0.0.1:{service.public_port}" in text
        for port in service.instance_ports:
            assert f"127.0.0.1:{port}" in text
    assert text.count("option httpchk GET /readyz") == len(services)


def test_supervisord_starts_the_second_instance_on_the_port_haproxy_expects() -> None:
    conf = configparser.RawConfigParser(strict=False)
    conf.read(REPO_ROOT / "infra" / "supervisord.cluster.conf")
    environment = instance_environment(balanced_services())
    for service in balanced_services():
        section = conf[f"program:{service.name}-2"]
        variable = f"BALANCED_{service.port_variable.removeprefix('MLSD_')}_2"
        assert section["environment"] == f'{service.port_variable}="%(ENV_{variable})s"'
        assert environment[variable] == str(service.instance_ports[1])
        assert environment[service.port_variable] == str(service.instance_ports[0])
    assert "haproxy.cfg" in conf["program:balancer"]["command"]


def test_the_compose_profile_runs_the_generated_configuration_for_its_containers(
        tmp_path: Path) -> None:
    committed = (REPO_ROOT / "infra" / "compose" / "haproxy.cfg").read_text(encoding="utf-8")
    assert committed == compose_haproxy_config(), (
        "infra/compose/haproxy.cfg differs from the generator; rewrite it with: .venv/bin/python "
        "-c 'from services.devstack.balancer import compose_haproxy_config as c; "
        "print(c(), end=\"\")' > infra/compose/haproxy.cfg")
    # the same settings as make run-cluster's, only the addresses and the DNS lines differ
    local = haproxy_config(balanced_services(), Path("/x.sock")).splitlines()
    shared = [line for line in local if "127.0.0.1" not in line and "stats socket" not in line
              and not line.startswith("#")]
    assert [line.replace(" resolvers dns init-addr libc,none", "")
            for line in committed.splitlines() if line.strip() in {s.strip() for s in shared}
            or "default-server" in line] == shared
    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    for service in balanced_services():
        for name in (service.name, f"{service.name}-2"):
            assert f"{name}:{service.public_port}" in committed
            assert name in services["services"], name
    # HAProxy accepts it (the containers' names do not resolve here: those servers start down)
    config = tmp_path / "haproxy.cfg"
    config.write_text(committed.replace(str(COMPOSE_STATS_SOCKET), str(tmp_path / "h.sock")))
    checked = subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True,
                             text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
