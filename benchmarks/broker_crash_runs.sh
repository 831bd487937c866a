#!/usr/bin/env bash
# Fault 1 (tests/chaos/test_broker_crash.py) in turns with the settings one experiment compares,
# each run under the machine's heavy-work lock, each report kept in
# benchmarks/results/chaos/EXPERIMENT/ as <UTC time>-<variant>.json:
#   broker_failover       three failover settings
#     before              the template's earlier settings: broker session 3000 ms, heartbeat
#                         500 ms, controller fetch timeout 2000 ms (Kafka's default), librdkafka
#                         retry backoff up to 1 s
#     brokers             the template's settings (session 1000, heartbeat 200, fetch 1000),
#                         backoff up to 1 s
#     both                the template's settings and the producers' flat 100 ms retry backoff
#                         (the default)
#   controller_election   the ACTIVE controller as the victim, two controller election timeouts;
#                         the order flips every round, so neither always runs first on a warm
#                         machine
#     election-1000       Kafka's default controller.quorum.election.timeout.ms (1 s), set
#                         through KAFKA_NODE_OVERRIDES so the template is not edited between runs
#     template            the template's shorter election timeout
#   ingest_spool          ingest's spool on and off
#     spool-on            the default: batches the bus cannot acknowledge within 0.1 s go to the
#                         spool (202)
#     spool-off           MLSD_INGEST_SPOOL_ENABLED=false: they are refused (503 + Retry-After)
#                         after 0.5 s
# Usage: benchmarks/broker_crash_runs.sh EXPERIMENT [ROUNDS]   (default 2: a run of each variant
# a round); broker_failover_runs.sh, controller_election_runs.sh and ingest_spool_runs.sh run one.
set -euo pipefail
cd "$(dirname "$0")/.."
experiment="${1:-}"
rounds="${2:-2}"
flip=false     # reverse the variants' order every second round
common=()      # the environment of every run of the experiment
case "$experiment" in
  broker_failover) variants=(before brokers both) ;;
  controller_election)
    variants=(election-1000 template) flip=true common=(MLSD_CHAOS_BROKER_VICTIM=controller) ;;
  ingest_spool) variants=(spool-on spool-off) ;;
  *) echo "usage: $0 broker_failover|controller_election|ingest_spool [ROUNDS]" >&2; exit 2 ;;
esac
# a machine shared with other measurements: one heavy run at a time (HEAVY_LOCK names the lock)
lock="${HEAVY_LOCK:-${TMPDIR:-/tmp}/mlsd-heavy.lock}"
out="benchmarks/results/chaos/$experiment"
work="reports/chaos/$experiment"
mkdir -p "$out" "$work"
before_brokers="broker.heartbeat.interval.ms=500;broker.session.timeout.ms=3000;controller.quorum.fetch.timeout.ms=2000"
for ((round = 1; round <= rounds; round++)); do
  order=("${variants[@]}")
  if [[ $flip == true ]] && ((round % 2 == 0)); then
    order=()
    for ((i = ${#variants[@]} - 1; i >= 0; i--)); do order+=("${variants[i]}"); done
  fi
  for variant in "${order[@]}"; do
    case "$variant" in
      before) env_vars=(KAFKA_NODE_OVERRIDES="$before_brokers" MLSD_KAFKA_RETRY_BACKOFF_MAX_MS=1000) ;;
      brokers) env_vars=(MLSD_KAFKA_RETRY_BACKOFF_MAX_MS=1000) ;;
      election-1000) env_vars=(KAFKA_NODE_OVERRIDES="controller.quorum.election.timeout.ms=1000") ;;
      spool-on) env_vars=(MLSD_INGEST_SPOOL_ENABLED=true) ;;
      spool-off) env_vars=(MLSD_INGEST_SPOOL_ENABLED=false) ;;
      *) env_vars=() ;;   # both, template: the template's settings as they are
    esac
    echo "round $round: $variant ($(uptime))"
    status=0
    # each run's folder kept (its servers' logs: the controllers' raft logs were read from them)
    flock "$lock" env "${common[@]}" "${env_vars[@]}" MLSD_CHAOS_REPORT_DIR="$work" \
      .venv/bin/python -m pytest tests/chaos/test_broker_crash.py -q -p no:cacheprovider \
      --basetemp="$work/tmp-$variant-$round" > "$work/$variant-$round.log" 2>&1 || status=$?
    stamp="$(date -u +%H%M%S)"
    cp "$work/broker_crash.json" "$out/$stamp-$variant.json"
    echo "  exit $status -> $out/$stamp-$variant.json"
  done
done
