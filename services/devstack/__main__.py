"""`python -m services.devstack run|run-cluster|stop|status|summary|kafka-secrets|kafka-acls|
postgres-formation`: behind make run, run-cluster, stop, status, demo; kafka-secrets, kafka-acls
and postgres-formation are docker compose's one-shots of the cluster profile."""

from __future__ import annotations

import argparse
import ipaddress
import os
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.topics import platform_topics
from services.common.records.settings import PostgresSettings
from services.common.settings import DatasetSettings, PlatformSettings
from services.devstack.balancer import (
    balanced_services,
    instance_environment,
    write_haproxy_config,
)
from services.devstack.cluster import (
    KAFKA_TLS_FOLDER,
    KAFKA_USERS_FOLDER,
    ClusterSecrets,
    ClusterSettings,
    cluster_environment,
    form_postgres,
    form_redis_cluster,
    make_kafka_tls,
    make_kafka_user_passwords,
    set_up_kafka,
)
from services.devstack.kafka_cds import archive_path, ensure_archive
from services.devstack.kafka_principals import PRINCIPALS
from services.devstack.parts import (
    Part,
    cluster_infra_parts,
    service_parts,
    stack_parts,
    supervisor_environment,
)
from services.devstack.summary import summary
from services.fraud.settings import FraudSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG = REPO_ROOT / "infra" / "supervisord.conf"
CLUSTER_CONFIG = REPO_ROOT / "infra" / "supervisord.cluster.conf"
STATE = REPO_ROOT / ".state"
CLUSTER_STATE = STATE / "cluster"
SOCKET = STATE / "supervisor.sock"
BIN = Path(sys.executable).parent


def say(message: str) -> None:
    print(message, flush=True)


def supervisor() -> Any:
    transport = SupervisorTransport(None, None, f"unix://{SOCKET}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor


def supervisord_running() -> bool:
    if not SOCKET.exists():
        return False
    try:
        return bool(supervisor().getState()["statename"] == "RUNNING")
    except (OSError, xmlrpc.client.Fault):
        return False


def process_info() -> dict[str, dict[str, Any]]:
    if not supervisord_running():
        return {}
    return {p["name"]: p for p in supervisor().getAllProcessInfo()}


def log_tail(name: str, lines: int = 30) -> str:
    path = STATE / "logs" / f"{name}.log"
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_healthy(part: Part, timeout_s: float) -> bool:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if part.probe():
            say(f"  {part.name:<17} healthy at {part.address} ({time.monotonic() - start:.1f} s)")
            return True
        state = process_info().get(part.name, {}).get("statename")
        if state in ("FATAL", "BACKOFF", "EXITED"):
            break
        time.sleep(0.5)
    say(f"  {part.name:<17} NOT healthy (supervisor state: "
        f"{process_info().get(part.name, {}).get('statename')}); last log lines:")
    say(log_tail(part.name))
    return False


def run(settings: PlatformSettings, timeout_s: float) -> int:
    (STATE / "logs").mkdir(parents=True, exist_ok=True)
    if supervisord_running():
        if cluster_running():
            return use_cluster(settings, timeout_s)
        say("supervisord already running: starting any stopped part")
        supervisor().startAllProcesses(False)
    else:
        say(f"starting the local stack under supervisord ({CONFIG.relative_to(REPO_ROOT)})")
        env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
               **supervisor_environment(FraudSettings())}
        subprocess.run([BIN / "supervisord", "-c", CONFIG], check=True, env=env, cwd=REPO_ROOT)
    for part in stack_parts(settings):
        if not wait_healthy(part, timeout_s):
            say("the stack is not healthy; `make status` shows what runs, `make stop` stops it")
            return 1
    specs = platform_topics(settings.kafka_topic_partitions, settings.kafka_replication_factor)
    created = ensure_topics(settings.kafka_access(), specs)
    say(f"  topics     {len(created)} created, {len(specs) - len(created)} already there")
    say("stack healthy. `make status` to inspect, `make stop` to stop.")
    return 0


