#!/usr/bin/env bash
# Fault 1 (tests/chaos/test_broker_crash.py) in turns with ingest's spool on and off, each run
# under the machine's heavy-work lock, each report kept in benchmarks/results/chaos/ingest_spool/:
#   on    the default: batches the bus cannot acknowledge within 0.1 s go to the spool (202)
#   off   MLSD_INGEST_SPOOL_ENABLED=false: they are refused (503 + Retry-After) after 0.5 s
# Usage: benchmarks/ingest_spool_runs.sh [ROUNDS]   (default 2: four runs)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-2}"
# a machine shared with other measurements: one heavy run at a time (HEAVY_LOCK names the lock)
lock="${HEAVY_LOCK:-${TMPDIR:-/tmp}/mlsd-heavy.lock}"
out=benchmarks/results/chaos/ingest_spool
work=reports/chaos/ingest_spool
mkdir -p "$out" "$work"
for ((round = 1; round <= rounds; round++)); do
  for variant in on off; do
    case "$variant" in
      on) env_vars=(MLSD_INGEST_SPOOL_ENABLED=true) ;;
      off) env_vars=(MLSD_INGEST_SPOOL_ENABLED=false) ;;
    esac
    echo "round $round: spool $variant ($(uptime))"
    status=0
    flock "$lock" env "${env_vars[@]}" MLSD_CHAOS_REPORT_DIR="$work" \
      .venv/bin/python -m pytest tests/chaos/test_broker_crash.py -q -p no:cacheprovider \
      --basetemp="$work/tmp" > "$work/$variant-$round.log" 2>&1 || status=$?
    stamp="$(date -u +%H%M%S)"
    cp "$work/broker_crash.json" "$out/$stamp-spool-$variant.json"
    echo "  exit $status -> $out/$stamp-spool-$variant.json"
  done
done
