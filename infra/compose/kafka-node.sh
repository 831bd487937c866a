#!/usr/bin/env bash
# A Kafka node of docker compose's cluster profile (apache/kafka image), as infra/kafka/cluster-node.sh
# runs one for `make run-cluster`: every listener authenticates, so the storage is formatted with
# the nodes' own SCRAM user (`broker`) before the image's start-up, whose own format skips a
# formatted storage. The services' users (one per service, services/devstack/kafka_principals.py)
# are added by `broker` once the quorum runs: the kafka-acls one-shot. BROKER_TLS_DIR (compose's
# KAFKA_TLS_DIR): the BROKER listener (clients, replication) is SASL_SSL, with the keystore
# broker.p12 (its password in keystore-password) and the CA ca.pem in that folder, the settings
# cluster-node.sh appends, here as the image's KAFKA_* variables. Then the image starts as usual.
set -euo pipefail
: "${BROKER_PASSWORD:?set KAFKA_BROKER_PASSWORD for the cluster profile}"
: "${KAFKA_NODE_ID:?}" "${CLUSTER_ID:?}"
umask 077  # the format's settings and the health check's hold the nodes' password
protocol=SASL_PLAINTEXT
if [[ -n "${BROKER_TLS_DIR:-}" ]]; then
  protocol=SASL_SSL
  export KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="${KAFKA_LISTENER_SECURITY_PROTOCOL_MAP/BROKER:SASL_PLAINTEXT/BROKER:SASL_SSL}"
  export KAFKA_LISTENER_NAME_BROKER_SSL_KEYSTORE_TYPE=PKCS12
  export KAFKA_LISTENER_NAME_BROKER_SSL_KEYSTORE_LOCATION="$BROKER_TLS_DIR/broker.p12"
  KAFKA_LISTENER_NAME_BROKER_SSL_KEYSTORE_PASSWORD="$(cat "$BROKER_TLS_DIR/keystore-password")"
  export KAFKA_LISTENER_NAME_BROKER_SSL_KEYSTORE_PASSWORD
  export KAFKA_LISTENER_NAME_BROKER_SSL_TRUSTSTORE_TYPE=PEM
  export KAFKA_LISTENER_NAME_BROKER_SSL_TRUSTSTORE_LOCATION="$BROKER_TLS_DIR/ca.pem"
  export KAFKA_LISTENER_NAME_BROKER_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM=https
fi
# the health check's client (docker-compose.yml): the nodes' user, on the BROKER listener
{
  printf 'security.protocol=%s\nsasl.mechanism=SCRAM-SHA-512\n' "$protocol"
  printf 'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="%s";\n' "$BROKER_PASSWORD"
  if [[ -n "${BROKER_TLS_DIR:-}" ]]; then
    printf 'ssl.truststore.type=PEM\nssl.truststore.location=%s/ca.pem\n' "$BROKER_TLS_DIR"
  fi
} > /tmp/health.properties
if [[ ! -f "$KAFKA_LOG_DIRS/meta.properties" ]]; then
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
  # inside the container's own process namespace; the host's make run-cluster keeps it off argv
  /opt/kafka/bin/kafka-storage.sh format --cluster-id "$CLUSTER_ID" --config "$config" \
    --ignore-formatted \
    --add-scram "SCRAM-SHA-512=[name=broker,password=$BROKER_PASSWORD]"
  rm -f "$config"
fi
exec /etc/kafka/docker/run