def cluster_running() -> bool:
    """Whether the running supervisord is the cluster topology's (its nodes are named kafka-N)."""
    return "kafka-1" in process_info()


def cluster_parts() -> list[Part]:
    """Every part `make run-cluster` runs: its nodes, then the services."""
    cluster = ClusterSettings()
    secrets = ClusterSecrets.load_or_create(CLUSTER_STATE, tls=cluster.kafka_tls)
    return [*cluster_infra_parts(cluster, secrets), *service_parts()]


def use_cluster(settings: PlatformSettings, timeout_s: float) -> int:
    """`make run` (and so `make seed`, `make demo`'s jobs) while the cluster topology runs: the
    jobs that follow use it when this shell has its settings, else they would look for the
    single-node stack's servers; nothing of the single-node stack is started."""
    env_file = (CLUSTER_STATE / "env").relative_to(REPO_ROOT)
    say("the cluster topology (`make run-cluster`) is running: checking it")
    for part in cluster_parts():
        if not wait_healthy(part, timeout_s):
            say("the cluster is not healthy; `make status` shows what runs, `make stop` stops it")
            return 1
    if not settings.redis_cluster:
        say(f"this shell lacks the cluster topology's settings: `set -a; source {env_file}; "
            "set +a` first (or `make stop` and `make run` for the single-node stack)")
        return 1
    say("cluster topology healthy; the jobs use it (its settings are in this shell).")
    return 0


def run_cluster(cluster: ClusterSettings, timeout_s: float) -> int:
    """Start the nodes, form the Redis Cluster, create the topics (RF 3), then the services."""
    (STATE / "logs").mkdir(parents=True, exist_ok=True)
    if supervisord_running() and not cluster_running():
        say("the single-node stack (`make run`) is running: `make stop` it first")
        return 1
    secrets = ClusterSecrets.load_or_create(CLUSTER_STATE, tls=cluster.kafka_tls)
    environment = cluster_environment(cluster, secrets, CLUSTER_STATE)
    write_haproxy_config(CLUSTER_STATE)
    if not supervisord_running():
        if not archive_path().exists():  # made once a checkout (ADR 0011)
            say("  kafka cds archive: one node started and stopped to write it")
            if ensure_archive() is None:
                say("  kafka cds archive could not be made: the nodes start without it")
        say(f"starting the cluster topology under supervisord "
            f"({CLUSTER_CONFIG.relative_to(REPO_ROOT)})")
        env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
               **supervisor_environment(FraudSettings()), **environment}
        subprocess.run([BIN / "supervisord", "-c", CLUSTER_CONFIG], check=True, env=env,
                       cwd=REPO_ROOT)
    nodes = cluster_infra_parts(cluster, secrets)
    postgres_nodes = [part for part in nodes if part.address in cluster.postgres_addresses()]
    for part in [part for part in nodes if part not in postgres_nodes]:
        if not wait_healthy(part, timeout_s):
            say("the cluster is not healthy; `make status` shows what runs, `make stop` stops it")
            return 1
    postgres = PostgresSettings()
    primary = form_postgres(cluster.postgres_addresses(), postgres.postgres_user,
                            postgres.postgres_password.get_secret_value(), postgres.postgres_db,
                            timeout_s)
    for part in postgres_nodes:
        if not wait_healthy(part, timeout_s):
            say("the cluster is not healthy; `make status` shows what runs, `make stop` stops it")
            return 1
    say(f"  postgres          primary {primary}, a synchronous standby streaming from it")
    formed = form_redis_cluster(cluster.redis_addresses(), cluster.redis_replicas_per_master,
                                secrets.redis_password)
    say(f"  redis cluster     {'created' if formed else 'already formed'}: "
        f"{cluster.redis_masters} masters, {cluster.redis_replicas_per_master} replica each")
    # a user per service; the authorizer refuses each everything but what its ACLs allow
    _say_kafka_set_up(*set_up_kafka(secrets, environment["MLSD_KAFKA_BOOTSTRAP_SERVERS"],
                                    PlatformSettings().kafka_topic_partitions,
                                    cluster.kafka_nodes), cluster.kafka_nodes)
    supervisor().startAllProcesses(False)
    for part in service_parts():
        if not wait_healthy(part, timeout_s):
            say("the stack is not healthy; `make status` shows what runs, `make stop` stops it")
            return 1
    # jobs reach the services through the balancer, on the public ports: not the instances'
    _write_env_file({k: v for k, v in environment.items()
                     if k not in instance_environment(balanced_services())})
    say(f"cluster topology healthy. Jobs and load tests reach it with the variables in "
        f"{(CLUSTER_STATE / 'env').relative_to(REPO_ROOT)} (`set -a; source` it).")
    return 0


