#!/usr/bin/env bash
# Fault 1 (tests/chaos/test_broker_crash.py) in turns with three failover settings, each run
# under the machine's heavy-work lock, each report kept in benchmarks/results/chaos/broker_failover/:
#   before    the template's earlier settings: broker session 3000 ms, heartbeat 500 ms,
#             controller fetch timeout 2000 ms (Kafka's default), librdkafka retry backoff up to 1 s
#   brokers   the template's settings (session 1000, heartbeat 200, fetch 1000), backoff up to 1 s
#   both      the template's settings and the producers' flat 100 ms retry backoff (the default)
# Usage: benchmarks/broker_failover_runs.sh [ROUNDS]   (default 2: six runs)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-2}"
# a machine shared with other measurements: one heavy run at a time (HEAVY_LOCK names the lock)
lock="${HEAVY_LOCK:-${TMPDIR:-/tmp}/mlsd-heavy.lock}"
out=benchmarks/results/chaos/broker_failover
work=reports/chaos/broker_failover
mkdir -p "$out" "$work"
before_brokers="broker.heartbeat.interval.ms=500;broker.session.timeout.ms=3000;controller.quorum.fetch.timeout.ms=2000"
for ((round = 1; round <= rounds; round++)); do
  for variant in before brokers both; do
    case "$variant" in
      before) env_vars=(KAFKA_NODE_OVERRIDES="$before_brokers" MLSD_KAFKA_RETRY_BACKOFF_MAX_MS=1000) ;;
      brokers) env_vars=(MLSD_KAFKA_RETRY_BACKOFF_MAX_MS=1000) ;;
      both) env_vars=() ;;
    esac
    echo "round $round: $variant ($(uptime))"
    status=0
    flock "$lock" env "${env_vars[@]}" MLSD_CHAOS_REPORT_DIR="$work" \
      .venv/bin/python -m pytest tests/chaos/test_broker_crash.py -q -p no:cacheprovider \
      --basetemp="$work/tmp" > "$work/$variant-$round.log" 2>&1 || status=$?
    stamp="$(date -u +%H%M%S)"
    cp "$work/broker_crash.json" "$out/$stamp-$variant.json"
    echo "  exit $status -> $out/$stamp-$variant.json"
  done
done
