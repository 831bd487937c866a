#!/usr/bin/env bash
# Run node KAFKA_NODE_ID (1..KAFKA_NODES) of the cluster topology in the foreground
# (supervisord and the test harness own the process). Node N listens on KAFKA_BASE_PORT+N-1 and
# its controller on KAFKA_CONTROLLER_BASE_PORT+N-1; all nodes share KAFKA_CLUSTER_ID. The test
# harness, on free ports, names them instead: KAFKA_NODE_PORT, KAFKA_NODE_CONTROLLER_PORT,
# KAFKA_VOTERS (id@host:port,...), KAFKA_NODE_DATA_DIR.
# First start formats the storage; later starts reuse it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
: "${KAFKA_NODE_ID:?}" "${KAFKA_CLUSTER_ID:?}"
KAFKA_NODES="${KAFKA_NODES:-3}"
KAFKA_BASE_PORT="${KAFKA_BASE_PORT:-19092}"
KAFKA_CONTROLLER_BASE_PORT="${KAFKA_CONTROLLER_BASE_PORT:-19192}"
KAFKA_CLUSTER_DIR="${KAFKA_CLUSTER_DIR:-$REPO_ROOT/.state/cluster}"
KAFKA_HEAP="${KAFKA_NODE_HEAP:-384m}"

voters="${KAFKA_VOTERS:-}"
if [[ -z "$voters" ]]; then
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    voters+="${voters:+,}$n@$KAFKA_HOST:$((KAFKA_CONTROLLER_BASE_PORT + n - 1))"
  done
fi
port="${KAFKA_NODE_PORT:-$((KAFKA_BASE_PORT + KAFKA_NODE_ID - 1))}"
controller_port="${KAFKA_NODE_CONTROLLER_PORT:-$((KAFKA_CONTROLLER_BASE_PORT + KAFKA_NODE_ID - 1))}"
data_dir="${KAFKA_NODE_DATA_DIR:-$KAFKA_CLUSTER_DIR/kafka-$KAFKA_NODE_ID}"

"$KAFKA_DIR/fetch.sh"
mkdir -p "$data_dir"
config="$data_dir/server.properties"
sed -e "s|@HOST@|$KAFKA_HOST|g" -e "s|@NODE_ID@|$KAFKA_NODE_ID|g" -e "s|@VOTERS@|$voters|g" \
    -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$controller_port|g" \
    -e "s|@DATA_DIR@|$data_dir|g" -e "s|@PARTITIONS@|$KAFKA_PARTITIONS|g" \
    "$KAFKA_DIR/server.cluster.properties.template" > "$config"
# KAFKA_NODE_OVERRIDES="key=value;key=value": appended, so they win over the template's (a
# properties file keeps a key's last value); the chaos tests run the template's earlier
# failover settings beside its current ones this way, without editing it between runs.
if [[ -n "${KAFKA_NODE_OVERRIDES:-}" ]]; then
  printf '%s\n' "# KAFKA_NODE_OVERRIDES" >> "$config"
  tr ';' '\n' <<< "$KAFKA_NODE_OVERRIDES" >> "$config"
fi

java_opts=(-Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
           -XX:ActiveProcessorCount=1 -Djava.awt.headless=true
           -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -cp "$KAFKA_LIBS/*")
# KAFKA_NODE_GC_LOG=path: every GC pause, one line each with its UTC time (%p: the process id,
# so a restarted node writes a file of its own); the chaos soak lines them up with its misses.
if [[ -n "${KAFKA_NODE_GC_LOG:-}" ]]; then
  java_opts+=("-Xlog:gc:file=$KAFKA_NODE_GC_LOG:utctime:filecount=0")
fi

if [[ ! -f "$data_dir/logs/meta.properties" ]]; then
  java "${java_opts[@]}" kafka.tools.StorageTool format \
    --config "$config" --cluster-id "$KAFKA_CLUSTER_ID" --ignore-formatted
fi

exec java "${java_opts[@]}" kafka.Kafka "$config"
