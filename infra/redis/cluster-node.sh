#!/usr/bin/env bash
# Run node REDIS_NODE (1..6) of the cluster topology's Redis Cluster in the foreground
# (supervisord and the test harness own the process). Node N listens on REDIS_BASE_PORT+N-1 and
# gossips on REDIS_BUS_BASE_PORT+N-1. `redis-cli --cluster create` (services/devstack/cluster.py)
# makes the nodes one cluster on first start; nodes.conf in each data folder remembers it.
# The test harness, on free ports, names them: REDIS_NODE_PORT, REDIS_NODE_BUS_PORT,
# REDIS_NODE_DATA_DIR. The password (MLSD_REDIS_PASSWORD) goes into a file only this user reads, never onto argv.
# cluster-require-full-coverage no: while a dead master's slots have no owner (from the moment
# the cluster marks it failed to its replica's promotion) the other masters keep answering for
# their own slots; with Redis's default (yes) every node answers CLUSTERDOWN for every key, and
# one dead master took the whole keyspace down for ~2 s (fault 2, docs/reliability.md).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${REDIS_NODE:?}" "${MLSD_REDIS_PASSWORD:?the cluster topology runs Redis with a password}"
REDIS_BASE_PORT="${REDIS_BASE_PORT:-7001}"
REDIS_BUS_BASE_PORT="${REDIS_BUS_BASE_PORT:-17001}"
REDIS_CLUSTER_DIR="${REDIS_CLUSTER_DIR:-$REPO_ROOT/.state/cluster}"
command -v redis-server >/dev/null || {
  echo "redis-server not found: run 'make setup' as root, or install Debian's redis-server package" >&2
  exit 1
}
data_dir="${REDIS_NODE_DATA_DIR:-$REDIS_CLUSTER_DIR/redis-$REDIS_NODE}"
mkdir -p "$data_dir"
secret="$data_dir/auth.conf"
( umask 077
  # requirepass is the default ACL user's password; masterauth lets a replica follow its master
  printf 'requirepass "%s"\nmasterauth "%s"\n' "$MLSD_REDIS_PASSWORD" "$MLSD_REDIS_PASSWORD" > "$secret" )
exec redis-server "$REPO_ROOT/infra/redis/redis.conf" \
  --port "${REDIS_NODE_PORT:-$((REDIS_BASE_PORT + REDIS_NODE - 1))}" --dir "$data_dir" \
  --cluster-enabled yes \
  --cluster-port "${REDIS_NODE_BUS_PORT:-$((REDIS_BUS_BASE_PORT + REDIS_NODE - 1))}" \
  --cluster-config-file nodes.conf --cluster-node-timeout "${REDIS_NODE_TIMEOUT_MS:-2000}" \
  --cluster-require-full-coverage no --include "$secret"
