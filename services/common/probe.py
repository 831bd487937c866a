"""Readiness probes for the platform's dependencies, shared by /readyz and the local stack.

Run as a command to probe once: `python -m services.common.probe kafka 127.0.0.1:9092`.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import redis
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from services.common.kafka_access import KafkaAccess, KafkaTarget

logger = logging.getLogger(__name__)


def redis_ready(url: str, timeout_s: float = 1.0, password: str | None = None,
                cluster: bool = False) -> bool:
    """True when Redis answers PING within the timeout; for a cluster node, when the cluster
    it belongs to also says its state is ok (every slot served)."""
    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                  password=password)
    try:
        if not client.ping():
            return False
        return not cluster or client.cluster("INFO")["cluster_state"] == "ok"
    except redis.RedisError:
        return False
    finally:
        client.close()


def kafka_ready(kafka: KafkaTarget, timeout_s: float = 3.0) -> bool:
    """True when a broker answers a metadata request and names a controller (not just a port);
    with credentials, only once it accepted them (a refused login is not ready)."""
    timeout_ms = int(timeout_s * 1000)
    try:
        admin = KafkaAdminClient(
            **KafkaAccess.of(kafka).python_config(),
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
            client_id="probe",
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        cluster = admin.describe_cluster()
        return bool(cluster.get("brokers")) and cluster.get("controller_id", -1) >= 0
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def http_ready(url: str, timeout_s: float = 1.0) -> bool:
    """True when the URL (a service's /readyz) answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def process_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float,
                  interval_s: float = 0.25) -> bool:
    """Polls the URL until it answers 200 (True), or the process exits or time runs out (False):
    how a benchmark or a test waits for a service it started."""
    deadline = time.monotonic() + timeout_s
    while not http_ready(url):
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(interval_s)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="probe a dependency once; exit 0 when ready")
    parser.add_argument("kind", choices=["redis", "kafka", "http"])
    parser.add_argument("target", help="redis URL, Kafka bootstrap servers, or readiness URL")
    args = parser.parse_args(argv)
    probes: dict[str, Callable[[str], bool]] = {
        "redis": redis_ready, "kafka": kafka_ready, "http": http_ready}
    ready = probes[args.kind](args.target)
    print(f"{args.kind} {args.target}: {'ready' if ready else 'NOT ready'}")  # noqa: T201
    return 0 if ready else 1


if __name__ == "__main__":
    sys.exit(main())
