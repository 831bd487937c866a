#!/usr/bin/env bash
# Install what the project needs outside Python, once: redis-server, PostgreSQL, HAProxy, promtool and
# chromium (with its driver) from Debian, the Kafka jars from Maven Central. Checks Java 17+,
# Maven and Go and says what is missing.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

missing_debs=()
command -v redis-server >/dev/null || missing_debs+=(redis-server)
# the cluster topology's load balancer (services/devstack/balancer.py)
command -v haproxy >/dev/null || missing_debs+=(haproxy)
{ command -v promtool && command -v prometheus; } >/dev/null || missing_debs+=(prometheus)
# the console's browser tests (tests/e2e/test_console_browser.py): Debian's browser and its driver
command -v chromium >/dev/null || missing_debs+=(chromium)
command -v chromedriver >/dev/null || missing_debs+=(chromium-driver)
# Debian's postgresql keeps its binaries in /usr/lib/postgresql/<major>/bin (infra/postgres/start.sh
# finds them there); it creates no user but `postgres`, which the server runs as under root.
command -v postgres >/dev/null || compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null \
  || missing_debs+=(postgresql)
# the cluster topology's primary and standby: pg_auto_failover (infra/postgres/ha-node.sh), its
# extension built for the PostgreSQL major version installed (Debian's postgresql-15 on bookworm)
if ! command -v pg_autoctl >/dev/null \
    || ! compgen -G "/usr/lib/postgresql/*/lib/pgautofailover.so" >/dev/null; then
  pg_major="$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -1)"
  missing_debs+=(pg-auto-failover-cli "postgresql-${pg_major:-15}-auto-failover")
fi
if (( ${#missing_debs[@]} )); then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    echo "installing Debian packages: ${missing_debs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_debs[@]}" >/dev/null
    # Debian's packages may start their own daemons; this project starts its own on its own ports.
    for svc in redis-server prometheus postgresql haproxy; do service "$svc" stop >/dev/null 2>&1 || true; done
  else
    echo "missing: ${missing_debs[*]}. Install them (Debian: sudo apt-get install ${missing_debs[*]})" >&2
    exit 1
  fi
fi

java_major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1 || true)"
if [[ -z "$java_major" || "$java_major" -lt 17 ]]; then
  echo "Java 17 or newer is required for Kafka (found: ${java_major:-none})" >&2
  exit 1
fi
command -v mvn >/dev/null || { echo "Maven (mvn) is required to fetch the Kafka jars" >&2; exit 1; }
command -v go >/dev/null || {
  echo "Go 1.23+ is required: tests/compose validates docker-compose.yml with compose-go" >&2; exit 1; }
"$REPO_ROOT/infra/kafka/fetch.sh"
