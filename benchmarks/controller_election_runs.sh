#!/usr/bin/env bash
# Fault 1 (tests/chaos/test_broker_crash.py) with the ACTIVE controller as the victim, in turns
# with two controller election timeouts, each run under the machine's heavy-work lock, each
# report kept in benchmarks/results/chaos/controller_election/:
#   election-1000   Kafka's default controller.quorum.election.timeout.ms (1 s), set through
#                   KAFKA_NODE_OVERRIDES so the template is not edited between runs
#   template        the template's shorter election timeout
# The order flips every round, so neither setting always runs first on a warm machine.
# Usage: benchmarks/controller_election_runs.sh [ROUNDS]   (default 2: four runs)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-2}"
# a machine shared with other measurements: one heavy run at a time (HEAVY_LOCK names the lock)
lock="${HEAVY_LOCK:-${TMPDIR:-/tmp}/mlsd-heavy.lock}"
out=benchmarks/results/chaos/controller_election
work=reports/chaos/controller_election
mkdir -p "$out" "$work"
for ((round = 1; round <= rounds; round++)); do
  variants=(election-1000 template)
  ((round % 2 == 0)) && variants=(template election-1000)
  for variant in "${variants[@]}"; do
    case "$variant" in
      election-1000) env_vars=(KAFKA_NODE_OVERRIDES="controller.quorum.election.timeout.ms=1000") ;;
      template) env_vars=() ;;
    esac
    echo "round $round: $variant ($(uptime))"
    status=0
    flock "$lock" env "${env_vars[@]}" MLSD_CHAOS_BROKER_VICTIM=controller \
      MLSD_CHAOS_REPORT_DIR="$work" \
      .venv/bin/python -m pytest tests/chaos/test_broker_crash.py -q -p no:cacheprovider \
      --basetemp="$work/tmp-$variant-$round" > "$work/$variant-$round.log" 2>&1 || status=$?
    stamp="$(date -u +%H%M%S)"
    cp "$work/broker_crash.json" "$out/$stamp-$variant.json"
    echo "  exit $status -> $out/$stamp-$variant.json"
  done
done
