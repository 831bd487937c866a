#!/usr/bin/env bash
# Run redis-server in the foreground (supervisord and the test harness own the process).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REDIS_PORT="${REDIS_PORT:-6379}"
REDIS_DATA_DIR="${REDIS_DATA_DIR:-$REPO_ROOT/.state/redis}"
command -v redis-server >/dev/null || {
  echo "redis-server not found: run 'make setup' as root, or install Debian's redis-server package" >&2
  exit 1
}
mkdir -p "$REDIS_DATA_DIR"
exec redis-server "$REPO_ROOT/infra/redis/redis.conf" --port "$REDIS_PORT" --dir "$REDIS_DATA_DIR"
