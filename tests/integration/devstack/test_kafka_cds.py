"""The Kafka nodes' class data sharing archive (ADR 0011), on real nodes: one throwaway node
writes it as its JVM exits, and a cluster-topology node started afterwards maps it; a node given
a damaged (stale) archive starts without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.devstack.kafka_cds import make_archive
from services.devstack.servers import start_cluster_topology

pytestmark = pytest.mark.integration


def mapped_files(pid: int) -> set[str]:
    """The files a process has mapped (/proc/<pid>/maps' path column)."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {parts[5] for parts in (line.split(maxsplit=5) for line in lines) if len(parts) == 6}


def node_maps(workdir: Path, archive: Path) -> bool:
    """A one-node cluster topology started with `archive`: whether its JVM mapped it."""
    workdir.mkdir()
    topology = start_cluster_topology(workdir, "", kafka_nodes=1, redis_masters=0,
                                      kafka_env={"KAFKA_NODE_CDS_ARCHIVE": str(archive)})
    try:
        return str(archive) in mapped_files(topology.servers["kafka-1"].process.pid)
    finally:
        topology.stop()


def test_a_node_maps_the_archive_a_first_run_wrote_and_starts_without_a_stale_one(
        tmp_path: Path) -> None:
    archive = tmp_path / "kafka.jsa"
    make_archive(archive)
    assert archive.stat().st_size > 1_000_000  # some thousands of classes, not an empty file
    assert node_maps(tmp_path / "with", archive)

    stale = tmp_path / "stale.jsa"  # another JDK's, or other jars': the JVM refuses to map it
    stale.write_bytes(archive.read_bytes()[:4096] + bytes(4096))
    assert not node_maps(tmp_path / "stale", stale)  # and the node started (no exception)
