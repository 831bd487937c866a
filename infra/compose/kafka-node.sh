#!/usr/bin/env bash
# A Kafka node of docker compose's cluster profile (apache/kafka image), as infra/kafka/cluster-node.sh
# runs one for `make run-cluster`: every listener authenticates, so the storage is formatted with
# the SCRAM users (the brokers' own, `broker`; the services', MLSD_KAFKA_USERNAME) before the
# image's start-up, whose own format skips a formatted storage. Then the image starts as usual.
set -euo pipefail
: "${BROKER_PASSWORD:?set KAFKA_BROKER_PASSWORD for the cluster profile}"
: "${MLSD_KAFKA_PASSWORD:?set MLSD_KAFKA_PASSWORD for the cluster profile}"
: "${MLSD_KAFKA_USERNAME:?}" "${KAFKA_NODE_ID:?}" "${CLUSTER_ID:?}"
if [[ ! -f "$KAFKA_LOG_DIRS/meta.properties" ]]; then
  umask 077
  config="$(mktemp)"
  # what formatting reads: the node, the quorum, where the log lives
  cat > "$config" <<PROPERTIES
process.roles=$KAFKA_PROCESS_ROLES
node.id=$KAFKA_NODE_ID
controller.quorum.voters=$KAFKA_CONTROLLER_QUORUM_VOTERS
controller.listener.names=$KAFKA_CONTROLLER_LISTENER_NAMES
listeners=$KAFKA_LISTENERS
listener.security.protocol.map=$KAFKA_LISTENER_SECURITY_PROTOCOL_MAP
inter.broker.listener.name=$KAFKA_INTER_BROKER_LISTENER_NAME
log.dirs=$KAFKA_LOG_DIRS
PROPERTIES
  # inside the container's own process namespace; the host's make run-cluster keeps them off argv
  /opt/kafka/bin/kafka-storage.sh format --cluster-id "$CLUSTER_ID" --config "$config" \
    --ignore-formatted \
    --add-scram "SCRAM-SHA-512=[name=broker,password=$BROKER_PASSWORD]" \
    --add-scram "SCRAM-SHA-512=[name=$MLSD_KAFKA_USERNAME,password=$MLSD_KAFKA_PASSWORD]"
  rm -f "$config"
fi
unset MLSD_KAFKA_PASSWORD
exec /etc/kafka/docker/run
