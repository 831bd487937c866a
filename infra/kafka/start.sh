#!/usr/bin/env bash
# Run one KRaft broker+controller in the foreground (supervisord and the test harness own the process).
# First start formats the storage; later starts reuse it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

"$KAFKA_DIR/fetch.sh"
mkdir -p "$KAFKA_DATA_DIR"
config="$KAFKA_DATA_DIR/server.properties"
sed -e "s|@HOST@|$KAFKA_HOST|g" -e "s|@PORT@|$KAFKA_PORT|g" \
    -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" -e "s|@DATA_DIR@|$KAFKA_DATA_DIR|g" \
    -e "s|@PARTITIONS@|$KAFKA_PARTITIONS|g" \
    "$KAFKA_DIR/server.properties.template" > "$config"

java_opts=(-Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
           -Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties"
           -cp "$KAFKA_LIBS/*")

if [[ ! -f "$KAFKA_DATA_DIR/logs/meta.properties" ]]; then
  # random-uuid may print a log line before the id: the id is the last line.
  cluster_id="$(java "${java_opts[@]}" kafka.tools.StorageTool random-uuid | tail -n 1)"
  java "${java_opts[@]}" kafka.tools.StorageTool format --standalone \
    --config "$config" --cluster-id "$cluster_id" --ignore-formatted
fi

echo $$ > "$KAFKA_DATA_DIR/kafka.pid"
exec java "${java_opts[@]}" kafka.Kafka "$config"
