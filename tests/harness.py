"""The test harness's real servers: the same starters the benchmarks use."""

from services.common.loopback import free_port
from services.devstack.servers import (
    REPO_ROOT,
    ClusterTopology,
    PostgresFormation,
    ServerDidNotStart,
    ServerProcess,
    start_cluster_topology,
    start_kafka,
    start_postgres,
    start_postgres_formation,
    start_redis,
    start_redis_cluster,
)

__all__ = ["REPO_ROOT", "ClusterTopology", "PostgresFormation", "ServerDidNotStart",
           "ServerProcess", "free_port", "start_cluster_topology", "start_kafka", "start_postgres",
           "start_postgres_formation", "start_redis", "start_redis_cluster"]