def _say_kafka_set_up(revoked: int, created: list[str], topics: int,
                      replication_factor: int) -> None:
    say(f"  kafka users       {len(PRINCIPALS)}, one per service, each allowed its own topics "
        f"and groups ({revoked} earlier ACLs revoked)")
    say(f"  topics     {len(created)} created, {topics - len(created)} already there "
        f"(replication factor {replication_factor}, min.insync.replicas 2)")


def _write_env_file(environment: dict[str, str]) -> None:
    """The MLSD_* settings of the cluster topology, for `make seed` and friends (mode 600: it
    holds the Redis and Kafka passwords; not the nodes' own, KAFKA_BROKER_PASSWORD)."""
    path = CLUSTER_STATE / "env"
    path.touch(mode=0o600)
    path.write_text("".join(f"{k}={v}\n" for k, v in environment.items()
                            if k.startswith("MLSD_") and k != "MLSD_SERVICES_AUTOSTART"))


def stop() -> int:
    if not supervisord_running():
        say("the local stack is not running")
        return 0
    pid = int(supervisor().getPID())
    say("stopping the local stack")
    supervisor().shutdown()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            say("stopped")
            return 0
        time.sleep(0.25)
    say(f"supervisord (pid {pid}) did not stop in 90 s")
    return 1


def status(settings: PlatformSettings) -> int:
    info = process_info()
    if not info:
        say("the local stack is not running (`make run` starts it)")
    say(f"{'part':<17} {'state':<9} {'pid':>7}  {'address':<28} health")
    all_healthy = bool(info)
    parts = cluster_parts() if cluster_running() else stack_parts(settings)
    for part in parts:
        proc = info.get(part.name, {})
        healthy = part.probe() if proc.get("statename") == "RUNNING" else False
        all_healthy &= healthy
        say(f"{part.name:<17} {proc.get('statename', '-'):<9} {proc.get('pid') or '-':>7}  "
            f"{part.address:<28} {'healthy' if healthy else 'not healthy'}")
    say(f"logs: {(STATE / 'logs').relative_to(REPO_ROOT)}/<part>.log")
    return 0 if all_healthy else 1


def kafka_secrets(cluster: ClusterSettings, settings: PlatformSettings, folder: Path) -> int:
    """docker compose's one-shot `kafka-secrets` (the cluster profile): into its volume
    (`folder`) what `make run-cluster` makes into .state/cluster, by the same code, each made
    once and kept: a password per user of kafka_principals (kafka-users/) and, with
    MLSD_CLUSTER_KAFKA_TLS, the CA and the brokers' certificate (kafka-tls/), which names the
    nodes as the clients dial them (MLSD_KAFKA_BOOTSTRAP_SERVERS' hosts) and localhost (the
    nodes' health check). A fresh volume is root's: KAFKA_USERS_OWNER hands the users' files
    to the services' image's user, KAFKA_TLS_OWNER the keystore and its password to the
    nodes' (numeric ids)."""
    users = make_kafka_user_passwords(folder / KAFKA_USERS_FOLDER)
    _hand_over([users, *(users / user for user in PRINCIPALS)], "KAFKA_USERS_OWNER")
    say(f"kafka secrets: a password for each of the {len(PRINCIPALS)} users in {users}")
    if cluster.kafka_tls:
        hosts = sorted({a.strip().rsplit(":", 1)[0]
                        for a in settings.kafka_bootstrap_servers.split(",")})
        names = [*(_subject_name(host) for host in hosts), "DNS:localhost"]
        tls = make_kafka_tls(folder / KAFKA_TLS_FOLDER, names=names).parent
        tls.chmod(0o755)  # the CA's certificate is every client's; the keys stay mode 600
        _hand_over([tls / "broker.p12", tls / "keystore-password"], "KAFKA_TLS_OWNER")
        say(f"kafka secrets: the CA and the brokers' certificate ({', '.join(names)}) in {tls}")
    return 0


