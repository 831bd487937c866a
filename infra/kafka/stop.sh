#!/usr/bin/env bash
# Stop the broker: through supervisord when the local stack runs it, else by its pid file.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
if [[ -S "$REPO_ROOT/.state/supervisor.sock" ]]; then
  exec "$REPO_ROOT/.venv/bin/supervisorctl" -c "$REPO_ROOT/infra/supervisord.conf" stop kafka
fi
pidfile="$KAFKA_DATA_DIR/kafka.pid"
[[ -f "$pidfile" ]] || { echo "kafka: not running"; exit 0; }
pid="$(cat "$pidfile")"
kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; echo "kafka: stopped"; exit 0; }; sleep 0.5; done
echo "kafka: did not stop in 30 s, killing" >&2
kill -KILL "$pid" 2>/dev/null || true
rm -f "$pidfile"
