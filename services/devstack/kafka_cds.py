"""The Kafka nodes' class data sharing archive (AppCDS, ADR 0011).

A Kafka node's JVM reads, parses and verifies some ten thousand classes from its jars at every
start, about a core for its first seconds on a 2-core machine. Java 17 can write the classes a
run loaded into an archive when the JVM exits (`-XX:ArchiveClassesAtExit`); a later start maps
the archive (`-XX:SharedArchiveFile`, infra/kafka/cluster-node.sh) instead of loading them again.

The archive is made once a checkout, by one throwaway node of the cluster topology (the same
script, its own single-voter quorum on free loopback ports, its own passwords) that starts,
answers an authenticated client and is stopped: the classes of a node's start and of its
listeners. `make run-cluster` and the test harness's cluster make it when it is missing. It is
only valid for the JDK and the jars that made it; the JVM ignores a stale one (a start without
it, never a failed one), and deleting the file makes it again.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from services.common.loopback import free_port
from services.devstack.cluster import (
    ClusterSecrets,
    kafka_cluster_id,
    kafka_node_ready,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_SCRIPT = REPO_ROOT / "infra/kafka/cluster-node.sh"


def kafka_version() -> str:
    """infra/kafka/pom.xml's <kafka.version>, as infra/kafka/env.sh reads it."""
    text = (REPO_ROOT / "infra/kafka/pom.xml").read_text()
    return text.split("<kafka.version>", 1)[1].split("</kafka.version>", 1)[0].strip()


def archive_path() -> Path:
    """Where cluster-node.sh looks for the archive (its KAFKA_NODE_CDS_ARCHIVE default)."""
    return REPO_ROOT / ".state" / "kafka-cds" / f"kafka-{kafka_version()}.jsa"


class ArchiveNotMade(RuntimeError):
    """The throwaway node did not start, or its JVM wrote no archive."""


def make_archive(path: Path, timeout_s: float = 120.0) -> float:
    """One node started with -XX:ArchiveClassesAtExit, asked for metadata with the services'
    credentials, stopped with SIGTERM (the JVM writes the archive as it exits); the archive
    moved to `path` only once written. Returns the seconds it took."""
    began = time.monotonic()
    path.parent.mkdir(parents=True, exist_ok=True)
    written = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    port, controller = free_port(), free_port()
    address = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="mlsd-kafka-cds-") as workdir:
        # the nodes' own user alone: the throwaway node serves no service
        node_secrets = ClusterSecrets("", kafka_cluster_id(), secrets.token_urlsafe(24),
                                      Path(workdir) / "no-users")
        env = {**os.environ, "KAFKA_NODE_ID": "1",
               "KAFKA_CLUSTER_ID": node_secrets.kafka_cluster_id,
               "KAFKA_VOTERS": f"1@127.0.0.1:{controller}",
               "KAFKA_NODE_PORT": str(port), "KAFKA_NODE_CONTROLLER_PORT": str(controller),
               "KAFKA_NODE_DATA_DIR": f"{workdir}/kafka-1", "KAFKA_PARTITIONS": "1",
               "KAFKA_BROKER_PASSWORD": node_secrets.kafka_broker_password,
               # made from the JDK's own archive, not from an earlier one of ours
               "KAFKA_NODE_CDS_ARCHIVE": "",
               "KAFKA_NODE_JVM_OPTS": f"-XX:ArchiveClassesAtExit={written}"}
        log_path = Path(workdir) / "kafka-cds.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen([str(NODE_SCRIPT)], env=env, stdout=log,
                                       stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                       start_new_session=True)
        try:
            access = node_secrets.kafka_admin_access(address)
            deadline = time.monotonic() + timeout_s
            while not kafka_node_ready(access):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise ArchiveNotMade(f"the archive's node did not start:\n"
                                         f"{log_path.read_text(errors='replace')[-3000:]}")
                time.sleep(0.25)
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=timeout_s)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if not written.exists():
            raise ArchiveNotMade(f"the JVM wrote no archive:\n"
                                 f"{log_path.read_text(errors='replace')[-3000:]}")
    written.replace(path)
    return time.monotonic() - began


def ensure_archive(timeout_s: float = 120.0) -> Path | None:
    """The archive at archive_path(), made when missing. None when it could not be made: the
    nodes then start without it, as before (the caller says so)."""
    path = archive_path()
    if path.exists():
        return path
    try:
        make_archive(path, timeout_s)
    except (ArchiveNotMade, OSError, subprocess.SubprocessError):
        return None
    return path
