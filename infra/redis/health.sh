#!/usr/bin/env bash
# Exit 0 when Redis answers PONG (redis-cli exits 0 on error replies too, e.g. while loading).
set -euo pipefail
redis-cli -h 127.0.0.1 -p "${REDIS_PORT:-6379}" ping | grep -q PONG && echo "redis: PONG"
