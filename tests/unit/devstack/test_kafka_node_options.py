"""infra/kafka/cluster-node.sh's JVM options for the broker: C1 only by default, and
KAFKA_NODE_TIERED_STOP_AT_LEVEL= (empty) for a run with C2 again, without editing a file
(ADR 0011; the soak's C1 pairs of issue 17 turn it per run this way).

The script runs for real up to its last line, `exec java ...`; a `java` earlier on PATH writes
the arguments it was given instead of starting a broker."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.harness import REPO_ROOT

SCRIPT = REPO_ROOT / "infra/kafka/cluster-node.sh"


def server_arguments(tmp_path: Path, **env: str) -> list[str]:
    """The arguments cluster-node.sh starts the broker's JVM with, for node 1 of a formatted
    data folder (the format step is not under test) and no class archive."""
    bin_dir, libs, data = tmp_path / "bin", tmp_path / "libs", tmp_path / "kafka-1"
    for folder in (bin_dir, libs, data / "logs"):
        folder.mkdir(parents=True)
    (libs / ".complete").touch()  # fetch.sh: the jars are there
    (data / "logs" / "meta.properties").touch()  # formatted, with the SCRAM users
    (data / "logs" / ".scram-users").touch()
    recorded = tmp_path / "java-arguments"
    java = bin_dir / "java"
    java.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {recorded}\n')
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    subprocess.run(
        [str(SCRIPT)], check=True, timeout=30, capture_output=True,
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path),
             "KAFKA_NODE_ID": "1", "KAFKA_CLUSTER_ID": "unit-test-cluster",
             "KAFKA_BROKER_PASSWORD": "unit-test", "KAFKA_LIBS": str(libs),
             "KAFKA_NODE_DATA_DIR": str(data), "KAFKA_NODE_CDS_ARCHIVE": "", **env})
    return recorded.read_text().splitlines()


def test_a_node_compiles_with_c1_only_by_default(tmp_path: Path) -> None:
    arguments = server_arguments(tmp_path)
    assert "-XX:TieredStopAtLevel=1" in arguments
    assert arguments[-2:] == ["kafka.Kafka", str(tmp_path / "kafka-1" / "server.properties")]


def test_an_empty_level_starts_the_node_with_c2_again(tmp_path: Path) -> None:
    arguments = server_arguments(tmp_path, KAFKA_NODE_TIERED_STOP_AT_LEVEL="")
    assert not [a for a in arguments if a.startswith("-XX:TieredStopAtLevel")]
    assert arguments[-2] == "kafka.Kafka"


@pytest.mark.parametrize("level", ["1", "4"])
def test_a_named_level_is_the_one_the_node_runs(tmp_path: Path, level: str) -> None:
    arguments = server_arguments(tmp_path, KAFKA_NODE_TIERED_STOP_AT_LEVEL=level)
    assert [a for a in arguments if a.startswith("-XX:TieredStopAtLevel")] == [
        f"-XX:TieredStopAtLevel={level}"]
