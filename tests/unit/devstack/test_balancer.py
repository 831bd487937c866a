"""make run-cluster's balancer: a configuration HAProxy accepts, and supervisord starting the
second instance of every balanced service on the port the configuration sends it to."""

from __future__ import annotations

import configparser
import subprocess
from pathlib import Path

from services.devstack.balancer import balanced_services, haproxy_config, instance_environment
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
