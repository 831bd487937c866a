#!/usr/bin/env bash
# Exit 0 when Redis answers PING.
set -euo pipefail
exec redis-cli -h 127.0.0.1 -p "${REDIS_PORT:-6379}" ping