def _subject_name(host: str) -> str:
    try:
        return f"IP:{ipaddress.ip_address(host)}"
    except ValueError:
        return f"DNS:{host}"


def _hand_over(paths: list[Path], owner_variable: str) -> None:
    owner = os.environ.get(owner_variable)
    if owner:
        for path in paths:
            os.chown(path, int(owner), -1)


def kafka_acls(settings: PlatformSettings) -> int:
    """docker compose's one-shot `kafka-acls` (the cluster profile), what `make run-cluster`
    does once the quorum runs (set_up_kafka): every user of kafka_principals added with its
    password from MLSD_KAFKA_USERS_DIR (the kafka-secrets volume) and granted exactly its ACLs,
    then the platform's topics created; all as the nodes' own user (KAFKA_BROKER_PASSWORD) on
    MLSD_KAFKA_BOOTSTRAP_SERVERS, over TLS with MLSD_KAFKA_SSL_CAFILE."""
    password = os.environ.get("KAFKA_BROKER_PASSWORD", "")
    users = settings.kafka_users_dir
    missing = sorted(u for u in PRINCIPALS if users is None or not (users / u).is_file())
    if not password or users is None or missing:
        say("set KAFKA_BROKER_PASSWORD, and MLSD_KAFKA_USERS_DIR to the folder the kafka-secrets "
            "one-shot fills (a password file per user of kafka_principals"
            + (f"; missing: {', '.join(missing)})" if users is not None else ")"))
        return 2
    secrets = ClusterSecrets("", "", password, users, settings.kafka_ssl_cafile)
    _say_kafka_set_up(*set_up_kafka(secrets, settings.kafka_bootstrap_servers,
                                    settings.kafka_topic_partitions,
                                    settings.kafka_replication_factor),
                      settings.kafka_replication_factor)
    return 0


def postgres_formation(timeout_s: float) -> int:
    """docker compose's one-shot `postgres-formation` (the cluster profile), as `make
    run-cluster` forms it: the services' role on the primary among MLSD_POSTGRES_HOSTS, and the
    standby streaming synchronously."""
    postgres = PostgresSettings()
    if len(postgres.servers()) < 2:
        say("set MLSD_POSTGRES_HOSTS to the primary and the standby (host:port,host:port)")
        return 2
    primary = form_postgres([f"{host}:{port}" for host, port in postgres.servers()],
                            postgres.postgres_user, postgres.postgres_password.get_secret_value(),
                            postgres.postgres_db, timeout_s)
    say(f"postgres: primary {primary}, a synchronous standby streaming from it")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m services.devstack")
    parser.add_argument("command", choices=["run", "run-cluster", "stop", "status", "summary",
                                            "kafka-secrets", "kafka-acls",
                                            "postgres-formation"])
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds per part to get healthy")
    parser.add_argument("--folder", type=Path, default=CLUSTER_STATE,
                        help="kafka-secrets: where the users' passwords and the TLS files go")
    args = parser.parse_args()
    settings = PlatformSettings()
    if args.command == "run":
        return run(settings, args.timeout)
    if args.command == "run-cluster":
        return run_cluster(ClusterSettings(), args.timeout)
    if args.command == "summary":
        say(summary(dataset=DatasetSettings().dataset))
        return 0
    if args.command == "stop":
        return stop()
    if args.command == "kafka-secrets":
        return kafka_secrets(ClusterSettings(), settings, args.folder)
    if args.command == "kafka-acls":
        return kafka_acls(settings)
    if args.command == "postgres-formation":
        return postgres_formation(args.timeout)
    return status(settings)


if __name__ == "__main__":
    sys.exit(main())
