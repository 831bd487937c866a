#!/usr/bin/env bash
# Run node KAFKA_NODE_ID (1..KAFKA_NODES) of the cluster topology in the foreground
# (supervisord and the test harness own the process). Node N listens on KAFKA_BASE_PORT+N-1 and
# its controller on KAFKA_CONTROLLER_BASE_PORT+N-1; all nodes share KAFKA_CLUSTER_ID. The test
# harness, on free ports, names them instead: KAFKA_NODE_PORT, KAFKA_NODE_CONTROLLER_PORT,
# KAFKA_VOTERS (id@host:port,...), KAFKA_NODE_DATA_DIR.
# First start formats the storage; later starts reuse it.
# Every listener authenticates (server.cluster.properties.template): KAFKA_BROKER_PASSWORD is the
# nodes' own (user `broker`: replication over SCRAM, the quorum over PLAIN), created when the
# storage is formatted. The services' users are added by `broker` once the quorum runs (a user
# per service: services/devstack/kafka_principals.py); MLSD_KAFKA_USERNAME and
# MLSD_KAFKA_PASSWORD, if given, add one more at format time.
# The passwords go into files only this user reads (the node's properties, the format's argument
# file), never onto a command line. KAFKA_TLS_DIR (make run-cluster with MLSD_CLUSTER_KAFKA_TLS,
# the harness's TLS topology): the BROKER listener (clients, replication) is SASL_SSL, with the
# keystore broker.p12 (its password in keystore-password) and the CA ca.pem in that folder.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
: "${KAFKA_NODE_ID:?}" "${KAFKA_CLUSTER_ID:?}"
: "${KAFKA_BROKER_PASSWORD:?the Kafka nodes of the cluster topology authenticate each other}"
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
umask 077  # the properties and the format's arguments hold passwords
sed -e "s|@HOST@|$KAFKA_HOST|g" -e "s|@NODE_ID@|$KAFKA_NODE_ID|g" -e "s|@VOTERS@|$voters|g" \
    -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$controller_port|g" \
    -e "s|@DATA_DIR@|$data_dir|g" -e "s|@PARTITIONS@|$KAFKA_PARTITIONS|g" \
    "$KAFKA_DIR/server.cluster.properties.template" > "$config"
# the client side of each listener logs in as `broker`; PLAIN's server side checks user_broker
cat >> "$config" <<EOF
listener.name.broker.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="$KAFKA_BROKER_PASSWORD";
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="$KAFKA_BROKER_PASSWORD" user_broker="$KAFKA_BROKER_PASSWORD";
EOF
if [[ -n "${KAFKA_TLS_DIR:-}" ]]; then
  sed -i -e "s|BROKER:SASL_PLAINTEXT|BROKER:SASL_SSL|" "$config"
  cat >> "$config" <<EOF
listener.name.broker.ssl.keystore.type=PKCS12
listener.name.broker.ssl.keystore.location=$KAFKA_TLS_DIR/broker.p12
listener.name.broker.ssl.keystore.password=$(cat "$KAFKA_TLS_DIR/keystore-password")
listener.name.broker.ssl.truststore.type=PEM
listener.name.broker.ssl.truststore.location=$KAFKA_TLS_DIR/ca.pem
listener.name.broker.ssl.endpoint.identification.algorithm=https
EOF
fi
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
# Class data sharing: the classes a node loads at start, parsed and verified once into an AppCDS
# archive (services/devstack/kafka_cds.py makes it at `make run-cluster` and in the harness),
# mapped by every later start instead of read from the jars again (ADR 0011). Only the server
# uses it; a missing or stale archive (another JDK build, other jars) is a start without it.
# A damaged one (cut short, overwritten) is mapped all the same and crashes the JVM, so a JVM
# that maps it and exits (-version, about 0.1 s) tries it first. KAFKA_NODE_CDS_ARCHIVE= (empty)
# starts without it.
cds_archive="${KAFKA_NODE_CDS_ARCHIVE-$REPO_ROOT/.state/kafka-cds/kafka-$KAFKA_VERSION.jsa}"
server_opts=()
if [[ -n "$cds_archive" && -f "$cds_archive" ]]; then
  if java -Xshare:auto -XX:SharedArchiveFile="$cds_archive" -cp "$KAFKA_LIBS/*" \
       -XX:ErrorFile="$data_dir/cds-check-crash.log" -version > /dev/null 2>&1; then
    server_opts+=("-XX:SharedArchiveFile=$cds_archive" -Xshare:auto)
  else
    echo "kafka-$KAFKA_NODE_ID: $cds_archive crashed a JVM that mapped it: starting without it" \
         "(delete it; make run-cluster makes it again)" >&2
  fi
fi
# C1 only: a tiered JVM compiles its hot code again with C2 in its first minutes, the CPU a young
# broker spends as the load arrives; at these brokers' rates C1's code cost nothing measurable
# (ADR 0011). KAFKA_NODE_TIERED_STOP_AT_LEVEL= (empty) compiles with C2 again.
tiered_stop="${KAFKA_NODE_TIERED_STOP_AT_LEVEL-1}"
if [[ -n "$tiered_stop" ]]; then
  server_opts+=("-XX:TieredStopAtLevel=$tiered_stop")
fi
# KAFKA_NODE_JVM_OPTS="-XX:... -XX:...": more options for the server, appended (the archive is
# made with -XX:ArchiveClassesAtExit this way; benchmarks/broker_start.py compares settings).
if [[ -n "${KAFKA_NODE_JVM_OPTS:-}" ]]; then
  read -r -a extra_opts <<< "$KAFKA_NODE_JVM_OPTS"
  server_opts+=("${extra_opts[@]}")
fi

# The SCRAM users are records of the cluster's first metadata: added at format, on every node.
scram_marker="$data_dir/logs/.scram-users"
if [[ ! -f "$data_dir/logs/meta.properties" ]]; then
  arguments="$data_dir/format.args"  # java @file: the main class and its arguments, off argv
  cat > "$arguments" <<EOF
kafka.tools.StorageTool format --config "$config" --cluster-id "$KAFKA_CLUSTER_ID" --ignore-formatted
--add-scram "SCRAM-SHA-512=[name=broker,password=$KAFKA_BROKER_PASSWORD]"
EOF
  if [[ -n "${MLSD_KAFKA_USERNAME:-}" && -n "${MLSD_KAFKA_PASSWORD:-}" ]]; then
    echo "--add-scram \"SCRAM-SHA-512=[name=$MLSD_KAFKA_USERNAME,password=$MLSD_KAFKA_PASSWORD]\"" \
      >> "$arguments"
  fi
  formatted=0
  java "${java_opts[@]}" @"$arguments" || formatted=$?
  rm -f "$arguments"  # failed or not: the passwords stay in no file but the node's properties
  (( formatted == 0 )) || exit "$formatted"
  touch "$scram_marker"
elif [[ ! -f "$scram_marker" ]]; then
  echo "kafka-$KAFKA_NODE_ID: $data_dir was formatted before the cluster authenticated its" \
       "clients (no SCRAM users in its metadata); remove the cluster's kafka-* folders" \
       "(make stop; rm -r .state/cluster/kafka-*) to format them again" >&2
  exit 1
fi

unset KAFKA_BROKER_PASSWORD MLSD_KAFKA_PASSWORD  # in the properties now: not in the broker's env
exec java "${java_opts[@]}" "${server_opts[@]}" kafka.Kafka "$config"
